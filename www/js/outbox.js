// The outbox: each pending mutation with its kind, record, changed fields, attempts and when it
// will be tried again. Ferry coalesces per record, so editing one task twice offline shows one entry.
import { $, clock, countdown, h, idLabel, shown } from "./dom.js";

const HIDDEN = new Set(["id", "version", "clientId", "created"]);

function what(entry, record) {
  const title = entry.changes?.title ?? record?.title ?? entry.base?.title;
  const fields = Object.keys(entry.changes ?? {}).filter((f) => !HIDDEN.has(f));
  return [
    h("span", { class: "record" }, title != null ? String(title) : "(untitled)", " ",
      h("small", {}, idLabel(entry.recordId))),
    entry.kind === "update" && fields.length
      ? h("span", { class: "fields" }, fields.map((f) => `${f} → ${shown(entry.changes[f])}`).join(", "))
      : null,
  ];
}

function state(entry, held) {
  if (held) return h("span", { class: "state held" }, "held until you settle its conflict (Needs attention)");
  // `inFlight` means "has left the client" (it stays set across failed attempts, so retries send
  // the very same request); with no error yet, the answer is still awaited.
  if (entry.inFlight && !entry.error) return h("span", { class: "state sending" }, "sent, waiting for the answer…");
  const tried = entry.attempts ? `${entry.attempts} attempt${entry.attempts > 1 ? "s" : ""}` : "not sent yet";
  const out = h("span", { class: "state" }, tried);
  if (entry.retryAt) out.append(" · next try ", countdown(entry.retryAt), ` (${clock(entry.retryAt)})`);
  if (entry.error) out.append(h("span", { class: "why" }, String(entry.error)));
  return out;
}

/** `held`: ids of records whose conflict waits for a decision (their mutations wait too). */
export function renderOutbox(entries, recordsById, held) {
  $("outbox").replaceChildren(
    ...entries.map((entry) =>
      h("li", { class: `mutation ${entry.kind}`, dataset: { kind: entry.kind, recordId: String(entry.recordId) } },
        h("span", { class: `kind ${entry.kind}` }, entry.kind),
        h("div", { class: "what" }, what(entry, recordsById.get(String(entry.recordId))),
          state(entry, held.has(String(entry.recordId)))),
      ),
    ),
  );
  $("outbox-count").textContent = String(entries.length);
  $("outbox-empty").hidden = entries.length > 0;
}
