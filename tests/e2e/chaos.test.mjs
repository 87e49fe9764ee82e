// Issue 7, chaos: whatever happens to the page, the network or the server mid-flush, afterwards
// nothing is lost and nothing is duplicated, checked against the server's data (/__admin/dump).
// Every record carries a unique `key`, so a duplicate on the server is a key seen twice. A bare
// page (tests/e2e/chaos-page/) loads Ferry; the tests drive it through `window.ferry`.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { launch, watch } from "./helpers.mjs";
import {
  assertConverged, drained, freePort, openPage, openStore, startServer, state, until,
} from "./chaos-page/lib.mjs";

const WRITES = ["POST", "PUT", "PATCH", "DELETE"];
const figures = {};

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
  console.log("chaos figures:", JSON.stringify(figures));
});

/**
 * In the page: `creates` new records (keys `${prefix}-<i>`), then an update of every `updateEvery`th
 * and a delete of every `deleteEvery`th record the page already has that is not new. Returns the
 * changes as [key, v | null] pairs, for the test's model of what the server must end up with.
 */
function writeBurst(page, { prefix, creates, updateEvery = 5, deleteEvery = 11 }) {
  return page.evaluate(async ({ prefix, creates, updateEvery, deleteEvery }) => {
    const { items } = window.ferry;
    const old = (await items.all()).sort((a, b) => (a.key < b.key ? -1 : 1));
    const out = [];
    for (let i = 0; i < creates; i++) {
      await items.create({ key: `${prefix}-${String(i).padStart(3, "0")}`, v: 0 });
      out.push([`${prefix}-${String(i).padStart(3, "0")}`, 0]);
    }
    for (let i = 0; i < old.length; i++) {
      const r = old[i];
      if (i % deleteEvery === 3) {
        await items.delete(r.id);
        out.push([r.key, null]);
      } else if (i % updateEvery === 1) {
        await items.update(r.id, { v: r.v + 1 });
        out.push([r.key, r.v + 1]);
      }
    }
    return out;
  }, { prefix, creates, updateEvery, deleteEvery });
}

function apply(model, changes) {
  for (const [key, v] of changes) {
    if (v === null) model.delete(key);
    else model.set(key, v);
  }
  return changes.length;
}

test("reloading the page while a flush is in flight loses nothing and duplicates nothing", async () => {
  const server = await startServer();
  const context = await browser.newContext();
  // Odd rounds batch (10 mutations a request), even rounds send one request per mutation.
  const options = (round) => (round % 2 ? { batchUrl: "/api/$batch", batchSize: 10 } : {});
  const page = await openPage(context, server.url, "reload", options(0));
  const model = new Map();
  let mutations = 0;
  let reloads = 0;
  let inFlightAtReload = 0;
  try {
    for (let round = 0; round < 4; round++) {
      await context.setOffline(true);
      mutations += apply(model, await writeBurst(page, { prefix: `r${round}`, creates: 40 }));
      const queued = (await state(page)).pending;
      assert.ok(queued >= 40, `round ${round}: ${queued} queued`);
      // Every write's answer is held 400 ms after the server committed it; reads pass.
      await server.admin("/__admin/faults", { delayMs: 400, methods: WRITES });
      await context.setOffline(false);
      for (let k = 0; k < 2; k++) {
        const { writes } = await server.stats();
        // The server applied a write whose answer has not reached the page yet: reload now.
        await until(async () => (await server.stats()).writes > writes, `round ${round}: a write committed`, 30_000);
        const pending = await page.evaluate(() => window.ferry.db.pendingCount());
        assert.ok(pending > 0, "the flush was still running");
        inFlightAtReload += pending;
        await page.reload();
        reloads++;
        await openStore(page, "reload", options(round + k + 1));
      }
    }
    await server.admin("/__admin/reset", {});
    await page.evaluate(() => window.ferry.db.sync());
    await drained(page);
    const result = await assertConverged(page, server, { expected: model });
    const stats = await server.stats();
    // Writes the server committed while their answers were held were in flight at each reload
    // (asserted above); the reopened store either sent them again under their keys (replays) or,
    // for creates, first found them on the server by their client ids. Either way each is stored
    // once: `assertConverged` compares the server's records with the model.
    assert.ok(inFlightAtReload > 0, "writes were out at the reloads");
    assert.deepEqual(page.errors, []);
    figures.reload = { mutations, reloads, pendingAtReloads: inFlightAtReload, replays: stats.idempotentReplays, ...result };
  } finally {
    await context.close();
    await server.stop();
  }
});

