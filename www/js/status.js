// The connection pill, the in-app offline switch and "Sync now".
import { $, countdown } from "./dom.js";
import { hasOfflineSwitch, save, savedOffline } from "./store.js";

/** The pill's state and words for a `db.status()`. */
function describe(s) {
  if (!s.online) {
    // Ferry's `online` is false for either reason; the browser's flag tells which one.
    const why = navigator.onLine ? "Work offline is on" : "the browser is offline";
    return ["offline", `Offline${s.pending ? ` · ${s.pending} waiting` : ""}`, why];
  }
  if (s.flushing) return ["syncing", "Syncing…"];
  if (s.nextRetryAt) return ["retrying", `Sync failed · retry `, s.lastError];
  if (s.pending) return ["syncing", `Online · ${s.pending} to send`];
  return ["online", "Online · all synced"];
}

export function statusView({ db, report }) {
  const sw = $("offline-switch");
  if (hasOfflineSwitch) {
    sw.checked = savedOffline();
    sw.addEventListener("change", () => {
      save("offline", sw.checked ? "1" : "0");
      db.setOffline(sw.checked);
    });
    // Ferry takes every tab of this device offline; the other tabs' switches follow.
    addEventListener("storage", () => (sw.checked = savedOffline()));
  } else {
    // This Ferry build has no way for the app to pause sync; the browser's switch still works.
    sw.disabled = true;
    $("offline-label").title = "Needs db.setOffline(), not in this Ferry build: use DevTools → Network → Offline";
    $("offline-label").classList.add("unavailable");
  }

  $("sync-now").addEventListener("click", () => {
    // An OfflineError here just means there is nothing to do until the network returns.
    db.sync().catch((e) => e.name === "OfflineError" || report(e));
  });

  return {
    render(s) {
      const [state, text, title] = describe(s);
      const pill = $("conn");
      pill.dataset.state = state;
      pill.replaceChildren(text);
      if (state === "retrying") pill.append(countdown(s.nextRetryAt));
      // Tabs of one device share one store; only the elected one talks to the server.
      pill.title = [title, s.leader === false ? "another tab of this device sends the changes" : null]
        .filter(Boolean).join("; ");
      $("sync-now").disabled = !s.online;
    },
  };
}
