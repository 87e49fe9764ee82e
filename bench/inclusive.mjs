// Self and callee time by function from a V8 CPU profile (what `scripts/bench --profile CASE`
// writes): each sample's time is counted once for every function on its stack. Main-thread time
// by function moves far less between runs than wall-clock time, so comparing two builds' figures
// here shows a change to CPU work that a noisy machine hides in A/B timings.
//
//   node bench/inclusive.mjs bench/results/bulkCreate-ferry.cpuprofile [--top 60] [--grep REGEX]
import { readFileSync } from "node:fs";

const args = process.argv.slice(2);
const opt = (k, d) => {
  const i = args.indexOf(`--${k}`);
  return i >= 0 ? args[i + 1] : d;
};
const file = args.find((a, i) => !a.startsWith("--") && !args[i - 1]?.startsWith("--"));
if (!file) {
  console.error("usage: node bench/inclusive.mjs PROFILE.cpuprofile [--top N] [--grep REGEX]");
  process.exit(2);
}
const top = Number(opt("top", 60));
const grep = opt("grep") ? new RegExp(opt("grep")) : null;

const p = JSON.parse(readFileSync(file, "utf8"));
const nodes = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of p.nodes) for (const c of n.children || []) parent.set(c, n.id);
// A sample's time is the delta to the next sample (the last one has none).
const self = new Map();
for (let i = 0; i < p.samples.length; i++) {
  const ms = (p.timeDeltas[i + 1] ?? 0) / 1000;
  self.set(p.samples[i], (self.get(p.samples[i]) || 0) + ms);
}
// Names without wasm's symbol hash, so one function's copies add up.
const label = (n) => (n.callFrame.functionName || "(anonymous)").replace(/::h[0-9a-f]{16}$/, "");
const incl = new Map();
for (const [id, ms] of self) {
  const seen = new Set(); // a recursive function counts once per sample
  for (let x = id; x !== undefined; x = parent.get(x)) {
    const name = label(nodes.get(x));
    if (seen.has(name)) continue;
    seen.add(name);
    incl.set(name, (incl.get(name) || 0) + ms);
  }
}
const rows = [...incl].filter(([name]) => !grep || grep.test(name)).sort((a, b) => b[1] - a[1]);
for (const [name, ms] of rows.slice(0, top)) console.log(`${ms.toFixed(1).padStart(9)} ms  ${name.slice(0, 150)}`);
