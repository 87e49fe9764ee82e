// Issue 4, tabs: two pages of one browser context (same origin, same IndexedDB) open the same
// store. One leads (Web Lock) and is the only one that flushes; the other hears every change
// without a reload, its sync() settles when the leader's run ends, and when the leader closes it
// takes over. Checked against the server's data (/__admin/dump) and its request counters
// (/__admin/stats): no mutation is sent twice.
import { test } from "node:test";
import assert from "node:assert/strict";
import { assertConverged, duplicates, openPage, state, until, withPageServerAndBrowser } from "./chaos-page/lib.mjs";

const WRITES = ["POST", "PUT", "PATCH", "DELETE"];
let browser;
let server;
withPageServerAndBrowser((s, b) => ((server = s), (browser = b)));

const leader = (page) => page.evaluate(async () => (await window.ferry.db.status()).leader);
const heard = (page, key) => page.evaluate((key) => window.ferry.changes.filter((c) => c.record?.key === key && !c.remote).length, key);
const create = (page, key, v = 0) => page.evaluate(([key, v]) => window.ferry.items.create({ key, v }), [key, v]);

test("two tabs of one store: one leader, changes heard across tabs, the follower's sync() waits for the leader, takeover on close", async () => {
  await server.admin("/__admin/wipe", {});
  const context = await browser.newContext();
  const a = await openPage(context, server.url, "tabs");
  const b = await openPage(context, server.url, "tabs");
  const figures = {};
  try {
    // Exactly one leader (the first page took the lock; the second waits in its queue).
    const leaders = await until(async () => {
      const l = [await leader(a), await leader(b)];
      return l.filter(Boolean).length === 1 && l;
    }, "exactly one leader");
    assert.deepEqual(leaders, [true, false], "the first page leads");
    await server.admin("/__admin/stats/reset", {});

    // A write in either page fires the other page's subscribe listener, without a reload.
    await create(a, "from-a");
    await until(() => heard(b, "from-a"), "the follower to hear the leader's write");
    await create(b, "from-b");
    await until(() => heard(a, "from-b"), "the leader to hear the follower's write");
    assert.deepEqual(await b.evaluate(() => window.ferry.byKey("from-a").then((r) => r?.key)), "from-a");

    // The follower's sync() resolves only once the leader has flushed: its answers are held
    // 300 ms, so a sync() that did not wait for them would see the records missing.
    await server.admin("/__admin/faults", { delayMs: 300, methods: WRITES });
    await b.evaluate(async () => {
      for (let i = 0; i < 5; i++) await window.ferry.items.create({ key: `b-${i}`, v: i });
    });
    await b.evaluate(() => window.ferry.db.sync());
    // Writes within 16 ms of each other reach the other tab together, in one message: each
    // is heard once, and in order.
    await until(async () => (await heard(a, "b-4")) === 1, "the leader to hear the follower's loop of writes");
    const order = await a.evaluate(() => window.ferry.changes.filter((c) => !c.remote && /^b-/.test(c.record?.key)).map((c) => c.record.key));
    assert.deepEqual(order, ["b-0", "b-1", "b-2", "b-3", "b-4"]);
    const afterSync = await server.items();
    for (let i = 0; i < 5; i++) assert.ok(afterSync.some((r) => r.key === `b-${i}`), `b-${i} on the server when sync() resolved`);
    assert.equal((await state(b)).pending, 0, "the follower sees an empty outbox");
    assert.equal((await state(a)).pending, 0);
    await server.admin("/__admin/reset", {});
    // The leader's answers reach the follower too (server ids, versions).
    await until(async () => JSON.stringify((await state(a)).records) === JSON.stringify((await state(b)).records), "both tabs to agree");
    await assertConverged(b, server);
    await assertConverged(a, server);
    const before = await server.stats();
    figures.beforeClose = before;
    // 7 creates, each sent once: one POST each, nothing replayed.
    assert.equal(before.byMethod.POST, 7, `POSTs: ${JSON.stringify(before.byMethod)}`);
    assert.equal(before.writes, 7);
    assert.equal(before.idempotentReplays, 0);

    // An update and a delete from the follower while the leader is still there.
    await b.evaluate(async () => {
      const { items } = window.ferry;
      await items.update((await window.ferry.byKey("b-0")).id, { v: 100 });
      await items.delete((await window.ferry.byKey("b-1")).id);
      await window.ferry.db.sync();
    });

    // Close the leader: the other page takes over within a few seconds and flushes its writes.
    await a.close();
    await until(() => leader(b), "the follower to become leader", 5_000);
    await b.evaluate(async () => {
      const { items } = window.ferry;
      for (let i = 0; i < 5; i++) await items.create({ key: `after-${i}`, v: i });
      await items.update((await window.ferry.byKey("b-2")).id, { v: 200 });
    });
    await until(async () => (await state(b)).pending === 0, "the new leader to flush its own writes");
    await b.evaluate(() => window.ferry.db.sync());
    const result = await assertConverged(b, server);
    const remote = await server.items();
    assert.deepEqual(duplicates(remote), []);
    assert.deepEqual(remote.map((r) => r.key).sort(),
      ["after-0", "after-1", "after-2", "after-3", "after-4", "b-0", "b-2", "b-3", "b-4", "from-a", "from-b"]);
    assert.equal(remote.find((r) => r.key === "b-0").v, 100);
    assert.equal(remote.find((r) => r.key === "b-2").v, 200);

    // Every mutation was sent exactly once: 12 creates, 2 updates (PUT), 1 delete.
    const stats = await server.stats();
    assert.equal(stats.byMethod.POST, 12, `POSTs: ${JSON.stringify(stats.byMethod)}`);
    assert.equal(stats.byMethod.PUT, 2, `PUTs: ${JSON.stringify(stats.byMethod)}`);
    assert.equal(stats.byMethod.DELETE, 1, `DELETEs: ${JSON.stringify(stats.byMethod)}`);
    assert.equal(stats.writes, 15);
    assert.equal(stats.idempotentReplays, 0);
    assert.deepEqual(a.errors, []);
    assert.deepEqual(b.errors, []);
    console.log("tabs figures:", JSON.stringify({ ...result, mutations: 15, byMethod: stats.byMethod, requests: stats.requests, replays: stats.idempotentReplays }));
  } finally {
    await context.close();
  }
});

