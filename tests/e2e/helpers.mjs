// Shared pieces of the end-to-end tests: the reference server on a free port, Debian's Chromium
// through playwright-core, the demo page with its console watched, and waiting for conditions.
import { after, before } from "node:test";
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const shots = join(root, "tests", "e2e", "screenshots");

/** Starts `ferry-server` (built by scripts/e2e) on a free port with an in-memory database. */
export async function startServer({ statics = join(root, "www"), pkg = join(root, "pkg") } = {}) {
  const bin = process.env.FERRY_SERVER_BIN ?? join(root, "target", "debug", "ferry-server");
  const child = spawn(bin, ["--port", "0", "--memory", "--static", statics, "--pkg", pkg, "--cors-origin", "*"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const url = await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/^ferry-server listening on (http\S+)/m);
      if (m) resolve(m[1]);
    });
    child.on("exit", (code) => reject(new Error(`ferry-server exited (${code}): ${stderr}`)));
    child.on("error", reject);
  });
  return {
    url,
    admin: (path, body) => admin(url, path, body),
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once("exit", resolve);
      child.kill("SIGTERM");
    }),
  };
}

/** Calls the reference server's admin API (GET without a body, POST with one). */
export async function admin(url, path, body) {
  const res = await fetch(url + path, body === undefined ? {} : {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

/**
 * Starts the reference server and Chromium before a test file's tests and stops both after them;
 * `set(server, browser)` receives them once started.
 */
export function withServerAndBrowser(set) {
  let server;
  let browser;
  before(async () => {
    server = await startServer();
    browser = await launch();
    set(server, browser);
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });
}

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    // `--expose-gc`: tabs.test.mjs has a page collect a store it no longer refers to.
    args: ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
      "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--js-flags=--expose-gc"],
  });
}

export const PHONE = { width: 390, height: 844 };
export const DESKTOP = { width: 1280, height: 900 };

/**
 * Opens the demo in a fresh browser context (its own IndexedDB, like another machine) and
 * records every console error and uncaught exception in `page.errors`.
 */
export async function openDemo(browser, url, { viewport = DESKTOP, path = "/" } = {}) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  watch(page);
  await page.goto(url + path);
  await ready(page);
  return { context, page };
}

/**
 * Collects console errors and page errors, which every test expects to stay empty. Chromium also
 * logs every HTTP answer of 400 or more as a console error ("Failed to load resource"), even when
 * the page expected it (a 412 is how the server says "conflict"): those statuses go to
 * `page.httpErrors` instead (and so do `net::` failures such as a dropped connection), so a test
 * can say exactly which ones it provoked.
 */
export function watch(page) {
  page.errors = [];
  page.httpErrors = [];
  page.on("console", (m) => {
    // A page without an icon makes the browser ask for /favicon.ico: not the page's doing.
    if (m.type() !== "error" || m.location().url.endsWith("/favicon.ico")) return;
    const http = m.text().match(/^Failed to load resource: (?:the server responded with a status of (\d+)|(net::\w+))/);
    // A request the page had out when the test switched the network off: the test's doing.
    if (http?.[2] === "net::ERR_INTERNET_DISCONNECTED") return;
    if (http) page.httpErrors.push(http[1] ? Number(http[1]) : http[2]);
    else page.errors.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => page.errors.push(`uncaught: ${e.message}`));
}

/**
 * Waits for the demo's first paint (it sets `data-ready` on <body>) and for its files to be in
 * the service worker's cache (`data-offline-ready`): going offline before that would fail the
 * caching requests, which the browser logs as errors.
 */
export async function ready(page) {
  await page.waitForSelector("body[data-ready=true][data-offline-ready]", { timeout: 20_000 });
}

export async function screenshot(page, name) {
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

/** Polls `check` (sync or async) until it returns a truthy value, or fails with `what`. */
export async function until(check, what, timeout = 15_000) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${last?.message ?? JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The demo's task titles, in order. */
export const titles = (page) => page.locator("#tasks .task .title").allTextContents();
/** The outbox entries as `kind title` strings. */
export const outbox = (page) =>
  page.locator("#outbox .mutation").evaluateAll((els) =>
    els.map((el) => `${el.dataset.kind} ${el.querySelector(".record").firstChild.textContent}`));
/** The server's task titles as the demo's server view shows them. */
export const serverTitles = (page) => page.locator("#server-rows td.title").allTextContents();
/** The titles the server really holds, from its admin dump. */
export const dumpTitles = async (server) => ((await server.admin("/__admin/dump")).todos ?? []).map((r) => r.title);

/** The row of the task titled `title`. */
export const task = (page, title) => page.locator("#tasks .task").filter({ has: page.locator(".title", { hasText: title }) });
