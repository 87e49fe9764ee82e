// The demo app: plain ES modules importing the npm package from /pkg (no bundler). It opens the
// store, then redraws from Ferry's own answers (records, outbox, rejected, status) whenever Ferry
// says something changed, so what the page shows is always what Ferry holds.
import { $, tickCountdowns } from "./js/dom.js";
import { device, otherDevice, policy, hasOpenConflicts, openStore, save } from "./js/store.js";
import { tasksView } from "./js/tasks.js";
import { renderOutbox } from "./js/outbox.js";
import { attentionView } from "./js/attention.js";
import { serverView } from "./js/server.js";
import { statusView } from "./js/status.js";
import { activityView } from "./js/activity.js";
import { keepShellOffline } from "./js/shell.js";

function report(e) {
  const el = $("error");
  el.textContent = `${e?.name ?? "Error"}: ${e?.message ?? e}`;
  el.hidden = false;
  clearTimeout(report.timer);
  report.timer = setTimeout(() => (el.hidden = true), 8000);
}

setUpPage();
const { db, todos } = await openStore().catch((e) => {
  report(e);
  throw e;
});

const load = (key) => localStorage.getItem(`ferry-demo:${device}:${key}`);
const tasks = tasksView({ todos, report });
const attention = attentionView({ db, todos, report, save, load });
const server = serverView({ report, onFault: () => server.refresh() });
const status = statusView({ db, report });
const activity = activityView();

async function paint() {
  const [records, outbox, rejected, s, open] = await Promise.all([
    todos.query({ orderBy: "created" }),
    db.outbox(),
    db.rejected(),
    db.status(),
    hasOpenConflicts ? db.conflicts() : [],
  ]);
  tasks.render(records, new Set(outbox.map((m) => String(m.recordId))));
  renderOutbox(outbox, new Map(records.map((r) => [String(r.id), r])), new Set(open.map((c) => String(c.recordId))));
  attention.render(rejected, open);
  status.render(s);
}

// One redraw at a time; events that arrive meanwhile ask for one more, not one each.
let drawing = null;
let again = false;
function refresh() {
  if (drawing) {
    again = true;
    return drawing;
  }
  drawing = (async () => {
    do {
      again = false;
      await paint();
    } while (again);
  })()
    .catch(report)
    .finally(() => (drawing = null));
  return drawing;
}
attention.setRefresh(refresh);

let last = { flushing: false, pending: 0 };
todos.subscribe((change) => {
  activity.change(change);
  refresh();
});
db.on("idChange", (e) => {
  tasks.renamed(e.from, e.to);
  activity.idChange(e);
});
db.on("rejected", (r) => {
  activity.rejected(r);
  refresh();
});
db.on("conflict", (c) => {
  attention.conflict(c);
  activity.conflict(c);
  refresh();
});
db.on("status", (s) => {
  activity.status(s);
  // A flush ended or the outbox shrank: the server has news.
  if (!s.flushing && (last.flushing || s.pending < last.pending)) server.refresh();
  last = s;
  refresh();
});
addEventListener("online", () => server.refresh());
addEventListener("offline", () => server.refresh());

// Ferry has no push channel from the server, so the page reads it every few seconds while it is
// idle: that is how another device's changes arrive. A busy or retrying queue is left alone,
// since `sync()` would cut its backoff short.
setInterval(tickCountdowns, 1000);
setInterval(async () => {
  if (document.visibilityState !== "visible") return;
  const s = await db.status();
  if (s.online && !s.flushing && !s.pending && !s.nextRetryAt) {
    await db.sync().catch(() => { /* the status pill tells */ });
  }
  server.refresh();
}, 5000);

await refresh();
await server.refresh();
document.body.dataset.ready = "true"; // for the end-to-end tests: the first paint is done
// Without a network the page can still be reloaded (online only: offline there is nothing to fetch).
keepShellOffline().then(
  (ok) => (document.body.dataset.offlineReady = String(ok)),
  () => (document.body.dataset.offlineReady = "false"),
);

function setUpPage() {
  $("device").textContent = `device ${device}`;
  document.title = `Ferry demo (device ${device})`;
  const other = $("other-device");
  other.href = `?device=${otherDevice}`;
  other.textContent = `open device ${otherDevice}`;

  const howto = $("howto");
  // Open on a first visit, except on phones where it would push the app below the fold.
  const seen = localStorage.getItem("ferry-demo:howto");
  howto.open = seen ? seen === "open" : matchMedia("(min-width: 700px)").matches;
  howto.addEventListener("toggle", () => localStorage.setItem("ferry-demo:howto", howto.open ? "open" : "closed"));

  const select = $("policy");
  select.value = policy;
  if (!hasOpenConflicts) {
    const custom = select.querySelector("[value=custom]");
    custom.disabled = true;
    custom.textContent += " (needs db.conflicts())";
  }
  // The policy is part of the store's options: reopening is the honest way to change it.
  select.addEventListener("change", () => {
    save("policy", select.value);
    location.reload();
  });
}
