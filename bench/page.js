// The benchmark cases, run in the page by bench/run.mjs through `window.bench`. Each call runs one
// case once for one store, on a fresh database, and answers its figures in milliseconds (plus
// counts the driver checks). Nothing here decides pass or fail: the driver prints and records.
import { PEERS, deleteIdb, ferryOptions, loadFerry, rawOpen, raw } from "./peers.js";

const LOREM =
  "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut " +
  "labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco.";

/** Record `i`: a JSON object of about 200 bytes, with an id and an indexed field `cat`. */
export function record(i, withId = true) {
  const r = {
    title: `Record number ${i}`,
    cat: `c${i % 10}`,
    n: i,
    done: i % 3 === 0,
    tags: ["alpha", `t${i % 7}`],
    body: LOREM.slice(0, 70 + (i % 20)),
  };
  return withId ? { id: `r${String(i).padStart(6, "0")}`, ...r } : r;
}
export const records = (n, withId = true) => Array.from({ length: n }, (_, i) => record(i, withId));

const now = () => performance.now();
// bench/profile.mjs profiles only the timed part of a case: console.profile() starts the V8
// profiler there (when DevTools' Profiler domain is enabled) and console.profileEnd() stops it.
let profiling = false;
const timing = (on) => profiling && (on ? console.profile("timed") : console.profileEnd("timed"));
let unique = 0;
const dbName = (what) => `bench-${what}-${Date.now()}-${unique++}`;

function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

/** Ids `ops` of `n` records, spread over the whole range. */
const spread = (n, ops) => Array.from({ length: ops }, (_, k) => record(Math.floor((k * n) / ops)).id);

async function timedLoop(items, f) {
  const lat = [];
  timing(true);
  const t0 = now();
  for (const x of items) {
    const t = now();
    await f(x);
    lat.push(now() - t);
  }
  timing(false);
  return { ms: now() - t0, p50: percentile(lat, 0.5), p95: percentile(lat, 0.95) };
}

async function fresh(peer, what, ctx, populate) {
  const store = await PEERS[peer](dbName(`${peer}-${what}`), ctx);
  if (populate) await store.populate(records(ctx.n));
  return store;
}

/** The local cases: `ctx` = { n, ops, seedUrl }. */
const LOCAL = {
  async bulkCreate(s, { n }) {
    const recs = records(n);
    timing(true);
    const t0 = now();
    await s.bulkCreate(recs);
    const ms = now() - t0;
    timing(false);
    return { ms };
  },
  create: (s, { n, ops }) =>
    timedLoop(Array.from({ length: ops }, (_, k) => record(n + k)), (r) => s.create(r)),
  // The same creates without ids: each store gives the record its own (what most apps do).
  async createAuto(s, { n, ops }) {
    const r = await timedLoop(Array.from({ length: ops }, (_, k) => record(n + k, false)), (x) => s.createAuto(x));
    const stored = s.all ? (await s.all()).length : ops; // "checked" has no reads
    if (stored !== ops) throw new Error(`createAuto: ${stored} records stored, not ${ops}`);
    return r;
  },
  update: (s, { n, ops }) =>
    timedLoop(spread(n, ops), (id) => s.update(id, { title: `changed ${id}`, done: true })),
  remove: (s, { n, ops }) => timedLoop(spread(n, ops), (id) => s.remove(id)),
  async get(s, { n, ops }) {
    const r = await timedLoop(spread(n, ops), async (id) => {
      if (!(await s.get(id))) throw new Error(`get ${id}: missing`);
    });
    return r;
  },
  async all(s, { n }) {
    const t0 = now();
    const all = await s.all();
    const ms = now() - t0;
    if (all.length !== n) throw new Error(`all: ${all.length} records, not ${n}`);
    return { ms };
  },
  async query(s, { n }) {
    const t0 = now();
    const hits = await s.query("c3");
    const ms = now() - t0;
    const want = records(n).filter((r) => r.cat === "c3").length;
    if (hits.length !== want) throw new Error(`query: ${hits.length} records, not ${want}`);
    return { ms };
  },
};
const POPULATED = new Set(["update", "remove", "get", "all", "query"]);

export async function runLocal(kase, peer, ctx) {
  const s = await fresh(peer, kase, ctx, POPULATED.has(kase));
  try {
    return await LOCAL[kase](s, ctx);
  } finally {
    await s.destroy();
  }
}

// --- server helpers ----------------------------------------------------------------------------

