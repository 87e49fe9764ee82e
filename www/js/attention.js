// What needs the user: mutations the server refused (retry or discard), conflicts Ferry settled by
// the collection's policy (kept here until dismissed, with a way to put this device's values back),
// and, under `conflict: "custom"`, conflicts that wait for a decision (resolve or discard).
import { $, clock, h, idLabel, shown } from "./dom.js";

const HIDDEN = new Set(["id", "version", "clientId", "created"]);
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const titleOf = (...records) => records.find((r) => r?.title != null)?.title;

/** Rows for the fields the two sides disagree on (or that either side changed). */
function fieldTable(c, withResult) {
  const names = new Set();
  for (const r of [c.base, c.local, c.server, c.result]) for (const f of Object.keys(r ?? {})) names.add(f);
  const differs = [...names].filter((f) => !HIDDEN.has(f) &&
    !(same(c.local?.[f], c.server?.[f]) && same(c.local?.[f], c.base?.[f])));
  const cell = (r, f) => h("td", {}, r ? shown(r[f]) : "deleted");
  return h("table", { class: "fields" },
    h("thead", {}, h("tr", {},
      ["field", "before", "this device", "server", withResult ? "now" : null].map((t) => t && h("th", { scope: "col" }, t)))),
    h("tbody", {}, differs.map((f) => h("tr", {},
      h("th", { scope: "row" }, f), cell(c.base, f), cell(c.local, f), cell(c.server, f),
      withResult ? cell(c.result, f) : null))),
  );
}

const POLICY_SAYS = {
  merge: "merged field by field (a field both sides changed keeps the server's value)",
  serverWins: "kept the server's version",
  clientWins: "sent this device's version again over the server's",
  custom: "settled it",
};

/** The server's record with the fields this device changed on top (when both sides still exist). */
function merged(c) {
  if (!c.local || !c.server) return null;
  const mine = Object.entries(c.local).filter(([f, v]) => !HIDDEN.has(f) && !same(v, c.base?.[f]));
  return { ...c.server, ...Object.fromEntries(mine) };
}

export function attentionView({ db, todos, report, save, load }) {
  // Settled conflicts come only as events, so the page keeps them (per device) until dismissed.
  let settled = JSON.parse(load("conflicts") || "[]");
  const keep = () => save("conflicts", JSON.stringify(settled.slice(0, 20)));
  const dismiss = (key) => {
    settled = settled.filter((c) => c.key !== key);
    keep();
    refresh();
  };
  let refresh = () => {};

  /** What "use mine" means for a settled conflict, as a label and an action (or null). */
  function undo(c) {
    const local = c.local;
    const strip = (r) => Object.fromEntries(Object.entries(r).filter(([f]) => !HIDDEN.has(f)));
    if (local && !c.result) return ["Create it again", () => todos.create({ ...strip(local), created: Date.now() })];
    if (!local && c.result) return ["Delete it anyway", () => todos.delete(c.id)];
    if (!local || !c.result) return null;
    // Only the fields this device changed and did not keep: the others were never "mine".
    const mine = Object.fromEntries(Object.entries(strip(local))
      .filter(([f, v]) => !same(v, c.base?.[f]) && !same(v, c.result[f])));
    return Object.keys(mine).length ? ["Use mine", () => todos.update(c.id, mine)] : null;
  }

  function settledItem(c) {
    const action = undo(c);
    return h("li", { class: "conflict", dataset: { id: String(c.id) } },
      h("p", {}, h("b", {}, "Conflict"), ` on “${titleOf(c.result, c.local, c.server) ?? "a task"}” `,
        h("small", {}, `${idLabel(c.id)} · ${clock(c.at)}`)),
      h("p", { class: "hint" }, `Changed here and on the server. Ferry ${POLICY_SAYS[c.policy] ?? `applied “${c.policy}”`}`,
        c.resent ? " and sent the result." : "."),
      fieldTable(c, true),
      h("div", { class: "buttons" },
        action && h("button", { type: "button", onclick: () => action[1]().then(() => dismiss(c.key), report) }, action[0]),
        h("button", { type: "button", class: "primary", onclick: () => dismiss(c.key) }, action ? "Keep this" : "OK")),
    );
  }

  function rejectedItem(r) {
    let why = r.body;
    try { why = JSON.parse(r.body).error ?? r.body; } catch { /* not JSON: show the text */ }
    const title = titleOf(r.record);
    return h("li", { class: "rejected", dataset: { mutationId: r.mutationId } },
      h("p", {}, h("b", {}, `Refused (${r.status})`), ` ${r.kind} of “${title ?? "a task"}” `,
        h("small", {}, `${idLabel(r.recordId)} · ${clock(r.at)}`)),
      h("p", { class: "hint" }, `The server said: ${String(why).slice(0, 200)}. Ferry put the task back as the server has it.`),
      h("div", { class: "buttons" },
        h("button", { type: "button", class: "primary", onclick: () => db.retryRejected(r.mutationId).catch(report) }, "Retry"),
        h("button", { type: "button", onclick: () => db.discardRejected(r.mutationId).catch(report) }, "Discard")),
    );
  }

  function openItem(c) {
    return h("li", { class: "conflict open", dataset: { id: String(c.recordId) } },
      h("p", {}, h("b", {}, "Your call"), ` “${titleOf(c.local, c.server) ?? "a task"}” `,
        h("small", {}, `${idLabel(c.recordId)} · ${clock(c.at)}`)),
      h("p", { class: "hint" }, "Changed here and on the server. Its later changes wait until you decide.",
        c.error ? ` (${c.error})` : ""),
      fieldTable(c, false),
      h("div", { class: "buttons" },
        merged(c) && h("button", { type: "button", class: "primary",
          onclick: () => db.resolveConflict(c.conflictId, merged(c)).catch(report) }, "Merge"),
        c.local && h("button", { type: "button",
          onclick: () => db.resolveConflict(c.conflictId, c.local).catch(report) }, "Keep mine"),
        h("button", { type: "button", onclick: () => db.discardConflict(c.conflictId).catch(report) }, "Keep the server's")),
    );
  }

  return {
    setRefresh(f) { refresh = f; },
    /** A `conflict` event: remembered unless it waits in `db.conflicts()`. */
    conflict(event) {
      if (event.open) return;
      settled.unshift({ ...event, key: `${Date.now()}-${Math.random()}`, at: Date.now() });
      keep();
    },
    render(rejected, open) {
      const section = (id, title, items) =>
        $(id).replaceChildren(...(items.length ? [h("h3", {}, title), h("ul", { class: "attention" }, items)] : []));
      section("open-conflicts", "Conflicts waiting for you", open.map(openItem));
      section("rejected", "Refused by the server", rejected.map(rejectedItem));
      section("conflicts", "Conflicts Ferry settled", settled.map(settledItem));
      const n = rejected.length + open.length + settled.length;
      $("attention-count").textContent = String(n);
      $("attention-count").dataset.zero = String(n === 0);
      $("attention-empty").hidden = n > 0;
    },
  };
}
