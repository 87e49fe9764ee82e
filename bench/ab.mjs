// Two builds of Ferry side by side in one browser: a page for each (each from its own server,
// so each loads its own package), the same case run in one page then the other, the order
// swapped every run. Machines here drift by more than most changes between two `scripts/bench`
// runs minutes apart; runs seconds apart, alternating, in one browser drift together. Prints
// the median of each, their ratio, and in how many pairs B was faster. Ferry only: the peers
// do not change between builds. Timings never decide a test.
//
//   node bench/ab.mjs --a URL_A --b URL_B [--case create] [--reps 8] [--n 10000] [--ops 1000]
// `--case` is a local case or `cold` (open and first query, each run in a new document).
// scripts/bench-ab builds nothing: it starts the two servers and calls this.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const args = process.argv.slice(2);
const opt = (k, d) => {
  const i = args.indexOf(`--${k}`);
  return i >= 0 ? args[i + 1] : d;
};
const urls = { A: opt("a"), B: opt("b") };
const kase = opt("case", "create");
const reps = Number(opt("reps", 8));
const n = Number(opt("n", 10000));
const ops = Number(opt("ops", 1000));
if (!urls.A || !urls.B) {
  console.error("usage: node bench/ab.mjs --a URL_A --b URL_B [--case C] [--reps N]");
  process.exit(2);
}

// On disk, as bench/run.mjs (an off-the-record profile keeps IndexedDB in memory).
const dir = mkdtempSync(join(tmpdir(), "ferry-ab-"));
const context = await chromium.launchPersistentContext(dir, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
});
const pages = {};
const ctx = {};
const ms = { A: [], B: [] };
try {
  for (const k of ["A", "B"]) {
    const page = await context.newPage();
    await page.goto(`${urls[k]}/index.html`);
    await page.waitForFunction(() => window.bench && window.bench.ready);
    const seedC = `seed${n}_${Date.now()}`;
    ctx[k] = { n, ops, seedUrl: `${urls[k]}/api/${seedC}` };
    await page.evaluate(([c, m]) => window.bench.seed(c, m), [seedC, n]);
    pages[k] = page;
  }
  // The page in front runs: Chromium gives a background tab's tasks a lower priority.
  const local = async (k) => {
    await pages[k].bringToFront();
    return pages[k].evaluate(([c, x]) => window.bench.runLocal(c, "ferry", x), [kase, ctx[k]]);
  };
  // Cold start: each build's store is prepared once (records pulled, updates pending); every run
  // is a new document that loads the build, opens that store and asks the first query.
  const prepared = {};
  if (kase === "cold") {
    for (const k of ["A", "B"]) {
      const made = await pages[k].evaluate((x) => window.bench.prepareCold(x), ctx[k]);
      prepared[k] = { ...made, n };
    }
  }
  const cold = async (k) => {
    const page = await context.newPage();
    try {
      await page.goto(`${urls[k]}/index.html`);
      await page.waitForFunction(() => window.bench && window.bench.ready);
      return await page.evaluate((x) => window.bench.runCold("ferry", x), prepared[k]);
    } finally {
      await page.close();
    }
  };
  const run = kase === "cold" ? cold : local;
  await run("A"); // warm: both modules compiled, both pages' caches filled
  await run("B");
  for (let r = 0; r < reps; r++) {
    for (const k of r % 2 ? ["B", "A"] : ["A", "B"]) ms[k].push((await run(k)).ms);
    process.stderr.write(`run ${r + 1}/${reps}: A ${ms.A[r].toFixed(0)} ms, B ${ms.B[r].toFixed(0)} ms\n`);
  }
  if (kase === "cold") for (const k of ["A", "B"]) await pages[k].evaluate((x) => window.bench.dropCold(x), prepared[k]);
} finally {
  await context.close();
  rmSync(dir, { recursive: true, force: true });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const faster = ms.B.filter((b, i) => b < ms.A[i]).length;
console.log(`${kase}, ${reps} runs each, alternating in one browser (ms, median (min–max)):`);
for (const k of ["A", "B"]) {
  console.log(`  ${k}: ${median(ms[k]).toFixed(0)} (${Math.min(...ms[k]).toFixed(0)}–${Math.max(...ms[k]).toFixed(0)})`);
}
console.log(`  B/A: ${(median(ms.B) / median(ms.A)).toFixed(2)}x; B faster in ${faster} of ${reps} pairs`);
