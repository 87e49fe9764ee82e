// The chart: an SVG with one panel per group. Local cases are drawn relative to raw IndexedDB on
// a log axis (1x = the floor), each bar a median with a whisker from min to max.
import { localRows } from "./report.mjs";

const COLORS = { ferry: "#d9480f", raw: "#868e96", dexie: "#1971c2", pouch: "#2f9e44", batched: "#d9480f", unbatched: "#f08c00", naive: "#868e96" };
const NAMES = { ferry: "Ferry", raw: "raw IndexedDB", dexie: "Dexie 4", pouch: "PouchDB 9", batched: "Ferry, batching on", unbatched: "Ferry, batching off", naive: "naive replay" };
const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;");
const W = 900;
const LEFT = 190;
const RIGHT = 40;

/** One horizontal bar panel. `groups`: [{ label, bars: [{ key, v, lo, hi, note }] }]. */
function panel(y, title, groups, { log, unit, ref }) {
  const all = groups.flatMap((g) => g.bars.flatMap((b) => [b.v, b.lo ?? b.v, b.hi ?? b.v])).filter((v) => v > 0);
  const hi = Math.max(...all, ref ?? 0) * 1.15;
  const lo = log ? Math.min(...all, ref ?? Infinity) / 1.5 : 0;
  const span = W - LEFT - RIGHT;
  const px = (v) => LEFT + (log ? (Math.log(v / lo) / Math.log(hi / lo)) * span : (v / hi) * span);
  const out = [`<text x="10" y="${y + 16}" font-weight="bold">${esc(title)}</text>`];
  let cy = y + 30;
  for (const g of groups) {
    out.push(`<text x="${LEFT - 8}" y="${cy + (g.bars.length * 14) / 2 + 4}" text-anchor="end">${esc(g.label)}</text>`);
    for (const b of g.bars) {
      const x0 = log ? LEFT : px(0);
      out.push(`<rect x="${x0}" y="${cy}" width="${Math.max(1, px(b.v) - x0)}" height="11" fill="${COLORS[b.key]}"><title>${esc(`${NAMES[b.key]}: ${b.v.toFixed(2)} ${unit}`)}</title></rect>`);
      if (b.lo !== undefined) {
        out.push(`<line x1="${px(b.lo)}" x2="${px(b.hi)}" y1="${cy + 5.5}" y2="${cy + 5.5}" stroke="#000" stroke-width="1"/>`);
      }
      out.push(`<text x="${px(Math.max(b.v, b.hi ?? b.v)) + 4}" y="${cy + 10}" font-size="10">${esc(b.note ?? `${b.v.toFixed(b.v < 10 ? 2 : 0)} ${unit}`)}</text>`);
      cy += 14;
    }
    cy += 8;
  }
  if (ref !== undefined) {
    out.push(`<line x1="${px(ref)}" x2="${px(ref)}" y1="${y + 24}" y2="${cy}" stroke="#000" stroke-dasharray="4 3"/>`);
    out.push(`<text x="${px(ref) + 3}" y="${y + 26}" font-size="10">raw IndexedDB = 1x</text>`);
  }
  return { svg: out.join("\n"), height: cy - y + 10 };
}

export function chart(result) {
  const f = result.figures;
  const panels = [];
  const rows = localRows(f);
  if (rows.length) {
    panels.push(["Local reads and writes: time relative to raw IndexedDB (log scale; bar = median, whisker = min to max)",
      rows.filter(([, , s]) => s.raw).map(([, label, s]) => ({
        label: label.trim(),
        bars: ["ferry", "dexie", "pouch"].filter((p) => s[p]).map((p) => ({
          key: p, v: s[p].median / s.raw.median, lo: s[p].min / s.raw.median, hi: s[p].max / s.raw.median,
          note: `${(s[p].median / s.raw.median).toFixed(2)}x (${s[p].median.toFixed(0)} ms)`,
        })),
      })), { log: true, unit: "x", ref: 1 }]);
  }
  if (f.sync) {
    panels.push(["Sync of offline changes: time until the outbox is empty (ms, log scale)",
      [{ label: "1,000 creates + 1,000 updates", bars: ["batched", "unbatched", "naive"].filter((m) => f.sync[m]).map((m) => ({
        key: m, v: f.sync[m].ms.median, lo: f.sync[m].ms.min, hi: f.sync[m].ms.max,
        note: `${f.sync[m].ms.median.toFixed(0)} ms, ${f.sync[m].requests.median} requests (${NAMES[m]})`,
      })) }], { log: true, unit: "ms" }]);
  }
  if (f.cold) {
    panels.push(["Cold start: open a store with records and pending mutations, until the first query answers (ms)",
      [{ label: "open + query", bars: ["ferry", "raw"].filter((p) => f.cold[p]).map((p) => ({ key: p, v: f.cold[p].ms.median, lo: f.cold[p].ms.min, hi: f.cold[p].ms.max })) },
       { label: "wasm load + init", bars: f.cold.ferry ? [{ key: "ferry", v: f.cold.ferry.load.median, lo: f.cold.ferry.load.min, hi: f.cold.ferry.load.max }] : [] }],
      { log: false, unit: "ms" }]);
  }
  if (f.size) {
    panels.push(["Size: minified and gzipped (KB)",
      [{ label: "browser build", bars: ["ferry", "dexie", "pouch"].map((p) => ({ key: p, v: f.size[p].bytes / 1024, note: `${(f.size[p].bytes / 1024).toFixed(1)} KB (${NAMES[p]})` })) }],
      { log: false, unit: "KB" }]);
  }
  let y = 52;
  const body = [];
  for (const [title, groups, o] of panels) {
    const p = panel(y, title, groups, o);
    body.push(p.svg);
    y += p.height + 10;
  }
  const legend = ["ferry", "raw", "dexie", "pouch"].map((k, i) =>
    `<rect x="${10 + i * 130}" y="${y}" width="12" height="12" fill="${COLORS[k]}"/><text x="${26 + i * 130}" y="${y + 11}">${NAMES[k]}</text>`).join("");
  const p = result.params;
  // Two lines: the run's time and browser on one line with the title ran past the chart's width.
  const head = `<text x="10" y="20" font-size="14" font-weight="bold">Ferry vs raw IndexedDB, Dexie and PouchDB: ${p.records} records, ${p.ops} ops, median of ${p.reps} runs</text>
<text x="10" y="36" font-size="11">${esc(result.when)}, Chromium ${esc(result.machine.chromium)}</text>`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y + 30}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#fff"/>
${head}
${body.join("\n")}
${legend}
</svg>
`;
}
