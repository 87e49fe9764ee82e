// Shared pieces of chaos.test.mjs and tabs.test.mjs (helpers.mjs belongs to the demo's tests):
// the reference server serving this bare page, on a port and SQLite file of the test's choosing
// and killable with SIGKILL; opening the page; and comparing Ferry's records with the server's.
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { after, before } from "node:test";
import { admin, launch, root, until, watch } from "../helpers.mjs";

export const pageDir = dirname(fileURLToPath(import.meta.url));

/** A port that was free a moment ago (bind to 0, read it, close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Starts `ferry-server` serving this folder at / and pkg/ at /pkg/. `port` 0 picks one; `db` is a
 * SQLite file, else the database is in memory; `extra`, more arguments. `kill()` sends SIGKILL
 * (no clean shutdown).
 */
export async function startServer({ port = 0, db = null, extra = [] } = {}) {
  const bin = process.env.FERRY_SERVER_BIN ?? join(root, "target", "debug", "ferry-server");
  const args = ["--port", String(port), ...(db ? ["--db", db] : ["--memory"]),
    "--static", pageDir, "--pkg", join(root, "pkg"), ...extra];
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  const url = await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/^ferry-server listening on (http\S+)/m);
      if (m) resolve(m[1]);
    });
    exited.then(({ code }) => reject(new Error(`ferry-server exited (${code}): ${stderr}`)));
    child.on("error", reject);
  });
  return {
    url,
    pid: child.pid,
    admin: (path, body) => admin(url, path, body),
    items: async () => (await admin(url, "/__admin/dump")).items ?? [],
    stats: () => admin(url, "/__admin/stats"),
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      return exited;
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}

/**
 * Starts a server of this page (in memory) and Chromium before a test file's tests and stops
 * both after them; `set(server, browser)` receives them once started.
 */
export function withPageServerAndBrowser(set) {
  let server;
  let browser;
  before(async () => {
    browser = await launch();
    server = await startServer();
    set(server, browser);
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });
}

/** Opens the bare page in `context` and the store `name` in it. */
export async function openPage(context, url, name, options = {}) {
  const page = await context.newPage();
  watch(page);
  await page.goto(url + "/");
  await openStore(page, name, options);
  return page;
}

/** After a goto or reload: waits for the page's module, then opens the store. */
export async function openStore(page, name, options = {}) {
  await page.waitForFunction(() => window.ferry !== undefined, null, { timeout: 20_000 });
  await page.evaluate(([n, o]) => window.ferry.open(n, o), [name, options]);
}

/** The page's Ferry state: records sorted by key, pending and rejected counts, status. */
export const state = (page) => page.evaluate(() => window.ferry.state());

/** Counts of each value of `field` over `records` that occur more than once. */
export function duplicates(records, field = "key") {
  const seen = new Map();
  for (const r of records) seen.set(r[field], (seen.get(r[field]) ?? 0) + 1);
  return [...seen].filter(([, n]) => n > 1);
}

// Local and server records are compared whole: id, version, clientId and fields.
const byKey = (a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/**
 * The end condition of every chaos test: the outbox is empty, nothing was rejected, the server
 * holds each key once, and every local record equals the server's record of that key.
 * Returns the figures.
 */
export async function assertConverged(page, server, { expected } = {}) {
  const local = await state(page);
  const remote = (await server.items()).slice().sort(byKey);
  const dups = duplicates(remote);
  assert.deepEqual(dups, [], "no key twice on the server");
  assert.deepEqual(duplicates(local.records), [], "no key twice locally");
  assert.equal(local.pending, 0, "the outbox is empty");
  assert.equal(local.rejected, 0, "nothing was rejected");
  assert.deepEqual(local.records, remote, "every local record equals the server's");
  if (expected) {
    const want = [...expected].map(([key, v]) => ({ key, v })).sort(byKey);
    assert.deepEqual(remote.map(({ key, v }) => ({ key, v })), want, "the server holds exactly what was written");
  }
  return { records: remote.length, duplicates: dups.length };
}

/** Waits until the page's outbox is empty and its status says nothing is being flushed. */
export async function drained(page, what = "the outbox to drain", timeout = 60_000) {
  return until(async () => {
    const s = await page.evaluate(async () => ({ n: await window.ferry.db.pendingCount(), st: await window.ferry.db.status() }));
    return s.n === 0 && !s.st.flushing;
  }, what, timeout);
}

export { until };
