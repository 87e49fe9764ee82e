// The demo's "make the server misbehave" switches, and what the page shows as Ferry copes: a
// refused change with retry and discard, a server that is down (attempts, next retry), and an
// answer lost after the write was stored (the retry is replayed, not applied twice).
import { beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import { dumpTitles, openDemo, screenshot, task, titles, until, withServerAndBrowser } from "./helpers.mjs";

let server;
let browser;
withServerAndBrowser((s, b) => ([server, browser] = [s, b]));
beforeEach(async () => {
  await server.admin("/__admin/reset", {});
  await server.admin("/__admin/wipe", {});
});

async function add(page, title) {
  await page.fill("#new-title", title);
  await page.press("#new-title", "Enter");
  await until(async () => (await dumpTitles(server)).includes(title), `“${title}” on the server`);
  await until(async () => (await page.locator("#outbox .mutation").count()) === 0, "the outbox to empty");
}

async function fault(page, name, says) {
  const faults = page.locator("#faults");
  if (!(await faults.evaluate((d) => d.open))) await faults.locator("summary").click();
  await faults.getByRole("button", { name }).click();
  await until(async () => (await page.locator("#fault-state").textContent()).startsWith(says), `the switch “${name}”`);
}

test("a refused change shows with Retry and Discard, and both do what they say", async () => {
  const { context, page } = await openDemo(browser, server.url);
  await add(page, "Call the hotel");

  await fault(page, "Refuse the next edit", "The next edit or delete will be refused");
  await task(page, "Call the hotel").getByRole("button", { name: "Edit" }).click();
  await page.fill("#tasks .rename", "Call the hotel at nine");
  await page.press("#tasks .rename", "Enter");
  const refused = page.locator("#rejected .rejected");
  await refused.waitFor();
  assert.match(await refused.textContent(), /Refused \(422\) update of “Call the hotel at nine”/);
  // Ferry put the record back as the server has it.
  await until(async () => String(await titles(page)) === "Call the hotel", "the title to go back");
  await screenshot(page, "rejected-desktop");

  await refused.getByRole("button", { name: "Retry" }).click();
  await until(async () => String(await dumpTitles(server)) === "Call the hotel at nine", "the retried change on the server");
  await until(async () => (await refused.count()) === 0, "the refusal to go");
  assert.deepEqual(await titles(page), ["Call the hotel at nine"]);

  await fault(page, "Refuse the next edit", "The next edit or delete will be refused");
  await task(page, "Call the hotel at nine").getByRole("button", { name: "Delete" }).click();
  await refused.waitFor();
  assert.match(await refused.textContent(), /Refused \(422\) delete/);
  await until(async () => String(await titles(page)) === "Call the hotel at nine", "the deleted task to come back");
  await refused.getByRole("button", { name: "Discard" }).click();
  await until(async () => (await refused.count()) === 0, "the refusal to go");
  assert.deepEqual(await dumpTitles(server), ["Call the hotel at nine"]);
  assert.deepEqual(await titles(page), ["Call the hotel at nine"]);

  assert.deepEqual(page.errors, []);
  assert.deepEqual(page.httpErrors, [422, 422]);
  await context.close();
});

test("while the server is down the outbox shows attempts and the next retry; it drains once healed", async () => {
  const { context, page } = await openDemo(browser, server.url);
  await fault(page, "Server down", "Down");
  await page.fill("#new-title", "Buy a SIM card");
  await page.press("#new-title", "Enter");
  const entry = page.locator("#outbox .mutation");
  await until(async () => /attempt.* · next try in \d+ s/.test(await entry.locator(".state").textContent()), "a retry time");
  await page.locator("#conn[data-state=retrying]").waitFor();
  await screenshot(page, "server-down-desktop");

  await fault(page, "Heal", "The server behaves");
  // No click on "Sync now": the retry timer alone must bring it through (backoff starts at 1 s).
  await until(async () => (await entry.count()) === 0, "the outbox to drain", 30_000);
  assert.deepEqual(await dumpTitles(server), ["Buy a SIM card"]);
  await page.locator("#conn[data-state=online]").waitFor();
  assert.deepEqual(page.errors, []);
  assert.ok(page.httpErrors.length > 0 && page.httpErrors.every((s) => s === 503), String(page.httpErrors));
  await context.close();
});

test("an answer lost after the write was stored is retried under the same key, not applied twice", async () => {
  const { context, page } = await openDemo(browser, server.url);
  await server.admin("/__admin/stats/reset", {});
  await fault(page, "Lose the next answer", "The next write will be stored");
  await page.fill("#new-title", "Print the boarding pass");
  await page.press("#new-title", "Enter");
  await until(async () => (await server.admin("/__admin/stats")).idempotentReplays >= 1, "the retry to be replayed", 30_000);
  await until(async () => (await page.locator("#outbox .mutation").count()) === 0, "the outbox to drain");
  assert.deepEqual(await dumpTitles(server), ["Print the boarding pass"]);
  await until(async () => (await page.locator("#tasks .task .meta").textContent()).startsWith("#"), "the server id");
  assert.deepEqual(page.errors, []);
  assert.ok(page.httpErrors.every((e) => String(e).startsWith("net::")), String(page.httpErrors));
  await context.close();
});
