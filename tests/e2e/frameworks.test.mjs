// A backend written the way Django REST framework writes one, in real Chromium: collection and
// record URLs ending in `/` (a URL without it is redirected with a 301), lists paged as
// `{count, next, previous, results}` with absolute `next` links, PATCH, 204 to deletes, and the
// answer's format chosen from `Accept`. Ferry must read every page, keep the slash, ask for
// JSON, and say clearly what is wrong when the collection URL lacks the slash.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { launch, root, until } from "./helpers.mjs";

const PAGE = `<!doctype html><meta charset="utf-8"><title>drf</title>
<script type="module">
import init, { Ferry } from "/pkg/ferry.js";
await init();
window.Ferry = Ferry;
window.ready = true;
</script>`;

/**
 * The DRF-style server: records by integer id, two a page, a log of every request. `redirect`:
 * the status sending a URL without its slash to the one with it (FastAPI uses 307, which keeps
 * the method); `created`: the status of a create's answer (FastAPI's is 200).
 */
function drf(redirect = 301, created = 201) {
  const records = new Map();
  let next = 1;
  const log = [];
  const json = (res, status, v) => {
    res.writeHead(status, { "Content-Type": "application/json" });
    res.end(v === undefined ? "" : JSON.stringify(v));
  };
  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    log.push({ method: req.method, path: url.pathname, accept: req.headers.accept });
    if (url.pathname === "/") return res.writeHead(200, { "Content-Type": "text/html" }).end(PAGE);
    if (url.pathname.startsWith("/pkg/")) {
      const file = join(root, "pkg", url.pathname.slice(5));
      const type = file.endsWith(".wasm") ? "application/wasm" : "text/javascript";
      try {
        return res.writeHead(200, { "Content-Type": type }).end(readFileSync(file));
      } catch {
        return res.writeHead(404).end();
      }
    }
    if (!url.pathname.startsWith("/api/todos")) return res.writeHead(404).end();
    if (!url.pathname.endsWith("/")) {
      // Django's APPEND_SLASH: fetch follows it, and a POST becomes a GET on the way.
      return res.writeHead(redirect, { Location: `${url.pathname}/${url.search}` }).end();
    }
    // An app that answers HTML unless JSON is asked for.
    if (!(req.headers.accept ?? "").includes("application/json")) {
      return res.writeHead(200, { "Content-Type": "text/html" }).end("<html>browsable API</html>");
    }
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      const id = url.pathname.split("/")[3];
      if (!id && req.method === "GET") {
        const page = Number(url.searchParams.get("page") ?? 1);
        const all = [...records.values()];
        const results = all.slice((page - 1) * 2, page * 2);
        const more = page * 2 < all.length;
        const base = `http://${req.headers.host}/api/todos/`;
        return json(res, 200, { count: all.length, next: more ? `${base}?page=${page + 1}` : null, previous: null, results });
      }
      if (!id && req.method === "POST") {
        const rec = { ...JSON.parse(body), id: next++ };
        delete rec.clientId;
        records.set(rec.id, rec);
        return json(res, created, rec);
      }
      const rec = records.get(Number(id));
      if (!rec) return json(res, 404, { detail: "Not found." });
      if (req.method === "PATCH") {
        Object.assign(rec, JSON.parse(body), { id: rec.id });
        return json(res, 200, rec);
      }
      if (req.method === "DELETE") {
        records.delete(rec.id);
        return json(res, 204);
      }
      return json(res, 405, { detail: "Method not allowed." });
    });
  });
  return {
    records,
    log,
    seed(n) {
      for (let i = 0; i < n; i++) records.set(next, { id: next++, title: `seed ${i}` });
    },
    start: () => new Promise((ok) => server.listen(0, "127.0.0.1", () => ok(`http://127.0.0.1:${server.address().port}`))),
    stop: () => new Promise((ok) => server.close(ok)),
  };
}

let browser;
let server;
let url;
before(async () => {
  browser = await launch();
  server = drf();
  url = await server.start();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

async function page() {
  const context = await browser.newContext();
  const p = await context.newPage();
  await p.goto(url);
  await p.waitForFunction(() => window.ready);
  return p;
}

test("a Django REST framework backend: every page read, slashes kept, JSON asked for", async () => {
  server.seed(5);
  const p = await page();
  const result = await p.evaluate(async () => {
    const db = await window.Ferry.open({
      name: "drf", autoSync: false,
      collections: { todos: { url: "/api/todos/", rootProperty: "results", updateMethod: "PATCH" } },
    });
    const todos = db.collection("todos");
    await todos.pull();
    const pulled = (await todos.all()).map((r) => r.title);
    const made = await todos.create({ title: "mine" });
    await todos.update(1, { title: "seed 0, edited" });
    await todos.delete(2);
    await db.sync();
    const local = await todos.all();
    db.close();
    return { pulled, made: made.id, local };
  });
  assert.deepEqual(result.pulled, ["seed 0", "seed 1", "seed 2", "seed 3", "seed 4"], "all three pages");
  assert.deepEqual(result.local, [...server.records.values()], "local equals the server");
  assert.equal(server.records.get(1).title, "seed 0, edited");
  assert.ok(!server.records.has(2));
  const api = server.log.filter((r) => r.path.startsWith("/api/"));
  assert.ok(api.every((r) => r.path.endsWith("/")), `no request without the slash: ${JSON.stringify(api)}`);
  assert.ok(api.every((r) => r.accept === "application/json"), "every request asks for JSON");
});

test("a collection URL without the slash the server wants: the create is not taken for the list", async () => {
  const before = server.records.size;
  const p = await page();
  const error = await p.evaluate(async () => {
    const db = await window.Ferry.open({
      name: "drf-noslash", autoSync: false,
      collections: { todos: { url: "/api/todos", rootProperty: "results" } },
    });
    await db.collection("todos").create({ title: "lost?" });
    try {
      await db.sync();
      return null;
    } catch (e) {
      return { name: e.name, message: e.message, pending: await db.pendingCount() };
    } finally {
      db.close();
    }
  });
  assert.equal(error?.name, "ProtocolError", JSON.stringify(error));
  assert.match(error.message, /trailing slash/);
  assert.equal(error.pending, 1, "the create waits, nothing lost");
  await until(async () => server.records.size === before, "nothing created on the server");
});

test("a create redirected with its method kept (FastAPI's 307 to the slash) is acknowledged once", async () => {
  const fast = drf(307, 200);
  const fastUrl = await fast.start();
  const context = await browser.newContext();
  try {
    const p = await context.newPage();
    await p.goto(fastUrl);
    await p.waitForFunction(() => window.ready);
    const got = await p.evaluate(async () => {
      const db = await window.Ferry.open({
        name: "fast-noslash", autoSync: false,
        collections: { todos: { url: "/api/todos", rootProperty: "results", updateMethod: "PATCH" } },
      });
      const todos = db.collection("todos");
      const made = await todos.create({ title: "once" });
      await db.sync();
      const mine = await todos.get(made.id);
      const out = { id: mine?.id, pending: await db.pendingCount() };
      db.close();
      return out;
    });
    assert.equal(got.pending, 0, "acknowledged");
    assert.equal(fast.records.size, 1, "stored once");
    assert.equal(got.id, [...fast.records.keys()][0], "the device has the server's id");
  } finally {
    await context.close();
    await fast.stop();
  }
});