test("the leader closes while its flush is in flight: the new leader finishes it, nothing applied twice", async () => {
  await server.admin("/__admin/wipe", {});
  const context = await browser.newContext();
  const a = await openPage(context, server.url, "tabs-inflight");
  const b = await openPage(context, server.url, "tabs-inflight");
  try {
    await until(async () => (await leader(a)) && !(await leader(b)), "the first page to lead");
    await server.admin("/__admin/stats/reset", {});
    await server.admin("/__admin/faults", { delayMs: 400, methods: WRITES });
    await b.evaluate(async () => {
      for (let i = 0; i < 20; i++) await window.ferry.items.create({ key: `w-${String(i).padStart(2, "0")}`, v: i });
    });
    // The leader has one write committed and its answer held: close it now.
    await until(async () => (await server.stats()).writes > 0, "a write committed");
    await a.close();
    await until(() => leader(b), "the follower to become leader", 5_000);
    await b.evaluate(() => window.ferry.db.sync());
    await server.admin("/__admin/reset", {});
    const result = await assertConverged(b, server);
    assert.equal(result.records, 20);
    const stats = await server.stats();
    assert.equal(stats.writes, 20, "each create applied once");
    // A mutation whose answer the closed leader never read is sent again under its key and
    // replayed, never applied twice.
    assert.equal(stats.byMethod.POST, 20 + stats.idempotentReplays);
    assert.deepEqual(b.errors, []);
    console.log("tabs in-flight figures:", JSON.stringify({ ...result, posts: stats.byMethod.POST, replays: stats.idempotentReplays }));
  } finally {
    await context.close();
  }
});

test("a leading store the page no longer refers to, never closed, stays open: the other tab's sync() is carried out", async () => {
  await server.admin("/__admin/wipe", {});
  const context = await browser.newContext();
  const a = await openPage(context, server.url, "tabs-forgotten");
  const b = await openPage(context, server.url, "tabs-forgotten");
  try {
    await until(async () => (await leader(a)) && !(await leader(b)), "the first page to lead");
    // The page drops every reference to its store (a hot reload or an unmount that forgot
    // close()) and the garbage collector runs, finalizers included.
    await a.evaluate(async () => {
      window.ferry.db = null;
      window.ferry.items = null;
      for (let i = 0; i < 5; i++) {
        gc();
        await new Promise((ok) => setTimeout(ok, 50));
      }
    });
    await b.evaluate(() => window.ferry.items.create({ key: "after-forgetting", v: 1 }));
    // Freed, the store kept its tab lock and no tab could lead or send: sync() never settled.
    const outcome = await b.evaluate(() =>
      Promise.race([
        window.ferry.db.sync().then(() => "synced", (e) => `${e.name}: ${e.message}`),
        new Promise((ok) => setTimeout(() => ok("no answer in 10 s"), 10_000)),
      ]));
    assert.equal(outcome, "synced");
    assert.ok((await server.items()).some((r) => r.key === "after-forgetting"));
    assert.deepEqual(b.errors, []);
  } finally {
    await context.close();
  }
});

test("`using` (Symbol.dispose) closes the store: the other tab takes the lead, and the disposed one stops", async () => {
  const context = await browser.newContext();
  const a = await openPage(context, server.url, "tabs-dispose");
  const b = await openPage(context, server.url, "tabs-dispose");
  try {
    await until(async () => (await leader(a)) && !(await leader(b)), "the first page to lead");
    const after = await a.evaluate(async () => {
      const { db, items } = window.ferry;
      // A collection handle disposed on its own holds nothing: it goes on working.
      const handle = db.collection("items");
      handle[Symbol.dispose]();
      const disposedHandleReads = (await handle.get("nothing-here")) === undefined;
      db[Symbol.dispose]();
      const name = async (f) => {
        try {
          await f();
          return "done";
        } catch (e) {
          return e.name;
        }
      };
      return {
        write: await name(() => items.create({ key: "after-dispose" })),
        sync: await name(() => db.sync()),
        free: await name(() => db.free()),
        disposedHandleReads,
      };
    });
    assert.equal(after.write, "ClosedError", "a collection of a disposed store refuses writes");
    assert.equal(after.sync, "ClosedError", "the disposed store itself refuses sync() as a closed one does");
    assert.equal(after.free, "done", "free() after dispose is harmless");
    assert.equal(after.disposedHandleReads, true, "a disposed collection handle still reads");
    await until(() => leader(b), "the other page to take the lead", 5_000);
  } finally {
    await context.close();
  }
});