async function json(method, url, body) {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status}`);
  return res.status === 204 ? null : res.json();
}
const requests = async () => (await json("GET", "/__admin/stats")).requests;

/** Stores `n` records (ids r000000…) in server collection `c`, 500 per batch. */
export async function seed(c, n) {
  const recs = records(n);
  for (let i = 0; i < n; i += 500) {
    const requests = recs.slice(i, i + 500).map((body, k) => ({
      id: String(i + k),
      method: "POST",
      url: `/api/${c}`,
      body,
    }));
    const out = await json("POST", "/api/$batch", { requests });
    if (out.responses.some((r) => r.status !== 201)) throw new Error("seed: a create failed");
  }
}

// --- sync --------------------------------------------------------------------------------------

/**
 * `ops` offline creates and `ops` updates of those records, then reconnect: time until the outbox
 * is empty and the HTTP requests it took. `mode`: batched, unbatched (Ferry), or naive (each
 * mutation replayed as its own request, in order, as Workbox background sync does).
 */
export async function runSync(mode, { ops }) {
  const c = `sync_${mode}_${Date.now()}_${unique++}`;
  const url = `${location.origin}/api/${c}`;
  const recs = records(ops, false);
  if (mode === "naive") {
    const before = await requests();
    const t0 = now();
    const ids = [];
    for (const r of recs) ids.push((await json("POST", url, r)).id);
    for (let k = 0; k < ops; k++) {
      await json("PUT", `${url}/${encodeURIComponent(ids[k])}`, { ...recs[k], title: `changed ${k}` });
    }
    const ms = now() - t0;
    return { ms, requests: (await requests()) - before, sent: 2 * ops };
  }
  const { Ferry } = await loadFerry();
  const name = dbName(`sync-${mode}`);
  const extra = mode === "batched" ? { batchUrl: `${location.origin}/api/$batch`, batchSize: 100 } : {};
  const db = await Ferry.open(ferryOptions(name, url, extra));
  const col = db.collection("items");
  const made = await col.createMany(recs);
  for (const [k, r] of made.entries()) await col.update(r.id, { title: `changed ${k}` });
  const pending = await db.pendingCount();
  const before = await requests();
  timing(true);
  const t0 = now();
  await db.sync();
  const ms = now() - t0;
  timing(false);
  const after = await requests();
  const left = await db.pendingCount();
  const stored = (await json("GET", url)).data.length;
  db.close();
  await deleteIdb(name);
  if (left !== 0 || stored !== ops) throw new Error(`sync ${mode}: ${left} left, ${stored} stored`);
  return { ms, requests: after - before, sent: pending };
}

// --- cold start --------------------------------------------------------------------------------

/**
 * Prepares the cold-start databases: `n` records and `ops` pending mutations in each. Ferry's
 * records come from the server (pulled, nothing pending), then `ops` of them are updated.
 */
export async function prepareCold(ctx) {
  const { n, ops, seedUrl } = ctx;
  const names = { ferry: dbName("cold-ferry"), raw: dbName("cold-raw") };
  const f = await PEERS.ferry(names.ferry, ctx);
  await f.populate();
  for (const id of spread(n, ops)) await f.update(id, { title: `changed ${id}` });
  const pending = await f.db.pendingCount();
  f.close();
  const r = await raw(names.raw);
  await r.populate(records(n));
  for (const id of spread(n, ops)) await r.update(id, { title: `changed ${id}` });
  r.close();
  return { names, pending, seedUrl };
}

/** In a freshly loaded page: open the store and answer the first query. */
export async function runCold(peer, { names, seedUrl, n }) {
  const want = records(n).filter((r) => r.cat === "c3").length;
  const t0 = now();
  let hits, tLoad, tOpen;
  if (peer === "ferry" || peer === "primed") {
    const { Ferry } = await loadFerry(); // the module and its wasm: fetched, compiled, started
    if (peer === "primed") {
      // A diagnostic, not a peer: the same open and query run once first on another (empty)
      // store, so that V8 has compiled the code they take (it compiles each wasm function, and
      // each JS function, when it is first called). What is left is mostly Ferry's work on the
      // data (code only a store with data reaches is still compiled in the timed part).
      const other = dbName("cold-primer");
      const o = await Ferry.open(ferryOptions(other, seedUrl));
      await o.collection("items").query({ where: { cat: "c3" } });
      o.close();
      await deleteIdb(other);
      await new Promise((ok) => setTimeout(ok, 100)); // its garbage and its deletion, out of the way
    } // (so a primed run's `load` and `total` include the priming: only `ms` compares)
    timing(true);
    tLoad = now();
    const db = await Ferry.open(ferryOptions(names.ferry, seedUrl));
    tOpen = now();
    hits = await db.collection("items").query({ where: { cat: "c3" } });
    timing(false);
    db.close();
  } else if (peer === "checked") {
    // Plain JS reading Ferry's own database: what the layout costs, without Ferry's code.
    tLoad = now();
    const db = await new Promise((ok, fail) => {
      const r = indexedDB.open(names.ferry);
      r.onsuccess = () => ok(r.result);
      r.onerror = () => fail(r.error);
    });
    tOpen = now();
    const tx = db.transaction("r:items", "readonly");
    hits = await new Promise((ok, fail) => {
      const r = tx.objectStore("r:items").index("ix.cat").getAll([3, "c3"]); // Ferry's key encoding
      r.onsuccess = () => ok(r.result.map((x) => x.d));
      r.onerror = () => fail(r.error);
    });
    db.close();
  } else {
    tLoad = now();
    const db = await rawOpen(names.raw);
    tOpen = now();
    const tx = db.transaction("records", "readonly");
    hits = await new Promise((ok, fail) => {
      const r = tx.objectStore("records").index("cat").getAll("c3");
      r.onsuccess = () => ok(r.result);
      r.onerror = () => fail(r.error);
    });
    db.close();
  }
  const end = now();
  if (hits.length !== want) throw new Error(`cold ${peer}: ${hits.length} hits, not ${want}`);
  return { ms: end - tLoad, load: tLoad - t0, open: tOpen - tLoad, query: end - tOpen, total: end - t0 };
}

export async function dropCold({ names }) {
  await deleteIdb(names.ferry);
  await deleteIdb(names.raw);
}

const profile = (on) => (profiling = on);
window.bench = { profile, runLocal, runSync, seed, prepareCold, runCold, dropCold, ready: true };
