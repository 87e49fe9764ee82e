// The network coming back at an awkward moment: its `online` event arrives while a sync run is
// ending because a request found the browser offline. The event comes once; the outbox must
// still drain without the app writing again or calling sync().
import { test } from "node:test";
import assert from "node:assert/strict";
import { openPage, state, until, withPageServerAndBrowser } from "./chaos-page/lib.mjs";

let browser;
let server;
withPageServerAndBrowser((s, b) => ((server = s), (browser = b)));

test("an online event heard while a run ends offline still drains the outbox", async () => {
  await server.admin("/__admin/wipe", {});
  await server.admin("/__admin/faults", { delayMs: 300, methods: ["POST"] });
  const context = await browser.newContext();
  const page = await openPage(context, server.url, "network-race", { debounceMs: 0 });
  try {
    await page.evaluate(async () => {
      const { db, items } = window.ferry;
      db.setOffline(true);
      for (let i = 0; i < 6; i++) await items.create({ key: `k${i}`, v: i });
      // The order a real blip gives, made exact: the network drops while the first create is
      // out; the next request finds the browser offline, and the network is back a tick later.
      let net = true;
      let armed = false;
      Object.defineProperty(Navigator.prototype, "onLine", {
        configurable: true,
        get() {
          if (armed && !net) {
            armed = false;
            setTimeout(() => {
              net = true;
              dispatchEvent(new Event("online"));
            }, 0);
          }
          return net;
        },
      });
      db.setOffline(false);
      await new Promise((r) => setTimeout(r, 150));
      net = false;
      dispatchEvent(new Event("offline"));
      armed = true;
    });
    // Well before the 10 s a store waits to try again when it heard no `offline` event.
    await until(async () => (await state(page)).pending === 0, "the outbox to drain", 6_000);
    const keys = (await server.items()).map((r) => r.key).sort();
    assert.deepEqual(keys, ["k0", "k1", "k2", "k3", "k4", "k5"]);
  } finally {
    await server.admin("/__admin/reset", {});
    await context.close();
  }
});
