// A running log of Ferry's events, newest first, in plain words: what was saved locally, what
// came from the server, which temporary id became which, what was refused or conflicted.
import { $, clock, h, idLabel } from "./dom.js";

const MAX = 40;

export function activityView() {
  const list = $("activity");
  const add = (kind, ...text) => {
    list.prepend(h("li", { class: kind }, h("time", {}, clock(Date.now())), h("span", {}, ...text)));
    while (list.children.length > MAX) list.lastChild.remove();
  };
  const titles = new Map(); // id -> last known title, so a delete can still be named
  const title = (r, id) => {
    const t = r?.title ?? titles.get(String(id));
    return t != null ? `“${t}”` : "a task";
  };
  let last = null;

  return {
    change(c) {
      const name = title(c.record, c.id);
      if (c.record?.title != null) titles.set(String(c.id), c.record.title);
      // Remote changes are the server's answers to our writes as well as pulls of others' writes.
      if (c.remote) add("remote", c.type === "deleted" ? `The server removed ${name} ${idLabel(c.id)}.`
        : `${name} ${idLabel(c.id)} is now as the server has it.`);
      else add("local", `Saved here: ${name} ${c.type}, queued for the server.`);
    },
    idChange(e) {
      if (titles.has(e.from)) titles.set(String(e.to), titles.get(e.from));
      add("remote", `${title(null, e.to)} got its server id #${e.to} (it was ${e.from}).`);
    },
    rejected(r) {
      add("bad", `The server refused the ${r.kind} of ${idLabel(r.recordId)} (${r.status}).`);
    },
    conflict(c) {
      add("bad", `Conflict on ${title(c.result ?? c.local ?? c.server, c.id)} ${idLabel(c.id)}: ${c.open ? "waiting for you" : `settled by “${c.policy}”`}.`);
    },
    status(s) {
      // Only transitions are news; the pill shows the rest.
      const now = s.online ? (s.nextRetryAt ? "retrying" : "online") : "offline";
      if (now === last) return;
      if (now === "offline") add("net", "Offline: changes wait in the outbox.");
      else if (now === "retrying") add("bad", `Sync failed (${s.lastError ?? "no answer"}); Ferry will retry.`);
      else if (last === "offline") add("net", "Online again: sending the outbox, then reading the server.");
      else if (last === "retrying") add("net", "The server answers again.");
      last = now;
    },
  };
}
