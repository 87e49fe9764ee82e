// The table and the targets of the issue, computed from one run's figures.
const NAMES = { ferry: "Ferry", raw: "raw IDB", dexie: "Dexie 4", pouch: "PouchDB 9" };
// The cold case's diagnostics (bench/page.js `runCold`), beside Ferry and raw IndexedDB.
const COLD_NAMES = { checked: "plain JS on Ferry's database", primed: "Ferry, its code already run once" };
export const LABELS = {
  bulkCreate: "bulk create (one call)",
  create: "single creates (app's ids)",
  createP50: "  single create p50, app's ids",
  createP95: "  single create p95, app's ids",
  createAuto: "single creates (store's ids)",
  createAutoP50: "  single create p50, store's ids",
  createAutoP95: "  single create p95, store's ids",
  update: "updates",
  remove: "deletes",
  get: "gets by id",
  all: "all records",
  query: "indexed query",
};

const ms = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const cell = (s) => (s ? `${ms(s.median)} (${ms(s.min)}–${ms(s.max)})` : "");
const ratio = (a, b) => (a && b ? a.median / b.median : undefined);
const x = (r) => (r === undefined ? "" : `${r.toFixed(2)}x`);

/** The local cases, in the order they run and print; those that also run "checked". */
export const LOCAL_CASES = ["bulkCreate", "create", "createAuto", "update", "remove", "get", "all", "query"];
export const CHECKED_CASES = ["create", "createAuto", "update", "remove"];

/** Rows of the local cases: [label, stat per peer]. */
export function localRows(f) {
  const rows = [];
  for (const c of LOCAL_CASES) {
    if (!f[c]) continue;
    const of = (k) => Object.fromEntries(Object.keys(NAMES).map((p) => [p, f[c][p]?.[k]]));
    rows.push([c, LABELS[c], of("ms")]);
    if (c === "create" || c === "createAuto") {
      rows.push([`${c}P50`, LABELS[`${c}P50`], of("p50")]);
      rows.push([`${c}P95`, LABELS[`${c}P95`], of("p95")]);
    }
  }
  return rows;
}

/** Every target of the issue, with the ratio that decides it. */
export function verdicts(f) {
  const v = [];
  const check = (what, r, ok) => r !== undefined && v.push({ what, ratio: r, met: ok(r) });
  for (const [key, label, s] of localRows(f)) {
    const write = /^(bulkCreate|create|update|remove)/.test(key);
    if (write) {
      check(`${label}: Ferry/raw ≤ 1.3`, ratio(s.ferry, s.raw), (r) => r <= 1.3);
      check(`${label}: Ferry/Dexie < 1`, ratio(s.ferry, s.dexie), (r) => r < 1);
      check(`${label}: Ferry/PouchDB < 1`, ratio(s.ferry, s.pouch), (r) => r < 1);
    } else {
      check(`${label}: Ferry/raw ≤ 1.5`, ratio(s.ferry, s.raw), (r) => r <= 1.5);
    }
  }
  if (f.sync) {
    const s = (m) => f.sync[m]?.ms;
    check("sync, batching on: naive/Ferry ≥ 10", ratio(s("naive"), s("batched")), (r) => r >= 10);
    check("sync, batching off: Ferry/naive ≤ 1", ratio(s("unbatched"), s("naive")), (r) => r <= 1);
  }
  if (f.size) check("size: wasm + glue ≤ 80 KB gz (KB)", f.size.ferry.bytes / 1024, (r) => r <= 80);
  if (f.cold) {
    check("cold start (open + query): Ferry/raw < 2", ratio(f.cold.ferry?.ms, f.cold.raw?.ms), (r) => r < 2);
  }
  return v;
}

function grid(rows) {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  const line = (r) => r.map((c, i) => (i ? String(c).padStart(w[i]) : String(c).padEnd(w[i]))).join("  ");
  return [line(rows[0]), w.map((n) => "-".repeat(n)).join("  "), ...rows.slice(1).map(line)].join("\n");
}

/** The one table: absolute medians (min–max) in ms and Ferry's ratios to each peer. */
export function table(result) {
  const f = result.figures;
  const p = result.params;
  const out = [
    `Ferry benchmark: ${p.records} records, ${p.ops} operations per loop, median (min–max) of ${p.reps} runs, ms; Chromium ${result.machine.chromium}, ${result.machine.cpus} cpus`,
    "",
  ];
  const rows = [["case", "Ferry", "raw IDB", "Dexie 4", "PouchDB 9", "F/raw", "F/Dexie", "F/Pouch"]];
  for (const [, label, s] of localRows(f)) {
    rows.push([label, cell(s.ferry), cell(s.raw), cell(s.dexie), cell(s.pouch), x(ratio(s.ferry, s.raw)), x(ratio(s.ferry, s.dexie)), x(ratio(s.ferry, s.pouch))]);
  }
  out.push(grid(rows));
  const checked = CHECKED_CASES.filter((c) => f[c]?.checked);
  if (checked.length) {
    out.push("", grid([
      ["single writes against Ferry's own requests in plain JS", "Ferry", "checked", "raw IDB", "Ferry/checked", "checked/raw"],
      ...checked.map((c) => {
        const s = f[c];
        return [LABELS[c], cell(s.ferry?.ms), cell(s.checked.ms), cell(s.raw?.ms), x(ratio(s.ferry?.ms, s.checked.ms)), x(ratio(s.checked.ms, s.raw?.ms))];
      }),
    ]));
  }
  if (f.sync) {
    const s = f.sync;
    const req = (m) => (s[m] ? `${s[m].requests.median}` : "");
    out.push("", grid([
      ["sync (offline creates + updates, then reconnect)", "ms", "HTTP requests", "mutations sent", "vs naive"],
      ...["batched", "unbatched", "naive"].filter((m) => s[m]).map((m) => [
        { batched: "Ferry, batching on", unbatched: "Ferry, batching off", naive: "naive replay (one request per mutation)" }[m],
        cell(s[m].ms), req(m), `${s[m].sent.median}`, m === "naive" ? "" : `${x(ratio(s.naive?.ms, s[m].ms))} faster`,
      ]),
    ]));
  }
  if (f.cold) {
    const c = f.cold;
    out.push("", grid([
      ["cold start (10k records, pending mutations)", "open + first query", "wasm load + init", "open", "query"],
      ...["ferry", "raw", "checked", "primed"].filter((k) => c[k]).map((k) => [COLD_NAMES[k] ?? NAMES[k], cell(c[k].ms), k === "primed" ? "" : cell(c[k].load), cell(c[k].open), cell(c[k].query)]),
    ]));
  }
  if (f.size) {
    const kb = (b) => `${(b / 1024).toFixed(1)} KB`;
    out.push("", grid([
      ["size (minified, gzip -9)", "bytes", ""],
      ["Ferry: wasm + JS glue", kb(f.size.ferry.bytes), `(wasm ${kb(f.size.ferry.wasm)}, js ${kb(f.size.ferry.js)})`],
      ["Dexie 4 (dexie.mjs)", kb(f.size.dexie.bytes), ""],
      ["PouchDB 9 (pouchdb-browser, bundled)", kb(f.size.pouch.bytes), ""],
    ]));
  }
  out.push("", "targets:");
  for (const v of result.verdicts) out.push(`  ${v.met ? "met   " : "MISSED"}  ${v.what}: ${v.ratio.toFixed(2)}`);
  return out.join("\n");
}
