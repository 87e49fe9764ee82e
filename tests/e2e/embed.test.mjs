// The README's "Use it in your app" examples, taken from the README itself (each code block that
// starts with a file-name comment), so the text a newcomer copies is the text that is tested:
// the plain page is served by the reference server, the Vite app is built, previewed and run
// under Vite's dev server, and in each a note typed into the page must reach the server.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { launch, root, screenshot, startServer, until, watch } from "./helpers.mjs";

/** `{ "A plain page": { "index.html": "…" }, … }` from the README section "Use it in your app". */
function examples() {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const section = readme.split(/^## /m).find((s) => s.startsWith("Use it in your app"));
  assert.ok(section, "the README has a section “Use it in your app”");
  const out = {};
  for (const sub of section.split(/^### /m).slice(1)) {
    const files = {};
    for (const [, body] of sub.matchAll(/^```\w*\n([\s\S]*?)^```/gm)) {
      const name = body.match(/^(?:<!--|\/\/)\s*([\w.-]+\.\w+)/)?.[1];
      if (name) files[name] = body;
      else if (body.startsWith("npm ")) files.sh = body;
    }
    out[sub.slice(0, sub.indexOf("\n")).trim()] = files;
  }
  return out;
}

let browser;
let server; // the reference server: the API for every example, and the plain page's host
let dir;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "ferry-embed-"));
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Types a note into the example page at `url` and waits for it on the page and the server. */
async function addNote(url, text, shot) {
  const context = await browser.newContext();
  const page = await context.newPage();
  watch(page);
  await page.goto(url);
  // The form works once the module has opened the store and set its handler; before that a
  // click would submit the form the browser's way and reload the page.
  await page.waitForFunction(() => document.getElementById("add").onsubmit !== null);
  await page.fill("#text", text);
  await page.click("#add button");
  await page.locator("#notes li", { hasText: text }).waitFor();
  await until(async () => ((await server.admin("/__admin/dump")).notes ?? []).some((n) => n.text === text),
    `“${text}” on the server`);
  await screenshot(page, shot);
  assert.deepEqual(page.errors, []);
  assert.deepEqual(page.httpErrors, []);
  await context.close();
}

test("the README's plain-page example works as written", async () => {
  const files = examples()["A plain page"];
  assert.deepEqual(Object.keys(files), ["index.html"]);
  const site = join(dir, "plain");
  mkdirSync(site);
  writeFileSync(join(site, "index.html"), files["index.html"]);
  server = await startServer({ statics: site });
  await addNote(server.url + "/", "from a plain page", "embed-plain-page");
});

test("the README's Vite example builds, previews and runs under the dev server", async () => {
  const files = examples()["With a bundler (Vite)"];
  assert.deepEqual(Object.keys(files).sort(), ["index.html", "main.js", "sh", "vite.config.js"]);
  server ??= await startServer();
  const app = join(dir, "vite");
  mkdirSync(join(app, "node_modules"), { recursive: true });
  for (const [name, body] of Object.entries(files)) writeFileSync(join(app, name), body);
  writeFileSync(join(app, "package.json"), JSON.stringify({ private: true }));
  // The README's own npm commands, in order (the package is a local folder: no registry
  // involved); Vite is this repository's dev dependency, linked rather than fetched again.
  for (const line of files.sh.split("\n").map((l) => l.replace(/#.*/, "").trim())) {
    if (!line.startsWith("npm ") || line.includes("vite")) continue;
    const args = line.split(/\s+/).slice(1).map((a) => (a === "../ferry/pkg" ? join(root, "pkg") : a));
    const quiet = args[0] === "install" ? ["--no-audit", "--no-fund"] : [];
    execFileSync("npm", [...args, ...quiet], { cwd: app, stdio: "pipe" });
  }
  assert.equal(JSON.parse(readFileSync(join(app, "package.json"), "utf8")).type, "module");
  assert.ok(!lstatSync(join(app, "node_modules", "ferry")).isSymbolicLink(), "a copy, not a link");
  symlinkSync(join(root, "node_modules", "vite"), join(app, "node_modules", "vite"), "dir");

  process.env.API_URL = server.url; // read by the example's vite.config.js
  const vite = await import("vite");
  await vite.build({ root: app, logLevel: "warn" });
  assert.match(readFileSync(join(app, "dist", "index.html"), "utf8"), /<script type="module"/);

  const preview = await vite.preview({ root: app, logLevel: "warn", preview: { port: 0, strictPort: false } });
  try {
    await addNote(preview.resolvedUrls.local[0], "from a Vite build", "embed-vite-build");
  } finally {
    await new Promise((resolve) => preview.httpServer.close(resolve));
  }

  const dev = await vite.createServer({ root: app, logLevel: "warn", server: { port: 0 } });
  try {
    await dev.listen();
    await addNote(dev.resolvedUrls.local[0], "from the Vite dev server", "embed-vite-dev");
  } finally {
    await dev.close();
  }
});
