// Credentials as apps have them: bearer tokens that expire, renewed through `getHeaders`.
// Playwright stands in for the auth layer in front of the reference server: a token is good for
// a few requests, then answered 401, as a short-lived access token is.
import { test } from "node:test";
import assert from "node:assert/strict";
import { openPage, startServer, until, withPageServerAndBrowser } from "./chaos-page/lib.mjs";

let browser;
let server;
withPageServerAndBrowser((s, b) => ((server = s), (browser = b)));

/**
 * A page whose requests to /api carry tokens good for `uses` requests each (`null`: a token is
 * never good the first time it is seen, good after); what the auth layer saw is in the result.
 */
async function withAuth(name, { uses }) {
  const context = await browser.newContext();
  const seen = { requests: 0, refused: 0, tenants: new Set() };
  const count = new Map();
  await context.route("**/api/**", async (route) => {
    const h = route.request().headers();
    const token = (h.authorization ?? "").replace(/^Bearer /, "");
    seen.requests++;
    if (h["x-tenant"] !== undefined) seen.tenants.add(h["x-tenant"]);
    const n = (count.get(token) ?? 0) + 1;
    count.set(token, n);
    const expired = uses === null ? token === "t1" : n > uses;
    if (!token || expired) {
      seen.refused++;
      return route.fulfill({ status: 401, headers: { "WWW-Authenticate": "Bearer" }, body: "{}" });
    }
    return route.continue();
  });
  // The store itself is opened in each test, with its own getHeaders.
  const page = await openPage(context, server.url, `${name}-unused`, { autoSync: false });
  return { context, page, seen };
}

test("tokens that expire again and again during one sync are renewed each time", async () => {
  await server.admin("/__admin/wipe", {});
  const { context, page, seen } = await withAuth("auth-expiry", { uses: 3 });
  try {
    const result = await page.evaluate(async () => {
      let calls = 0;
      const db = await window.ferry.Ferry.open({
        name: "auth-expiry",
        collections: { items: { url: "/api/items" } },
        autoSync: false,
        pullAfterFlush: false,
        getHeaders: async () => ({ Authorization: `Bearer t${++calls}`, "X-Tenant": 7 }),
      });
      const items = db.collection("items");
      for (let i = 0; i < 10; i++) await items.create({ key: `k${i}` });
      let error = null;
      await db.sync().catch((e) => (error = `${e.name}: ${e.message}`));
      return { error, pending: await db.pendingCount(), calls };
    });
    assert.equal(result.error, null, "sync finished");
    assert.equal(result.pending, 0);
    assert.equal((await server.items()).length, 10, "each create stored once");
    // 10 creates, a token good for 3 requests: renewed after the 3rd, 6th and 9th.
    assert.equal(result.calls, 4, JSON.stringify(result));
    assert.equal(seen.refused, 3);
    assert.deepEqual([...seen.tenants], ["7"], "a number is sent as its text");
  } finally {
    await context.close();
  }
});

test("getHeaders failing once is asked again later without the app doing anything", async () => {
  await server.admin("/__admin/wipe", {});
  const { context, page } = await withAuth("auth-blink", { uses: 1000 });
  try {
    await page.evaluate(async () => {
      window.calls = 0;
      const db = await window.ferry.Ferry.open({
        name: "auth-blink",
        collections: { items: { url: "/api/items" } },
        debounceMs: 0,
        offline: true,
        getHeaders: async () => {
          if (++window.calls === 1) throw new TypeError("Failed to fetch"); // the refresh blinks
          return { Authorization: "Bearer good" };
        },
      });
      window.blink = db;
      await db.collection("items").create({ key: "k" });
      db.setOffline(false); // one run, whose getHeaders fails
    });
    await until(async () => page.evaluate(() => window.blink.pendingCount().then((n) => n === 0)), "the create to be sent", 25_000);
    assert.deepEqual((await server.items()).map((r) => r.key), ["k"]);
  } finally {
    await context.close();
  }
});

test("reads answered 401 at the same time renew the token once", async () => {
  await server.admin("/__admin/wipe", {});
  const { context, page } = await withAuth("auth-storm", { uses: null });
  try {
    const result = await page.evaluate(async () => {
      let calls = 0;
      const db = await window.ferry.Ferry.open({
        name: "auth-storm",
        collections: { a: { url: "/api/items" }, b: { url: "/api/items" }, c: { url: "/api/items" } },
        autoSync: false,
        getHeaders: async () => {
          calls++;
          await new Promise((r) => setTimeout(r, 50)); // a refresh takes a moment
          return { Authorization: `Bearer t${calls}` };
        },
      });
      const reads = ["a", "b", "c"].map((c) => db.collection(c).pull());
      const outcome = await Promise.allSettled([...reads, db.sync()]);
      return { calls, outcome: outcome.map((o) => o.status) };
    });
    assert.deepEqual(result.outcome, ["fulfilled", "fulfilled", "fulfilled", "fulfilled"]);
    assert.equal(result.calls, 2, "asked once at the start, and once after the 401s");
  } finally {
    await context.close();
  }
});

