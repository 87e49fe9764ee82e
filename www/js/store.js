// Opening the store. Each window of the demo is a "device": `?device=B` opens another IndexedDB
// database, so two windows of one browser behave like two people's machines (same server,
// separate local data and outboxes), which is what it takes to make a conflict by hand.
import init, { Ferry } from "/pkg/ferry.js";

const param = new URLSearchParams(location.search).get("device") || "A";
/** This window's device name: letters and digits only, since it becomes a database name. */
export const device = /^[A-Za-z0-9]{1,12}$/.test(param) ? param.toUpperCase() : "A";
export const otherDevice = device === "A" ? "B" : "A";

const saved = (key) => localStorage.getItem(`ferry-demo:${device}:${key}`);
export const save = (key, value) => localStorage.setItem(`ferry-demo:${device}:${key}`, value);

const POLICIES = ["merge", "serverWins", "clientWins", "custom"];
/** The conflict policy chosen in the page (kept per device; changing it reopens the store). */
export const policy = POLICIES.includes(saved("policy")) ? saved("policy") : "merge";

/** Whether this Ferry build can settle conflicts by asking the app (`conflict: "custom"`). */
export const hasOpenConflicts = typeof Ferry.prototype.conflicts === "function";
/** Whether this Ferry build can be taken offline by the app, besides the browser. */
export const hasOfflineSwitch = typeof Ferry.prototype.setOffline === "function";

export async function openStore() {
  await init();
  const db = await Ferry.open({
    name: `ferry-demo-${device}`,
    collections: {
      todos: { url: "/api/todos", indexes: ["done"], conflict: policy },
    },
  });
  // The switch is remembered, so a reload while "working offline" stays offline. (Ferry has no
  // open option for it yet, so a flush that open starts at once may still go out.)
  if (hasOfflineSwitch && saved("offline") === "1") db.setOffline(true);
  return { db, todos: db.collection("todos") };
}

export const savedOffline = () => saved("offline") === "1";