test("reloading the page while a slow server is still storing a create, on a server that ignores Idempotency-Key, stores it once", async () => {
  const server = await startServer();
  const context = await browser.newContext();
  const page = await openPage(context, server.url, "stall");
  try {
    await context.setOffline(true);
    const model = new Map();
    apply(model, await writeBurst(page, { prefix: "s", creates: 3 }));
    // Each create is held 5 s before the server stores it (longer than a reload and a lookup
    // take), and sent again it is stored again.
    await server.admin("/__admin/faults", { stallMs: 5000, methods: ["POST"], ignoreIdempotencyKey: true });
    const before = await server.stats();
    await context.setOffline(false);
    await until(async () => ((await server.stats()).byMethod.POST ?? 0) > (before.byMethod.POST ?? 0), "a create reached the server", 30_000);
    // The server has the first create and has not stored it: the page goes before its answer.
    assert.equal((await server.items()).length, 0, "not stored yet");
    await page.reload();
    await openStore(page, "stall");
    // sync() sits out the wait for the create that was out: it resolves, it does not fail.
    await page.evaluate(() => window.ferry.db.sync());
    await until(async () => (await server.items()).length >= 3, "the three creates stored", 30_000);
    await drained(page, "the outbox to drain", 30_000);
    await server.admin("/__admin/faults", { stallMs: 0, ignoreIdempotencyKey: false });
    await assertConverged(page, server, { expected: model });
    const posts = (await server.stats()).byMethod.POST - (before.byMethod.POST ?? 0);
    assert.equal(posts, 3, "each create sent once: the one out at the reload was looked for, not sent again");
    assert.deepEqual(page.errors, []);
  } finally {
    await context.close();
    await server.stop();
  }
});

