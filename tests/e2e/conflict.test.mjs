// Two devices (two browser contexts, each with its own IndexedDB) change the same task; the one
// that was offline meets the conflict when it comes back, the page shows it field by field, and
// the devices and the server settle on one record.
import { beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import {
  DESKTOP, dumpTitles, openDemo, ready, screenshot, task, titles, until, withServerAndBrowser,
} from "./helpers.mjs";

let server;
let browser;
withServerAndBrowser((s, b) => ([server, browser] = [s, b]));
beforeEach(() => server.admin("/__admin/wipe", {}));

const dump = async () => (await server.admin("/__admin/dump")).todos ?? [];
const outboxEmpty = async (page) => (await page.locator("#outbox .mutation").count()) === 0;

async function rename(page, from, to) {
  await task(page, from).getByRole("button", { name: "Edit" }).click();
  await page.fill("#tasks .rename", to);
  await page.press("#tasks .rename", "Enter");
}

/** Device A creates `title`; device B opens and reads it from the server. */
async function twoDevices(title) {
  const a = await openDemo(browser, server.url, { viewport: DESKTOP });
  await a.page.fill("#new-title", title);
  await a.page.press("#new-title", "Enter");
  await until(async () => (await dumpTitles(server)).includes(title), "the task on the server");
  await until(() => outboxEmpty(a.page), "A's outbox to empty");
  const b = await openDemo(browser, server.url, { viewport: DESKTOP, path: "/?device=B" });
  await until(async () => (await titles(b.page)).includes(title), "B to read the task");
  return [a, b];
}

test("the same field changed on two devices: the page shows the conflict and settles it", async () => {
  const [a, b] = await twoDevices("Plan the trip");

  await a.context.setOffline(true);
  await a.page.waitForSelector("#conn[data-state=offline]");
  await rename(a.page, "Plan the trip", "Plan the trip to Oslo");
  await rename(b.page, "Plan the trip", "Plan the trip to Lisbon");
  await until(async () => (await dumpTitles(server))[0] === "Plan the trip to Lisbon", "B's change on the server");

  await a.context.setOffline(false);
  const conflict = a.page.locator("#conflicts .conflict");
  await conflict.waitFor();
  // merge, tie to the server: both renamed, so the server's title stands, and the page says so.
  await until(async () => String(await titles(a.page)) === "Plan the trip to Lisbon", "A to take the server's title");
  const row = await conflict.locator("tbody tr").first().locator("th, td").allTextContents();
  assert.deepEqual(row, ["title", "“Plan the trip”", "“Plan the trip to Oslo”", "“Plan the trip to Lisbon”", "“Plan the trip to Lisbon”"]);
  assert.equal(await a.page.locator("#attention-count").textContent(), "1");
  await until(() => outboxEmpty(a.page), "A's outbox to empty");
  await screenshot(a.page, "conflict-desktop");

  // "Use mine" writes this device's title again, as a new change over the server's version.
  await conflict.getByRole("button", { name: "Use mine" }).click();
  await until(async () => (await a.page.locator("#conflicts .conflict").count()) === 0, "the conflict to be dismissed");
  await until(async () => (await dumpTitles(server))[0] === "Plan the trip to Oslo", "A's title on the server");
  await until(() => outboxEmpty(a.page), "A's outbox to empty");
  await b.page.getByRole("button", { name: "Sync now" }).click();
  await until(async () => String(await titles(b.page)) === "Plan the trip to Oslo", "B to read A's title");
  assert.deepEqual(await titles(a.page), ["Plan the trip to Oslo"]);
  assert.equal((await dump()).length, 1, "still one task on the server");
  await screenshot(b.page, "conflict-settled-device-b");

  assert.deepEqual(a.page.errors, []);
  assert.deepEqual(b.page.errors, []);
  assert.deepEqual(a.page.httpErrors, [412], "the one conflict answer");
  assert.deepEqual(b.page.httpErrors, []);
  await a.context.close();
  await b.context.close();
});

test("different fields changed on two devices are merged, and both devices agree", async () => {
  const [a, b] = await twoDevices("Pack for Bergen");

  await a.context.setOffline(true);
  await a.page.waitForSelector("#conn[data-state=offline]");
  await task(a.page, "Pack for Bergen").locator("input[type=checkbox]").check();
  await rename(b.page, "Pack for Bergen", "Pack for Bergen and Oslo");
  await until(async () => (await dumpTitles(server))[0] === "Pack for Bergen and Oslo", "B's change on the server");

  await a.context.setOffline(false);
  const conflict = a.page.locator("#conflicts .conflict");
  await conflict.waitFor();
  await until(async () => {
    const [r] = await dump();
    return r.title === "Pack for Bergen and Oslo" && r.done === true;
  }, "the merged record on the server");
  await until(async () => String(await titles(a.page)) === "Pack for Bergen and Oslo", "A to show B's title");
  assert.equal(await task(a.page, "Pack for Bergen and Oslo").locator("input[type=checkbox]").isChecked(), true);
  // Nothing of A's was lost, so there is nothing to put back: only an acknowledgement.
  assert.equal(await conflict.getByRole("button", { name: "Use mine" }).count(), 0);
  await conflict.getByRole("button", { name: "OK" }).click();
  await a.page.locator("#attention-empty").waitFor();

  await b.page.getByRole("button", { name: "Sync now" }).click();
  await until(() => task(b.page, "Pack for Bergen and Oslo").locator("input[type=checkbox]").isChecked(), "B to see it done");
  assert.deepEqual(a.page.errors, []);
  assert.deepEqual(b.page.errors, []);
  assert.deepEqual(a.page.httpErrors, [412], "the one conflict answer");
  assert.deepEqual(b.page.httpErrors, []);
  await a.context.close();
  await b.context.close();
});

test("under the custom policy the conflict waits for the user, who merges it", async () => {
  const [a, b] = await twoDevices("Renew the passport");
  // The policy is part of the store's options: choosing it reloads the page.
  await Promise.all([a.page.waitForNavigation(), a.page.selectOption("#policy", "custom")]);
  await ready(a.page);

  await a.page.locator("#offline-label").click();
  await a.page.waitForSelector("#conn[data-state=offline]");
  await rename(a.page, "Renew the passport", "Renew the passport before June");
  await task(b.page, "Renew the passport").locator("input[type=checkbox]").check();
  await until(async () => (await dump())[0]?.done === true, "B's change on the server");

  await a.page.locator("#offline-label").click();
  const open = a.page.locator("#open-conflicts .conflict");
  await open.waitFor();
  assert.match(await open.textContent(), /Your call “Renew the passport before June”/);
  // Nothing moves until the user decides: the server keeps B's version, A's change is held.
  assert.equal((await dump())[0].title, "Renew the passport");
  await until(async () => /held until you settle/.test(await a.page.locator("#outbox .mutation").textContent()), "the held change");
  await screenshot(a.page, "conflict-custom-desktop");

  await open.getByRole("button", { name: "Merge" }).click();
  await until(async () => {
    const [r] = await dump();
    return r.title === "Renew the passport before June" && r.done === true;
  }, "the merged record on the server");
  await until(async () => (await open.count()) === 0, "the conflict to go");
  await until(() => outboxEmpty(a.page), "A's outbox to empty");
  await b.page.getByRole("button", { name: "Sync now" }).click();
  await until(async () => String(await titles(b.page)) === "Renew the passport before June", "B to read the result");
  assert.deepEqual(a.page.errors, []);
  assert.deepEqual(b.page.errors, []);
  assert.deepEqual(a.page.httpErrors, [412], "the one conflict answer");
  await a.context.close();
  await b.context.close();
});