test("credentials: 'include' sends cookies to an API on another origin", async () => {
  // Another port is another origin: fetch's default sends cookies to the page's origin only.
  const api = await startServer({ extra: ["--cors-origin", "*"] });
  const context = await browser.newContext();
  try {
    await context.addCookies([{ name: "sid", value: "s3cret", url: api.url }]);
    const sent = [];
    await context.route(`${api.url}/api/**`, async (route) => {
      const h = await route.request().allHeaders();
      sent.push({ key: route.request().method(), cookie: h.cookie ?? null });
      return route.continue();
    });
    const page = await openPage(context, server.url, "creds-unused", { autoSync: false });
    const errors = await page.evaluate(async (url) => {
      const errors = [];
      for (const credentials of [undefined, "include", "omit"]) {
        const db = await window.ferry.Ferry.open({
          name: `creds-${credentials}`,
          collections: { items: { url } },
          autoSync: false,
          pullAfterFlush: false,
          ...(credentials ? { credentials } : {}),
        });
        await db.collection("items").create({ key: String(credentials) });
        await db.sync().catch((e) => errors.push(`${e.name}: ${e.message}`));
        db.close();
      }
      return errors;
    }, `${api.url}/api/items`);
    assert.deepEqual(errors, []);
    assert.deepEqual(sent.map((s) => s.cookie), [null, "sid=s3cret", null]);
    assert.equal((await api.items()).length, 3);
  } finally {
    await context.close();
    await api.stop();
  }
});

test("a status named in authStatuses asks for credentials and keeps the offline work", async () => {
  await server.admin("/__admin/wipe", {});
  const { context, page } = await withAuth("auth-419", { uses: 1000 });
  try {
    await context.route("**/api/**", async (route) => {
      const h = await route.request().allHeaders();
      if (h.authorization !== "Bearer renewed") {
        return route.fulfill({ status: 419, contentType: "application/json", body: '{"message":"Page Expired"}' });
      }
      return route.fallback();
    });
    const result = await page.evaluate(async () => {
      let calls = 0;
      const db = await window.ferry.Ferry.open({
        name: "auth-419",
        collections: { items: { url: "/api/items" } },
        autoSync: false,
        authStatuses: [419],
        getHeaders: () => ({ Authorization: ++calls === 1 || window.refuse ? "Bearer old" : "Bearer renewed" }),
      });
      await db.collection("items").create({ key: "offline work" });
      await db.sync();
      const ok = await db.status();
      // Credentials the app cannot renew: the run fails, and the status says why.
      await db.collection("items").create({ key: "later" });
      window.refuse = true;
      const error = await db.sync().then(() => null, (e) => e.name);
      const { lastErrorName, lastErrorStatus } = await db.status();
      return {
        calls: calls > 2,
        rejected: (await db.rejected()).length,
        local: (await db.collection("items").all()).length,
        cleared: [ok.lastError, ok.lastErrorName, ok.lastErrorStatus],
        failed: [error, lastErrorName, lastErrorStatus],
      };
    });
    assert.deepEqual(result, {
      calls: true,
      rejected: 0,
      local: 2,
      cleared: [null, null, null],
      failed: ["NetworkError", "NetworkError", 401],
    });
    assert.deepEqual((await server.items()).map((r) => r.key), ["offline work"]);
  } finally {
    await context.close();
  }
});

test("closing a store while getHeaders is pending ends its sync and pull at once", async () => {
  const { context, page } = await withAuth("auth-close", { uses: 1000 });
  try {
    const result = await page.evaluate(async () => {
      const db = await window.ferry.Ferry.open({
        name: "auth-close",
        collections: { items: { url: "/api/items" } },
        autoSync: false,
        getHeaders: () => new Promise(() => {}), // never settles (timeoutMs is 30 s)
      });
      const outcome = (p) => p.then(() => "resolved", (e) => e.name);
      const pending = [outcome(db.sync()), outcome(db.collection("items").pull())];
      await new Promise((r) => setTimeout(r, 200));
      const t0 = performance.now();
      db.close();
      const names = await Promise.all(pending);
      return { names, settledFast: performance.now() - t0 < 5000 };
    });
    assert.deepEqual(result, { names: ["ClosedError", "ClosedError"], settledFast: true });
  } finally {
    await context.close();
  }
});