test("the server killed (SIGKILL) and restarted on its SQLite file mid-flush: Ferry retries and converges", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ferry-chaos-"));
  const db = join(dir, "chaos.sqlite");
  const port = await freePort();
  let server = await startServer({ port, db });
  const context = await browser.newContext();
  const page = await openPage(context, server.url, "restart");
  const model = new Map();
  let mutations = 0;
  let restarts = 0;
  let committedBeforeKill = 0;
  const recoveries = [];
  try {
    for (let round = 0; round < 3; round++) {
      await server.admin("/__admin/faults", { delayMs: 500, methods: WRITES });
      const { writes } = await server.stats();
      mutations += apply(model, await writeBurst(page, { prefix: `k${round}`, creates: 30 }));
      await until(async () => (await server.stats()).writes > writes, `round ${round}: a write committed`, 30_000);
      committedBeforeKill += (await server.stats()).writes - writes;
      const killed = await server.kill();
      assert.equal(killed.signal, "SIGKILL");
      // Ferry saw the failure and backs off with the rest still queued.
      const seen = await until(async () => {
        const s = await state(page);
        return s.status.lastError && s.pending > 0 && s;
      }, `round ${round}: Ferry to see the server gone`);
      server = await startServer({ port, db });
      restarts++;
      assert.equal(server.url, `http://127.0.0.1:${port}`);
      if (round < 2) {
        // Its own retry (backoff: 1 s, 2 s, … with jitter) drains the outbox.
        await drained(page, `round ${round}: the outbox to drain by itself`, 90_000);
        recoveries.push({ how: "backoff", lastError: seen.status.lastError });
      } else {
        await page.evaluate(() => window.ferry.db.sync());
        recoveries.push({ how: "sync()", lastError: seen.status.lastError });
      }
    }
    await server.admin("/__admin/reset", {});
    await page.evaluate(() => window.ferry.db.sync());
    await drained(page);
    const result = await assertConverged(page, server, { expected: model });
    assert.deepEqual(page.errors, []);
    figures.restart = { mutations, restarts, committedBeforeKill, recoveries, ...result };
  } finally {
    await context.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("500 mutations while the network flaps every few hundred ms: every local record equals the server's", async () => {
  const server = await startServer();
  const context = await browser.newContext();
  const page = await openPage(context, server.url, "flap");
  let flaps = 0;
  let done = false;
  try {
    // The page makes 500 seeded creates, updates and deletes, a little apart, and keeps its own
    // model of what it wrote.
    const work = page.evaluate(async (count) => {
      const { items } = window.ferry;
      let seed = 7;
      const rnd = (n) => {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        return seed % n;
      };
      const model = new Map(); // key -> v
      const live = []; // keys
      const kinds = { create: 0, update: 0, delete: 0 };
      for (let i = 0; i < count; i++) {
        const pick = live.length < 5 ? 0 : rnd(10);
        if (pick < 5) {
          const key = `f-${String(i).padStart(3, "0")}`;
          await items.create({ key, v: 0 });
          model.set(key, 0);
          live.push(key);
          kinds.create++;
        } else {
          const at = rnd(live.length);
          const key = live[at];
          const r = (await items.query({ where: { key } }))[0];
          if (pick < 8) {
            await items.update(r.id, { v: model.get(key) + 1 });
            model.set(key, model.get(key) + 1);
            kinds.update++;
          } else {
            await items.delete(r.id);
            model.delete(key);
            live.splice(at, 1);
            kinds.delete++;
          }
        }
        if (i % 5 === 4) await new Promise((r) => setTimeout(r, 60)); // spread over the flaps
      }
      return { model: [...model], kinds };
    }, 500).finally(() => (done = true));

    const flapping = (async () => {
      let offline = false;
      let seed = 3;
      while (!done) {
        offline = !offline;
        await context.setOffline(offline);
        flaps++;
        seed = (seed * 69069 + 1) % 4294967296;
        await new Promise((r) => setTimeout(r, 150 + (seed % 300))); // 150–450 ms
      }
      await context.setOffline(false);
    })();
    const { model, kinds } = await work;
    await flapping;
    assert.ok(flaps >= 10, `only ${flaps} flaps`);
    await page.evaluate(() => window.ferry.db.sync());
    await drained(page);
    const result = await assertConverged(page, server, { expected: new Map(model) });
    const events = await page.evaluate(() => ({
      conflicts: window.ferry.events.conflict.length, rejected: window.ferry.events.rejected.length,
    }));
    assert.deepEqual(events, { conflicts: 0, rejected: 0 });
    assert.deepEqual(page.errors, []);
    const stats = await server.stats();
    figures.flap = { mutations: 500, kinds, flaps, ...result, requests: stats.requests, writes: stats.writes, replays: stats.idempotentReplays, failedRequests: page.httpErrors.length };
  } finally {
    done = true;
    await context.close();
    await server.stop();
  }
});

/**
 * A context whose page has the origin's quota emulated at `quota` bytes, with the store `name`
 * open, offline (so the outbox only grows and its counts are ours to predict), and `ballast`
 * bytes in a raw IndexedDB database of the same origin that the test can drop to free space.
 * The override must come before the origin first opens IndexedDB: Chromium 156 does not enforce
 * a quota set later on IndexedDB writes (getUsageAndQuota shows it, writes ignore it).
 * Returns null when the CDP method is missing.
 */
async function nearQuota(server, name, { quota = 3 * 1024 * 1024, ballast = 0 } = {}) {
  const context = await browser.newContext();
  const page = await context.newPage();
  watch(page);
  const cdp = await context.newCDPSession(page);
  const origin = server.url;
  const overridden = await cdp.send("Storage.overrideQuotaForOrigin", { origin, quotaSize: quota })
    .then(() => true, (e) => e.message);
  if (overridden !== true) {
    await context.close();
    return { skip: `Storage.overrideQuotaForOrigin is not available in this Chromium: ${overridden}` };
  }
  await page.goto(origin + "/");
  await openStore(page, name);
  const usage = await cdp.send("Storage.getUsageAndQuota", { origin });
  assert.equal(usage.quota, quota);
  await page.evaluate(async (ballast) => {
    window.ferry.db.setOffline(true);
    if (!ballast) return;
    const db = await new Promise((resolve, reject) => {
      const open = indexedDB.open("ballast");
      open.onupgradeneeded = () => open.result.createObjectStore("b");
      open.onsuccess = () => resolve(open.result);
      open.onerror = () => reject(open.error);
    });
    await new Promise((resolve, reject) => {
      const tx = db.transaction("b", "readwrite");
      const bytes = new Uint8Array(ballast);
      for (let at = 0; at < ballast; at += 65_536) crypto.getRandomValues(bytes.subarray(at, at + 65_536));
      tx.objectStore("b").put(bytes, 1);
      tx.oncomplete = resolve;
      tx.onabort = () => reject(tx.error);
    });
    db.close();
  }, ballast);
  return { context, page, quota, usageAtStart: usage.usage };
}

/** Creates records of 40 KB of random (incompressible) text until a create is refused. */
function fillToQuota(page) {
  return page.evaluate(async () => {
    const { items, db, attempt } = window.ferry;
    const blob = () => btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(30_000))));
    for (let i = 0; i < 2000; i++) {
      const key = `q-${String(i).padStart(4, "0")}`;
      const pendingBefore = await db.pendingCount();
      const r = await attempt(() => items.create({ key, blob: blob() }));
      if (r.error) {
        return {
          written: i, key, error: r.error, pendingBefore,
          pendingAfter: await db.pendingCount(),
          failedRecord: (await items.query({ where: { key } })).length,
          records: (await items.all()).length,
        };
      }
    }
    return { written: 2000, error: null };
  });
}

