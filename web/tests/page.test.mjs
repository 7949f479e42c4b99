// The Messages page in Chromium against the whole system with its demo day: the feed, filters,
// search, threads with whole texts, composing, unread replies, tenancy and sign-in.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { launchBrowser, startSystem } from "./system.mjs";

let system;
let browser;

/** The demo day's messages: Dana 7, Sam 4, Marco, Priya and Lee 1 each. */
const DEMO_MESSAGES = 14;

before(async () => {
  system = await startSystem();
  browser = await launchBrowser();
  // Every demo message listed and past queued: the system has settled.
  const page = await open();
  for (let tries = 0; ; tries++) {
    const shown = await rows(page);
    if (shown.length === DEMO_MESSAGES && shown.every((r) => !r.status.startsWith("Queued"))) break;
    assert.ok(tries < 60, `the demo never settled: ${JSON.stringify(shown)}`);
    await new Promise((resume) => setTimeout(resume, 500));
    await page.reload();
  }
  await page.close();
});

after(async () => {
  await browser?.close();
  await system?.stop();
});

/** A page signed in as `account` (the demo's by default), showing the feed at `query`. */
async function open(query = "", token = null, viewport = { width: 1280, height: 900 }) {
  const page = await browser.newPage({ viewport });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.errors = errors;
  const handed = token ?? new URL(system.link).hash.slice("#token=".length);
  await page.goto(`${system.origin}/${query}#token=${handed}`);
  return page;
}

async function rows(page) {
  await page.locator("table.feed tbody tr, p.empty").first().waitFor();
  return page.$$eval("table.feed tbody tr", (trs) =>
    trs.map((tr) => Object.fromEntries([...tr.querySelectorAll("td")].map((td) => [td.dataset.column, td.innerText.replace(/\s+/g, " ").trim()]))),
  );
}

describe("the feed", () => {
  test("lists the demo day newest first with every column, a failure red with its reason", async () => {
    const page = await open();
    const shown = await rows(page);
    assert.equal(shown.length, DEMO_MESSAGES);
    const headers = await page.$$eval("table.feed th", (ths) => ths.map((th) => th.textContent));
    assert.deepEqual(headers, ["Direction", "Channel", "Customer", "Type", "Status", "Time"]);
    for (const row of shown) {
      for (const column of ["direction", "channel", "customer", "type", "status", "time"]) assert.ok(row[column], `${column} empty in ${JSON.stringify(row)}`);
    }
    assert.ok(shown.some((r) => r.customer === "Dana Reyes +15125550199" && r.channel === "SMS"));
    assert.ok(shown.some((r) => r.customer === "Dana Reyes dana@example.com" && r.channel === "Email"));
    const failed = page.locator("tr.failed");
    assert.equal(await failed.count(), 1);
    assert.match(await failed.innerText(), /Lee Park[\s\S]*Failed: not sms capable/);
    const color = await failed.locator(".status").evaluate((el) => getComputedStyle(el).color);
    assert.equal(color, "rgb(179, 38, 30)");
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  test("each filter narrows the rows, they combine, and the URL keeps them through a reload", async () => {
    const page = await open();
    const all = await rows(page);
    await page.selectOption("#filter-channel", "email");
    await page.waitForURL(/channel=email/);
    let shown = await rows(page);
    assert.ok(shown.length > 0 && shown.length < all.length);
    assert.ok(shown.every((r) => r.channel === "Email"));
    await page.selectOption("#filter-type", "payment_receipt");
    await page.waitForURL(/type=payment_receipt/);
    await page.waitForFunction(() => document.querySelectorAll("table.feed tbody tr").length === 1);
    shown = await rows(page);
    assert.deepEqual(shown.map((r) => [r.channel, r.type, r.customer]), [["Email", "Payment receipt", "Dana Reyes dana@example.com"]]);
    await page.reload();
    shown = await rows(page);
    assert.equal(shown.length, 1, "a reload keeps the filters");
    assert.equal(await page.inputValue("#filter-channel"), "email");
    await page.click("text=Clear filters");
    await page.selectOption("#filter-status", "failed");
    await page.waitForURL(/status=failed/);
    await page.waitForFunction(() => document.querySelectorAll("table.feed tbody tr").length === 1);
    assert.match((await rows(page))[0].customer, /Lee Park/);
    await page.click("text=Clear filters");
    await page.selectOption("#filter-direction", "outbound");
    await page.waitForURL(/direction=outbound/);
    assert.ok((await rows(page)).every((r) => r.direction === "Outbound"));
    const today = new Date();
    const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1).toLocaleDateString("en-CA");
    await page.fill("#filter-until", yesterday);
    await page.waitForURL(/until=/);
    await page.locator("p.empty").waitFor();
    assert.match(await page.locator("p.empty").innerText(), /No messages match these filters/);
    await page.close();
  });

  test("search finds a customer by a phone fragment in any format, and by name", async () => {
    const page = await open();
    await page.fill("#filter-q", "(512) 555-01 42");
    await page.press("#filter-q", "Enter");
    await page.waitForURL(/q=/);
    await page.waitForFunction(() => [...document.querySelectorAll("table.feed tbody tr")].every((tr) => tr.innerText.includes("Marco")));
    const shown = await rows(page);
    assert.ok(shown.length >= 1 && shown.every((r) => r.customer.startsWith("Marco Bianchi")));
    const shared = page.url();
    const other = await browser.newPage();
    await other.goto(shared + new URL(system.link).hash);
    assert.ok((await rows(other)).every((r) => r.customer.startsWith("Marco Bianchi")), "a shared link keeps the search");
    await other.close();
    await page.fill("#filter-q", "priya");
    await page.press("#filter-q", "Enter");
    await page.waitForFunction(() => [...document.querySelectorAll("table.feed tbody tr")].every((tr) => tr.innerText.includes("Priya")));
    await page.close();
  });
});

describe("a thread", () => {
  test("shows both channels oldest first with every message whole, and its status history", async () => {
    const page = await open();
    await rows(page);
    await page.locator("tr", { hasText: "dana@example.com" }).first().locator("button.customer").click();
    await page.waitForURL(/thread=cus_dana/);
    await page.locator("#thread .bubble").first().waitFor();
    assert.equal(await page.locator("#thread-title").innerText(), "Dana Reyes");
    const bodies = await page.$$eval("#thread .bubble .body", (ps) => ps.map((p) => p.textContent));
    assert.equal(bodies.length, 7);
    const longest = bodies.reduce((a, b) => (b.length > a.length ? b : a));
    assert.ok(longest.length > 160, `the longest message shows ${longest.length} characters`);
    const times = await page.$$eval("#thread .bubble", (els) => els.map((el) => el.dataset.messageId));
    assert.equal(new Set(times).size, times.length);
    const first = page.locator("#thread .bubble").first();
    await first.locator("summary").click();
    await first.locator(".timeline li").first().waitFor();
    assert.match(await first.locator(".timeline").innerText(), /Queued from dispatch/);
    await page.close();
  });
});
