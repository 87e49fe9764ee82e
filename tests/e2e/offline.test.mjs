// Working offline in the demo: changes wait in the outbox, survive a reload, and reach the server
// when the browser is back online. Offline is Chromium's own (context.setOffline), so the page
// gets real `offline`/`online` events and failing requests.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  DESKTOP, PHONE, dumpTitles, openDemo, outbox, ready, screenshot, serverTitles, task, titles, until, withServerAndBrowser,
} from "./helpers.mjs";

let server;
let browser;
withServerAndBrowser((s, b) => ([server, browser] = [s, b]));

async function add(page, title) {
  await page.fill("#new-title", title);
  await page.press("#new-title", "Enter");
  await task(page, title).waitFor();
}

test("offline create, edit and delete wait in the outbox, survive a reload, and sync when online", async () => {
  await server.admin("/__admin/wipe", {});
  const { context, page } = await openDemo(browser, server.url, { viewport: DESKTOP });
  await add(page, "Book the ferry");
  await add(page, "Reply to Anna");
  await until(async () => (await dumpTitles(server)).length === 2, "both tasks on the server");
  await until(async () => (await serverTitles(page)).length === 2, "the server view to show them");
  await until(() => page.locator("#conn[data-state=online]").count(), "the pill to say online");
  assert.equal(await page.getAttribute("body", "data-offline-ready"), "true");

  await context.setOffline(true);
  await page.waitForSelector("#conn[data-state=offline]");
  await add(page, "Write the trip notes");
  await task(page, "Reply to Anna").getByRole("button", { name: "Edit" }).click();
  await page.fill("#tasks .rename", "Reply to Anna from the plane");
  await page.press("#tasks .rename", "Enter");
  await task(page, "Book the ferry").getByRole("button", { name: "Delete" }).click();

  const expected = ["create Write the trip notes", "update Reply to Anna from the plane", "delete Book the ferry"];
  await until(async () => String(await outbox(page)) === String(expected), "the three changes in the outbox");
  assert.deepEqual(await titles(page), ["Reply to Anna from the plane", "Write the trip notes"]);
  assert.match(await page.locator("#conn").textContent(), /Offline · 3 waiting/);
  assert.equal(await page.locator("#outbox .mutation.update .fields").textContent(), "title → “Reply to Anna from the plane”");
  assert.deepEqual(await dumpTitles(server), ["Book the ferry", "Reply to Anna"], "nothing was sent");
  await screenshot(page, "offline-desktop");

  // The service worker serves the page; IndexedDB still holds the records and the outbox.
  await page.reload();
  await ready(page);
  assert.deepEqual(await titles(page), ["Reply to Anna from the plane", "Write the trip notes"]);
  assert.deepEqual(await outbox(page), expected);
  assert.equal(await page.locator("#conn").getAttribute("data-state"), "offline");

  await context.setOffline(false);
  await until(async () => (await page.locator("#outbox .mutation").count()) === 0, "the outbox to empty");
  const synced = ["Reply to Anna from the plane", "Write the trip notes"];
  await until(async () => String(await dumpTitles(server)) === String(synced), "the server to hold the changes");
  await until(async () => String(await serverTitles(page)) === String(synced), "the server view to show them");
  await until(() => page.locator("#conn[data-state=online]").count(), "the pill to say online");
  assert.deepEqual(await titles(page), synced);
  assert.equal(await page.locator("#tasks .tag.wait").count(), 0, "no task is marked unsent");
  await screenshot(page, "online-desktop");
  assert.deepEqual(page.errors, []);
  assert.deepEqual(page.httpErrors, []);
  await context.close();
});

test("at phone width nothing overflows and the whole flow still works", async () => {
  await server.admin("/__admin/wipe", {});
  const { context, page } = await openDemo(browser, server.url, { viewport: PHONE });
  await add(page, "A rather long task title that has to wrap on a narrow phone screen without overflowing");
  await until(async () => (await dumpTitles(server)).length === 1, "the task on the server");
  await context.setOffline(true);
  await page.waitForSelector("#conn[data-state=offline]");
  await add(page, "Offline on the phone");
  await until(async () => (await outbox(page)).length === 1, "one change in the outbox");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
  await screenshot(page, "offline-phone");
  await context.setOffline(false);
  await until(async () => (await dumpTitles(server)).length === 2, "both tasks on the server");
  await until(async () => (await page.locator("#outbox .mutation").count()) === 0, "the outbox to empty");
  assert.deepEqual(page.errors, []);
  assert.deepEqual(page.httpErrors, []);
  await context.close();
});

test("fields are shown as text, never run as HTML", async () => {
  await server.admin("/__admin/wipe", {});
  const { context, page } = await openDemo(browser, server.url);
  const evil = `<img src=x onerror="window.__pwned=1">`;
  await context.setOffline(true);
  await page.waitForSelector("#conn[data-state=offline]");
  await add(page, evil);
  await until(async () => (await outbox(page)).length === 1, "the change in the outbox");
  await context.setOffline(false);
  await until(async () => (await serverTitles(page)).includes(evil), "the server view to show it");
  assert.equal(await page.locator("main img").count(), 0);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.ok((await page.locator("#activity").textContent()).includes(evil));
  assert.deepEqual(page.errors, []);
  assert.deepEqual(page.httpErrors, []);
  await context.close();
});

test("the Work offline switch takes only the app offline, and holds across a reload", async () => {
  await server.admin("/__admin/wipe", {});
  const { context, page } = await openDemo(browser, server.url);
  await add(page, "Made online");
  await until(async () => (await dumpTitles(server)).length === 1, "the task on the server");

  await page.locator("#offline-label").click();
  await page.waitForSelector("#conn[data-state=offline]");
  assert.equal(await page.locator("#conn").getAttribute("title"), "Work offline is on");
  await add(page, "Made while working offline");
  await until(async () => String(await outbox(page)) === "create Made while working offline", "the change in the outbox");
  // The browser is still online: the page can read the server, which has not got the change.
  await page.getByRole("button", { name: "Refresh" }).click();
  await until(async () => (await page.locator("#server-note").textContent()).startsWith("What the server holds"), "a fresh read");
  assert.deepEqual(await serverTitles(page), ["Made online"]);

  await page.reload();
  await ready(page);
  assert.equal(await page.locator("#offline-switch").isChecked(), true);
  await page.waitForSelector("#conn[data-state=offline]");
  assert.deepEqual(await outbox(page), ["create Made while working offline"]);
  assert.deepEqual(await dumpTitles(server), ["Made online"]);

  await page.locator("#offline-label").click();
  await until(async () => (await page.locator("#outbox .mutation").count()) === 0, "the outbox to empty");
  await until(async () => String(await dumpTitles(server)) === "Made online,Made while working offline", "the server to have it");
  assert.deepEqual(page.errors, []);
  assert.deepEqual(page.httpErrors, []);
  await context.close();
});
