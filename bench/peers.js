// The four stores under test, behind one interface, so every case runs the same code for each:
//   open(name, opts) -> store with bulkCreate(records), create(record), update(id, changes),
//   remove(id), get(id), all(), query(cat), populate(records), close(), destroy().
// Every write of the peers is logged the way a sync store must log it:
//   raw:   the record and an outbox entry put in one IndexedDB transaction (the floor);
//   Dexie: the same two tables, written in one Dexie transaction;
//   Pouch: its own changes feed is its outbox (every put gets a revision and a feed entry).
import Dexie from "./dexie.mjs";
import PouchDB from "./pouchdb.mjs";

const req = (r) =>
  new Promise((ok, fail) => {
    r.onsuccess = () => ok(r.result);
    r.onerror = () => fail(r.error);
  });
const done = (tx) =>
  new Promise((ok, fail) => {
    tx.oncomplete = () => ok();
    tx.onerror = () => fail(tx.error);
    tx.onabort = () => fail(tx.error || new Error("aborted"));
  });
const entry = (kind, id) => ({ c: "items", r: id, kind, at: Date.now() });

export function deleteIdb(name) {
  return new Promise((ok) => {
    const r = indexedDB.deleteDatabase(name);
    r.onsuccess = r.onerror = r.onblocked = () => ok();
  });
}

// --- raw IndexedDB: the floor ------------------------------------------------------------------

export function rawOpen(name) {
  const r = indexedDB.open(name, 1);
  r.onupgradeneeded = () => {
    const db = r.result;
    db.createObjectStore("records", { keyPath: "id" }).createIndex("cat", "cat");
    db.createObjectStore("outbox", { autoIncrement: true });
  };
  return req(r);
}

export async function raw(name) {
  const db = await rawOpen(name);
  let auto = 0;
  const rw = () => {
    const tx = db.transaction(["records", "outbox"], "readwrite");
    return [tx, tx.objectStore("records"), tx.objectStore("outbox")];
  };
  const ro = () => db.transaction("records", "readonly").objectStore("records");
  return {
    async bulkCreate(recs) {
      const [tx, s, o] = rw();
      for (const rec of recs) {
        s.put(rec);
        o.add(entry("create", rec.id));
      }
      await done(tx);
    },
    populate(recs) {
      const tx = db.transaction("records", "readwrite");
      const s = tx.objectStore("records");
      for (const rec of recs) s.put(rec);
      return done(tx);
    },
    async create(rec) {
      const [tx, s, o] = rw();
      s.put(rec);
      o.add(entry("create", rec.id));
      await done(tx);
    },
    // A store that gives ids makes them without a request: a counter (Ferry: its node id and an
    // outbox position from the tab's reserved block).
    createAuto(rec) {
      return this.create({ id: `a${++auto}`, ...rec });
    },
    async update(id, changes) {
      const [tx, s, o] = rw();
      const rec = await req(s.get(id));
      s.put({ ...rec, ...changes });
      o.add(entry("update", id));
      await done(tx);
    },
    async remove(id) {
      const [tx, s, o] = rw();
      s.delete(id);
      o.add(entry("delete", id));
      await done(tx);
    },
    get: (id) => req(ro().get(id)),
    all: () => req(ro().getAll()),
    query: (cat) => req(ro().index("cat").getAll(cat)),
    close: () => db.close(),
    destroy: async () => (db.close(), deleteIdb(name)),
  };
}

// --- raw IndexedDB asking what Ferry asks: a diagnostic, not a peer -----------------------------
// A store that syncs must, before a write: see whether the id is taken (the row), whether it is a
// temporary id that became a server id (the alias, asked only where there is no row), and whether
// changes of the record are still pending (to fold the new one in; an index `getKey`, the entries
// themselves only when there are some). Its outbox position comes from a block the tab reserved
// (Ferry's `tx/alloc.rs`), so no request. A single create reads nothing: it adds the row and the
// outbox entry and commits at once, and an id in use without a row (a pending delete, a renamed id)
// holds a ghost in the records store that fails the row's add (Ferry's quick create); an update or
// a delete needs the row before it can write. This is plain JS issuing exactly Ferry's requests for one write, in Ferry's layout,
// so Ferry/checked is what Ferry adds (wasm, JSON, events) over its own request pattern, and
// checked/raw what that pattern costs.

