// Drives the benchmark: headless Chromium (playwright-core, Debian's chromium) on the page that
// scripts/bench serves next to the reference server; prints one table of ratios, writes the raw
// figures to bench/results/bench-<time>.json (and latest.json) and draws bench/results/bench.svg.
//
//   node bench/run.mjs --url http://127.0.0.1:PORT --pkg DIR --static DIR [--smoke] [--reps R]
//
// Every figure is the median of R runs (min and max beside it); each run of each case starts
// from a fresh database. --smoke runs tiny sizes once and checks only that every case produced
// numbers (exit 1 otherwise); timings never decide anything.
import { chromium } from "playwright-core";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { cpus, tmpdir } from "node:os";
import { transformSync } from "esbuild";
import { chart } from "./chart.mjs";
import { CHECKED_CASES as CHECKED, LOCAL_CASES as LOCAL, table, verdicts } from "./report.mjs";

const args = process.argv.slice(2);
const opt = (k, d) => {
  const i = args.indexOf(`--${k}`);
  return i >= 0 ? args[i + 1] : d;
};
const smoke = args.includes("--smoke");
const base = opt("url");
const pkgDir = opt("pkg");
const staticDir = opt("static");
const outDir = opt("out", new URL("./results/", import.meta.url).pathname);
const n = Number(opt("n", smoke ? 200 : 10000));
const ops = Number(opt("ops", smoke ? 20 : 1000));
const reps = Number(opt("reps", smoke ? 1 : 5));
const only = opt("only", ""); // comma-separated case names, for profiling one case
if (!base || !pkgDir || !staticDir) {
  console.error("usage: node bench/run.mjs --url URL --pkg DIR --static DIR [--smoke] [--reps R]");
  process.exit(2);
}

const PEERS = ["ferry", "raw", "dexie", "pouch"];
// The single-write cases (CHECKED) also run "checked": plain JS issuing Ferry's own IndexedDB requests.
// --sync batched narrows the sync modes (for an A/B of the batched path alone).
const SYNC = opt("sync", "batched,unbatched,naive").split(",");
const want = (c) => !only || only.split(",").includes(c);

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { median, min: s[0], max: s[s.length - 1], runs: xs };
};

// --- sizes -------------------------------------------------------------------------------------

function files(dir, test) {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p, test) : test(p) ? [p] : [];
  });
}
const gz = (buf) => gzipSync(buf, { level: 9 }).length;
const minGz = (p) => gz(Buffer.from(transformSync(readFileSync(p, "utf8"), { minify: true, format: "esm" }).code));

function sizes() {
  const js = files(pkgDir, (p) => p.endsWith(".js"));
  const wasm = files(pkgDir, (p) => p.endsWith(".wasm"));
  const ferryJs = js.reduce((a, p) => a + minGz(p), 0);
  const ferryWasm = wasm.reduce((a, p) => a + gz(readFileSync(p)), 0);
  return {
    ferry: { bytes: ferryJs + ferryWasm, js: ferryJs, wasm: ferryWasm, files: [...js, ...wasm].map((p) => p.slice(pkgDir.length + 1)) },
    dexie: { bytes: minGz(join(staticDir, "dexie.mjs")) },
    pouch: { bytes: minGz(join(staticDir, "pouchdb.mjs")) },
  };
}

// --- the run -----------------------------------------------------------------------------------

// A persistent profile on disk, as a user's browser has: a context from `browser.newContext()` is
// off the record, and Chromium keeps an off-the-record profile's IndexedDB in memory.
// `--memory-profile` measures that instead.
const launch = {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
};
const onDisk = !args.includes("--memory-profile");
const profileDir = onDisk ? mkdtempSync(join(tmpdir(), "ferry-bench-")) : null;
const offRecord = onDisk ? null : await chromium.launch(launch);
const context = onDisk ? await chromium.launchPersistentContext(profileDir, launch) : await offRecord.newContext();
const page = await context.newPage();
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
const open = async (p) => {
  await p.goto(`${base}/index.html`);
  await p.waitForFunction(() => window.bench && window.bench.ready);
};
await open(page);
const call = (p, fn, ...a) => p.evaluate(([fn, a]) => window.bench[fn](...a), [fn, a]);

const seedC = `seed${n}_${Date.now()}`;
const ctx = { n, ops, seedUrl: `${base}/api/${seedC}` };
await call(page, "seed", seedC, n);