/** In the page: deletes the first `n` records; returns the errors and the counts after. */
function deleteSome(page, n) {
  return page.evaluate(async (n) => {
    const { items, db, attempt } = window.ferry;
    const errors = [];
    for (const r of (await items.all()).slice(0, n)) {
      const d = await attempt(() => items.delete(r.id));
      if (d.error) errors.push({ key: r.key, name: d.error.name, message: d.error.message });
    }
    return { errors, records: (await items.all()).length, pending: await db.pendingCount() };
  }, n);
}

test("storage near quota: the write that does not fit fails whole with QuotaExceededError, the store keeps working", async (t) => {
  const server = await startServer();
  // The ballast is big enough that, once dropped, a whole round of acknowledgements fits (see
  // the last test for what happens when it does not).
  const setup = await nearQuota(server, "quota", { quota: 4 * 1024 * 1024, ballast: 1_500_000 });
  if (setup.skip) {
    await server.stop();
    t.skip(setup.skip);
    return;
  }
  const { context, page, quota, usageAtStart } = setup;
  try {
    const filled = await fillToQuota(page);
    assert.ok(filled.error, `a write was refused (after ${filled.written})`);
    assert.equal(filled.error.isError, true, "a real Error");
    assert.ok(["QuotaExceededError", "StorageError"].includes(filled.error.name), `its name: ${filled.error.name} (${filled.error.message})`);
    assert.equal(filled.failedRecord, 0, "the refused record is absent");
    assert.equal(filled.pendingAfter, filled.pendingBefore, "the outbox count is unchanged");
    assert.equal(filled.records, filled.written, "every earlier write is there, and only those");
    assert.equal(filled.pendingAfter, filled.written);
    assert.ok(filled.written > 5, `${filled.written} records fitted first`);

    // Reads still work.
    const read = await page.evaluate(async () => {
      const r = await window.ferry.byKey("q-0002");
      return { key: r?.key, size: r?.blob.length, all: (await window.ferry.items.all()).length };
    });
    assert.deepEqual(read, { key: "q-0002", size: 40_000, all: filled.written });

    // A delete at the quota: whether or not it fits (see the next test), it is all or nothing.
    const atQuota = await deleteSome(page, 1);
    assert.equal(atQuota.records + atQuota.pending, 2 * (filled.written - 1 + atQuota.errors.length));
    for (const e of atQuota.errors) assert.equal(e.name, "QuotaExceededError");

    // Free space (the app's other database goes): writes fit again, and deletes work.
    await page.evaluate(() => new Promise((resolve, reject) => {
      const del = indexedDB.deleteDatabase("ballast");
      del.onsuccess = resolve;
      del.onerror = () => reject(del.error);
    }));
    const after = await page.evaluate(async () => {
      const { items, db, attempt } = window.ferry;
      const results = [];
      for (let i = 0; i < 3; i++) {
        const r = await attempt(() => items.create({ key: `after-${i}`, blob: "small" }));
        results.push(r.error ? `${r.error.name}: ${r.error.message}` : "ok");
      }
      return { results, records: (await items.all()).length, pending: await db.pendingCount() };
    });
    assert.deepEqual(after.results, ["ok", "ok", "ok"], "writes fit again after freeing space");
    assert.equal(after.records, atQuota.records + 3);
    assert.equal(after.pending, atQuota.pending + 3);
    // Keep 8 records: a flush round rewrites every acknowledged row in one transaction, which
    // must fit (the last test).
    const freed = await deleteSome(page, after.records - 8);
    assert.deepEqual(freed.errors, [], "deletes work with room to spare");
    assert.equal(freed.records, 8);
    assert.equal(freed.pending, freed.records, "a deleted unsent create leaves the outbox with its record");

    // All of it reaches the server (the answers are written locally within the same quota).
    await page.evaluate(() => window.ferry.db.setOffline(false));
    await page.evaluate(() => window.ferry.db.sync());
    await drained(page);
    const result = await assertConverged(page, server);
    assert.equal(result.records, freed.records);
    assert.deepEqual(page.errors, []);
    figures.quota = {
      quota, usageAtStart, recordsBeforeRefusal: filled.written, error: filled.error.name,
      message: filled.error.message, deleteAtQuota: atQuota.errors.length ? atQuota.errors[0].name : "ok", ...result,
    };
  } finally {
    await context.close();
    await server.stop();
  }
});