export async function checked(name) {
  const r = indexedDB.open(name, 1);
  r.onupgradeneeded = () => {
    const db = r.result;
    db.createObjectStore("r:items").createIndex("ix.cat", "ix.cat");
    db.createObjectStore("outbox").createIndex("record", ["c", "r"]);
    db.createObjectStore("state");
    db.createObjectStore("aliases");
  };
  const db = await req(r);
  const STORES = ["r:items", "outbox", "state", "aliases"];
  const open = () => {
    const tx = db.transaction(STORES, "readwrite");
    return [tx, ...STORES.map((s) => tx.objectStore(s))];
  };
  let seq = 0; // this tab's block of outbox positions
  const entry = (id) => ({ seq: ++seq, id: `n-${seq}`, c: "items", r: id, kind: "update", at: Date.now() });
  const rowOf = (rec) => ({ d: rec, ix: { cat: rec.cat } });
  const write = async (id, f) => {
    const [tx, R, O] = open();
    const [row] = await Promise.all([req(R.get(id)), req(O.index("record").getKey(["items", id]))]);
    f(R, row);
    const e = entry(id);
    O.put(e, e.seq);
    tx.commit(); // Ferry commits as soon as its writes are issued
    await done(tx);
  };
  // Adds: a taken key (a row or a ghost) aborts the transaction (Ferry then creates the general
  // way; here the create throws).
  const create = async (rec) => {
    const [tx, R, O] = open();
    const e = entry(rec.id);
    O.add(e, e.seq);
    R.add(rowOf(rec), rec.id);
    tx.commit();
    await done(tx);
  };
  // No id from the app: a new temporary id cannot be taken, so only the two adds (which would
  // fail if their keys were) and the commit.
  const createAuto = async (rec) => {
    const [tx, R, O] = open();
    const e = { ...entry(), kind: "create" };
    const id = (e.r = `tmp-node-${e.seq}`);
    O.add(e, e.seq);
    R.add(rowOf({ ...rec, id }), id);
    tx.commit();
    await done(tx);
  };
  return {
    create,
    createAuto,
    update: (id, changes) => write(id, (R, row) => R.put(rowOf({ ...row.d, ...changes }), id)),
    remove: (id) => write(id, (R) => R.put({ g: 1 }, id)), // a ghost holds the id while the delete is pending
    populate(recs) {
      const tx = db.transaction("r:items", "readwrite");
      const s = tx.objectStore("r:items");
      for (const rec of recs) s.put(rowOf(rec), rec.id);
      return done(tx);
    },
    close: () => db.close(),
    destroy: async () => (db.close(), deleteIdb(name)),
  };
}

// --- Dexie 4 -----------------------------------------------------------------------------------

export async function dexie(name) {
  const db = new Dexie(name);
  db.version(1).stores({ records: "id, cat", outbox: "++seq" });
  await db.open();
  const { records, outbox } = db;
  let auto = 0;
  const rw = (f) => db.transaction("rw", records, outbox, f);
  return {
    bulkCreate: (recs) =>
      rw(() => {
        records.bulkPut(recs);
        outbox.bulkAdd(recs.map((r) => entry("create", r.id)));
      }),
    populate: (recs) => records.bulkPut(recs),
    create: (rec) =>
      rw(() => {
        records.put(rec);
        outbox.add(entry("create", rec.id));
      }),
    createAuto(rec) {
      return this.create({ id: `a${++auto}`, ...rec });
    },
    update: (id, changes) =>
      rw(async () => {
        await records.update(id, changes);
        outbox.add(entry("update", id));
      }),
    remove: (id) =>
      rw(() => {
        records.delete(id);
        outbox.add(entry("delete", id));
      }),
    get: (id) => records.get(id),
    all: () => records.toArray(),
    query: (cat) => records.where("cat").equals(cat).toArray(),
    close: () => db.close(),
    destroy: () => db.delete(),
  };
}

// --- PouchDB 9 (idb adapter) -------------------------------------------------------------------

export async function pouch(name) {
  const db = new PouchDB(name);
  const doc = (rec) => ({ _id: rec.id, ...rec });
  const designed = async () => {
    await db.put({ _id: "_design/ix", views: { cat: { map: "function (d) { emit(d.cat); }" } } });
    await db.query("ix/cat", { key: "none", limit: 0 }); // builds the view: not timed
  };
  return {
    async bulkCreate(recs) {
      await db.bulkDocs(recs.map(doc));
    },
    async populate(recs) {
      await db.bulkDocs(recs.map(doc));
      await designed();
    },
    async create(rec) {
      await db.put(doc(rec));
    },
    async createAuto(rec) {
      await db.post(rec); // PouchDB makes the _id
    },
    async update(id, changes) {
      const d = await db.get(id);
      await db.put({ ...d, ...changes });
    },
    async remove(id) {
      await db.remove(await db.get(id));
    },
    get: (id) => db.get(id),
    all: async () =>
      (await db.allDocs({ include_docs: true })).rows.filter((r) => !r.id.startsWith("_design/")).map((r) => r.doc),
    query: async (cat) =>
      (await db.query("ix/cat", { key: cat, include_docs: true })).rows.map((r) => r.doc),
    close: () => db.close(),
    destroy: () => db.destroy(),
  };
}

// --- Ferry -------------------------------------------------------------------------------------

let ferryModule;
export async function loadFerry() {
  if (!ferryModule) {
    ferryModule = await import("/pkg/ferry.js");
    await ferryModule.default();
  }
  return ferryModule;
}

export function ferryOptions(name, url, extra = {}) {
  return {
    name,
    collections: { items: { url, indexes: ["cat"] } },
    autoSync: false,
    pullAfterFlush: false,
    ...extra,
  };
}

// `seedUrl`: the server collection holding the records `populate` pulls (so Ferry's populated
// records are synced ones, with nothing pending, as the peers' populated records are).
export async function ferry(name, { seedUrl }) {
  const { Ferry } = await loadFerry();
  const db = await Ferry.open(ferryOptions(name, seedUrl));
  const col = db.collection("items");
  return {
    db,
    col,
    bulkCreate: (recs) => col.createMany(recs),
    populate: () => col.pull(),
    create: (rec) => col.create(rec),
    createAuto: (rec) => col.create(rec), // a temporary id now, the server's after sync
    update: (id, changes) => col.update(id, changes),
    remove: (id) => col.delete(id),
    get: (id) => col.get(id),
    all: () => col.all(),
    query: (cat) => col.query({ where: { cat } }),
    close: () => db.close(),
    destroy: async () => (db.close(), deleteIdb(name)),
  };
}

export const PEERS = { ferry, raw, dexie, pouch, checked };
