// The server's side, read straight from the REST endpoint (not through Ferry), so the page shows
// what really arrived; and the reference server's fault switches, to watch Ferry cope.
import { $, clock, h } from "./dom.js";

export function serverView({ report, onFault }) {
  let last = null; // when the server last answered
  let busy = null;

  async function load() {
    // Offline the request would only fail (and log a network error): say so instead.
    if (!navigator.onLine) {
      note(last ? `Unreachable: this browser is offline. As of ${clock(last)}:` : "Unreachable: this browser is offline.");
      return;
    }
    try {
      const res = await fetch("/api/todos", { cache: "no-store" });
      if (!res.ok) throw new Error(`the server answered ${res.status}`);
      const { data } = await res.json();
      last = Date.now();
      paint(data);
      note(`What the server holds, as of ${clock(last)}.`);
    } catch (e) {
      note(`Could not read it (${e.message}).${last ? ` As of ${clock(last)}:` : ""}`);
    }
  }

  function note(text) {
    $("server-note").textContent = text;
    $("server-card").classList.toggle("stale", !text.startsWith("What"));
  }

  function paint(records) {
    $("server-rows").replaceChildren(
      ...records.map((r) => h("tr", { dataset: { id: String(r.id) } },
        h("td", {}, String(r.id)), h("td", {}, String(r.version ?? "")),
        h("td", { class: "title" }, String(r.title ?? "")), h("td", {}, r.done ? "✓" : ""))),
    );
    if (!records.length) {
      $("server-rows").append(h("tr", {}, h("td", { colSpan: 4, class: "empty" }, "No tasks on the server.")));
    }
  }

  const FAULTS = {
    down: ["/__admin/faults", { failNext: 1_000_000, status: 503, retryAfter: null, match: null }],
    reject: ["/__admin/faults", { failNext: 1, status: 422, match: "/api/todos/" }],
    drop: ["/__admin/faults", { dropAfterCommit: 1 }],
    heal: ["/__admin/reset", {}],
  };

  /** The server's fault settings in words (they outlive a reload, so they are read back). */
  function describe(f) {
    if (f.failNext > 0 && f.status >= 500) return `Down: every /api request gets ${f.status}.`;
    if (f.failNext > 0) return `The next edit or delete will be refused with ${f.status}.`;
    if (f.dropAfterCommit > 0) return "The next write will be stored, then its answer lost.";
    return "The server behaves.";
  }

  async function admin(url, body) {
    const res = await fetch(url, body && { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`${url} answered ${res.status} (it works only on the reference server, from loopback)`);
    return res.json();
  }

  async function readFaults() {
    if (!navigator.onLine) return;
    try {
      $("fault-state").textContent = describe(await admin("/__admin/faults"));
    } catch {
      $("fault-state").textContent = "Not available here: the switches answer only on the reference server, from loopback.";
    }
  }

  for (const button of document.querySelectorAll("[data-fault]")) {
    button.addEventListener("click", async () => {
      const [url, body] = FAULTS[button.dataset.fault];
      try {
        // Each switch starts from a well server, so they never add up in surprising ways.
        if (url !== "/__admin/reset") await admin("/__admin/reset", {});
        await admin(url, body);
        await readFaults();
        onFault();
      } catch (e) {
        report(e);
      }
    });
  }

  $("server-refresh").addEventListener("click", () => refresh());

  /** Reads the server again; calls made while a read is out share it. */
  function refresh() {
    busy ??= Promise.all([load(), readFaults()]).finally(() => (busy = null));
    return busy;
  }
  return { refresh };
}