// Chromium refuses any transaction with a put when the origin is at its quota, and an app makes
// room by deleting: so deleting records that were never sent must write nothing at all (Ferry
// used to rewrite its clock row in every write transaction, and such deletes failed).
test("at the quota, deleting records through Ferry frees space for new writes", async (t) => {
  const server = await startServer();
  const setup = await nearQuota(server, "quota-delete");
  if (setup.skip) {
    await server.stop();
    t.skip(setup.skip);
    return;
  }
  const { context, page } = setup;
  try {
    const filled = await fillToQuota(page);
    assert.equal(filled.error?.name, "QuotaExceededError");
    const freed = await deleteSome(page, Math.ceil(filled.written / 2));
    assert.deepEqual(freed.errors, [], "deletes work at the quota");
    const write = await page.evaluate(() => window.ferry.attempt(() => window.ferry.items.create({ key: "after", blob: "small" })));
    assert.equal(write.error, undefined, "a write fits after the deletes");
  } finally {
    await context.close();
    await server.stop();
  }
});

// A flush round freezes up to `batchSize` mutations (each frozen request holds its whole body) in
// one transaction, and writes their acknowledgements in another. Chromium checks a
// transaction's puts against the free space, so near the quota a whole round may not fit where
// one mutation at a time does: Ferry then freezes and applies in smaller transactions (it used to
// fail every sync with QuotaExceededError, with no retry scheduled).
test("near the quota, a flush whose acknowledgements do not fit in one transaction still completes", async (t) => {
  const server = await startServer();
  const setup = await nearQuota(server, "quota-ack", { ballast: 600_000 });
  if (setup.skip) {
    await server.stop();
    t.skip(setup.skip);
    return;
  }
  const { context, page } = setup;
  try {
    const filled = await fillToQuota(page);
    assert.equal(filled.error?.name, "QuotaExceededError");
    await page.evaluate(() => new Promise((resolve) => (indexedDB.deleteDatabase("ballast").onsuccess = resolve)));
    const freed = await deleteSome(page, Math.floor(filled.written / 2));
    assert.deepEqual(freed.errors, []);
    await page.evaluate(() => window.ferry.db.setOffline(false));
    const sync = await page.evaluate(() => window.ferry.attempt(() => window.ferry.db.sync()));
    const s = await state(page);
    const onServer = (await server.items()).length;
    assert.equal(sync.error, undefined, `sync() resolves (it rejected with ${sync.error?.name}; pending ${s.pending}, ` +
      `on the server ${onServer} of ${freed.records}, nextRetryAt ${s.status.nextRetryAt}, lastError ${s.status.lastError})`);
    await drained(page);
    await assertConverged(page, server);
  } finally {
    await context.close();
    await server.stop();
  }
});