const raw = { local: {}, sync: {}, cold: {} };
const push = (o, k, p, v) => (((o[k] ??= {})[p] ??= []).push(v));
const log = (s) => process.stderr.write(s);
const t0 = Date.now();
for (let r = 0; r < reps; r++) {
  log(`run ${r + 1}/${reps}:`);
  const order = PEERS.map((_, i) => PEERS[(i + r) % PEERS.length]); // a different peer goes first each run
  for (const c of LOCAL.filter(want)) {
    for (const p of CHECKED.includes(c) ? [...order, "checked"] : order) {
      push(raw.local, c, p, await call(page, "runLocal", c, p, ctx));
    }
    log(` ${c}`);
  }
  if (want("sync")) {
    for (const m of SYNC) push(raw.sync, "sync", m, await call(page, "runSync", m, ctx));
    log(" sync");
  }
  if (want("cold")) {
    const prepared = { ...(await call(page, "prepareCold", ctx)), n };
    // "checked": plain JS opening Ferry's own database and asking the same query; "primed": Ferry
    // after the same open and query on another store in the page (its code already compiled).
    for (const p of r % 2 ? ["raw", "checked", "primed", "ferry"] : ["ferry", "primed", "checked", "raw"]) {
      const cold = await context.newPage(); // a new document: nothing loaded, no connection open
      cold.on("pageerror", (e) => errors.push(String(e)));
      await open(cold);
      push(raw.cold, "cold", p, await call(cold, "runCold", p, prepared));
      await cold.close();
    }
    await call(page, "dropCold", prepared);
    log(" cold");
  }
  log(` (${Math.round((Date.now() - t0) / 1000)} s)\n`);
}
const cdp = await context.newCDPSession(page);
const version = (await cdp.send("Browser.getVersion")).product.replace(/^\D*\//, "");
await context.close();
if (offRecord) await offRecord.close();
if (profileDir) rmSync(profileDir, { recursive: true, force: true });

// --- figures -----------------------------------------------------------------------------------

const figures = {};
for (const [group, cases] of Object.entries(raw)) {
  for (const [c, peers] of Object.entries(cases)) {
    for (const [p, runs] of Object.entries(peers)) {
      const keys = Object.keys(runs[0]).filter((k) => typeof runs[0][k] === "number");
      const f = {};
      for (const k of keys) f[k] = stats(runs.map((x) => x[k]));
      (figures[c] ??= { group })[p] = f;
    }
  }
}
if (want("size")) figures.size = { group: "size", ...sizes() };

const result = {
  when: new Date().toISOString(),
  smoke,
  params: { records: n, ops, reps, recordBytes: JSON.stringify({ id: "r000000", title: "Record number 5000", cat: "c0", n: 5000, done: false, tags: ["alpha", "t2"], body: "x".repeat(80) }).length },
  machine: { chromium: version, cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version },
  figures,
  errors,
};
result.verdicts = verdicts(figures);
mkdirSync(outDir, { recursive: true });
const stamp = result.when.replace(/[:.]/g, "-");
writeFileSync(join(outDir, `bench-${stamp}.json`), JSON.stringify(result, null, 2));
writeFileSync(join(outDir, "latest.json"), JSON.stringify(result, null, 2));
writeFileSync(join(outDir, "bench.svg"), chart(result));
console.log(table(result));
console.log(`\nraw figures: ${join(outDir, `bench-${stamp}.json`)}\nchart: ${join(outDir, "bench.svg")}`);

// The smoke check: every case ran for every store and produced finite numbers. Never timings.
const missing = [];
const finite = (f) => f && Object.values(f).every((s) => s.runs.every(Number.isFinite));
for (const c of LOCAL.filter(want)) for (const p of PEERS) if (!finite(figures[c]?.[p])) missing.push(`${c}/${p}`);
if (want("sync")) for (const m of SYNC) if (!finite(figures.sync?.[m])) missing.push(`sync/${m}`);
if (want("cold")) for (const p of ["ferry", "raw", "checked", "primed"]) if (!finite(figures.cold?.[p])) missing.push(`cold/${p}`);
if (want("size")) for (const p of ["ferry", "dexie", "pouch"]) if (!(figures.size[p].bytes > 0)) missing.push(`size/${p}`);
if (errors.length) console.error(`page errors:\n${errors.join("\n")}`);
if (missing.length || errors.length) {
  console.error(`bench: no figures for ${missing.join(", ") || "(page errors)"}`);
  process.exit(1);
}
if (smoke) console.log("bench smoke: every case ran and produced numbers");
