// Profiles one benchmark case: runs it once in headless Chromium under the V8 CPU profiler (CDP
// `Profiler`, started and stopped by the page around the timed part only) and prints where the time went, by function (self time, wasm and JS alike), with
// the share spent idle (waiting on IndexedDB, the network or timers). Writes the whole profile
// to bench/results/<case>.cpuprofile, which Chromium's DevTools opens.
//
//   node bench/profile.mjs --url URL --pkg DIR --static DIR --case sync|create|update|...
//        [--peer ferry|raw|dexie|pouch|checked] [--n 10000] [--ops 1000] [--top 40] [--count]
// --count also counts the IndexedDB calls the timed part makes (each request, transaction and
// commit: what costs main-thread time per call), and prints them per op.
// CHROME_FLAGS="--js-flags=..." passes flags to Chromium (e.g. --no-wasm-lazy-compilation).
//
// scripts/bench --profile CASE builds a package that keeps its function names and calls this.
import { chromium } from "playwright-core";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const args = process.argv.slice(2);
const opt = (k, d) => {
  const i = args.indexOf(`--${k}`);
  return i >= 0 ? args[i + 1] : d;
};
const base = opt("url");
const kase = opt("case", "sync");
const peer = opt("peer", "ferry");
const n = Number(opt("n", 10000));
const ops = Number(opt("ops", 1000));
const top = Number(opt("top", 40));
const outDir = opt("out", new URL("./results/", import.meta.url).pathname);

// On disk, as in bench/run.mjs (an off-the-record context keeps IndexedDB in memory).
const profileDir = mkdtempSync(join(tmpdir(), "ferry-profile-"));
const context = await chromium.launchPersistentContext(profileDir, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", ...(process.env.CHROME_FLAGS ? process.env.CHROME_FLAGS.split(" ") : [])],
});
const counting = args.includes("--count");
if (counting) await context.addInitScript(countIdbCalls);
const page = await context.newPage();
await page.goto(`${base}/index.html`);
await page.waitForFunction(() => window.bench && window.bench.ready);
const call = (fn, ...a) => page.evaluate(([fn, a]) => window.bench[fn](...a), [fn, a]);
const seedC = `seed${n}_${Date.now()}`;
const ctx = { n, ops, seedUrl: `${base}/api/${seedC}` };
await call("seed", seedC, n);
// Cold start runs in a page of its own (nothing loaded yet); the others in the first page, once
// to warm up and once profiled.
let target = page;
let run = () => (kase === "sync" ? call("runSync", peer === "ferry" ? "batched" : peer, ctx) : call("runLocal", kase, peer, ctx));
if (kase === "cold") {
  const prepared = { ...(await call("prepareCold", ctx)), n };
  target = await context.newPage();
  await target.goto(`${base}/index.html`);
  await target.waitForFunction(() => window.bench && window.bench.ready);
  run = () => target.evaluate(([p, peer]) => window.bench.runCold(peer, p), [prepared, peer]);
} else {
  await run(); // warm: the module compiled, caches filled
}

const cdp = await context.newCDPSession(target);
await cdp.send("Profiler.enable");
await cdp.send("Profiler.setSamplingInterval", { interval: 100 });
const finished = new Promise((ok) => cdp.once("Profiler.consoleProfileFinished", (e) => ok(e.profile)));
await target.evaluate(() => window.bench.profile(true)); // the timed part is profiled, not the setup
if (counting) await target.evaluate(() => window.__idbCalls.clear());
const figures = await run();
const calls = counting ? await target.evaluate(() => [...window.__idbCalls.entries()]) : [];
const profile = await finished;
await context.close();
rmSync(profileDir, { recursive: true, force: true });

// Self time per function: each sample is charged to the node it landed in.
const byId = new Map(profile.nodes.map((nd) => [nd.id, nd]));
const self = new Map();
let total = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const dt = profile.timeDeltas[i] ?? 0;
  const nd = byId.get(profile.samples[i]);
  const f = nd.callFrame;
  const file = f.url ? f.url.split("/").pop() : "";
  const name = `${f.functionName || "(anonymous)"}${file ? `  [${file}]` : ""}`;
  self.set(name, (self.get(name) ?? 0) + dt);
  total += dt;
}
const rows = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
console.log(`case ${kase} (${peer}): ${JSON.stringify(figures)}`);
console.log(`profiled ${(total / 1000).toFixed(0)} ms; self time by function:`);
for (const [name, us] of rows) {
  console.log(`${(us / 1000).toFixed(1).padStart(8)} ms ${((100 * us) / total).toFixed(1).padStart(5)}%  ${name.slice(0, 140)}`);
}
if (counting) {
  console.log(`\nIndexedDB calls in the timed part, per op (${ops} ops):`);
  for (const [name, k] of calls.sort((a, b) => b[1] - a[1])) console.log(`${(k / ops).toFixed(2).padStart(8)}  ${name}`);
}
mkdirSync(outDir, { recursive: true });
const file = join(outDir, `${kase}-${peer}.cpuprofile`);
writeFileSync(file, JSON.stringify(profile));
console.log(`\nprofile: ${file}`);

// Runs in the page before anything else: wraps the IndexedDB methods that issue a request or
// start or end a transaction, counting calls by `Interface.method` while the page's timed part
// runs (between its console.profile and console.profileEnd).
function countIdbCalls() {
  const calls = (window.__idbCalls = new Map());
  let on = false;
  const { profile, profileEnd } = console;
  console.profile = (...a) => ((on = true), profile.apply(console, a));
  console.profileEnd = (...a) => ((on = false), profileEnd.apply(console, a));
  const wrap = (proto, iface, names) => {
    for (const m of names) {
      const f = proto[m];
      if (typeof f !== "function") continue;
      proto[m] = function (...a) {
        const k = `${iface}.${m}`;
        if (on) calls.set(k, (calls.get(k) ?? 0) + 1);
        return f.apply(this, a);
      };
    }
  };
  const reads = ["get", "getKey", "getAll", "getAllKeys", "count", "openCursor", "openKeyCursor"];
  wrap(IDBObjectStore.prototype, "IDBObjectStore", [...reads, "put", "add", "delete", "clear"]);
  wrap(IDBIndex.prototype, "IDBIndex", reads);
  wrap(IDBDatabase.prototype, "IDBDatabase", ["transaction"]);
  wrap(IDBTransaction.prototype, "IDBTransaction", ["commit", "abort"]);
}
