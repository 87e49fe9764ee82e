// Where the browser refuses IndexedDB (a frame sandboxed without allow-same-origin, as code
// playgrounds and some embeds run a page), Ferry.open says so in the browser's own words. It
// said "IndexedDB: Version cannot be zero", which sent developers looking at versions.
import { test } from "node:test";
import assert from "node:assert/strict";
import { launch } from "./helpers.mjs";
import { startServer } from "./chaos-page/lib.mjs";

test("in a sandboxed frame, Ferry.open fails with a StorageError that gives the browser's reason", async () => {
  // The frame's origin is opaque: its requests for the package are cross-origin.
  const server = await startServer({ extra: ["--cors-origin", "*"] });
  const browser = await launch();
  try {
    const page = await browser.newPage();
    await page.goto(server.url + "/");
    const said = await page.evaluate((base) => new Promise((done) => {
      addEventListener("message", (e) => done(e.data), { once: true });
      const frame = document.createElement("iframe");
      frame.sandbox = "allow-scripts";
      frame.srcdoc = `<script type="module">
        const m = await import("${base}/pkg/ferry.js");
        await m.default();
        let said;
        try {
          (await m.Ferry.open({ name: "sandboxed", collections: { items: { url: "${base}/api/items" } } })).close();
          said = "opened";
        } catch (e) { said = { name: e.name, message: e.message, isError: e instanceof Error }; }
        parent.postMessage(said, "*");
      </script>`;
      document.body.append(frame);
      setTimeout(() => done("no answer in 15 s"), 15_000);
    }), server.url);
    assert.equal(said.name, "StorageError", JSON.stringify(said));
    assert.equal(said.isError, true);
    assert.match(said.message, /IndexedDB cannot be used here/);
    assert.match(said.message, /SecurityError/, "the browser's own reason");
    assert.doesNotMatch(said.message, /Version cannot be zero/);
  } finally {
    await browser.close();
    await server.kill();
  }
});
