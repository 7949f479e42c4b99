// The Messages page in Chromium against the whole system with its demo day: the feed, filters,
// search, threads with whole texts, composing, unread replies, tenancy and sign-in.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { dropper, launchBrowser, startSystem } from "./system.mjs";

let system;
let browser;

/** The demo day's messages: Dana 7, Sam 4, Marco, Priya and Lee 1 each. */
const DEMO_MESSAGES = 14;

before(async () => {
  system = await startSystem();
  browser = await launchBrowser();
  // The system has settled when the feed stays the same for two seconds with nothing queued.
  const page = await open();
  let last = "";
  for (let tries = 0; ; tries++) {
    const shown = await rows(page);
    const now = JSON.stringify(shown);
    if (now === last && shown.length >= DEMO_MESSAGES && shown.every((r) => !r.status.startsWith("Queued"))) break;
    assert.ok(tries < 30, `the demo never settled: ${now}`);
    last = now;
    await new Promise((resume) => setTimeout(resume, 2000));
    await page.reload();
  }
  await page.close();
});

after(async () => {
  await browser?.close();
  await system?.stop();
});

/** A page signed in as `account` (the demo's by default), showing the feed at `query`. */
const open = (query = "", token = null, viewport = undefined) => system.open(browser, query, token, viewport);

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

  test("reports the time from navigation to the first rows, cold and warm", async () => {
    for (const visit of ["cold", "warm"]) {
      const context = await browser.newContext();
      const page = await context.newPage();
      const times = [];
      for (let i = 0; i < (visit === "cold" ? 1 : 5); i++) {
        await page.goto(`${system.link}`);
        await page.locator("table.feed tbody tr").first().waitFor();
        times.push(await page.evaluate(() => performance.getEntriesByName("first-rows")[0].startTime));
      }
      const median = times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
      console.log(`first rows (${visit}${visit === "warm" ? ", median of 5" : ""}): ${median.toFixed(0)} ms after navigation`);
      assert.ok(median > 0);
      await context.close();
    }
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

describe("writing and reading", () => {
  test("an SMS composed in the thread goes queued, sent, delivered on the page without a reload, once", async () => {
    const page = await open("?thread=cus_marco");
    await page.locator("#compose-text").waitFor();
    const text = "Running 15 minutes late — see you soon!";
    await page.fill("#compose-text", text);
    assert.match(await page.locator("#compose-counter").innerText(), /^39\/1600 characters · 1 segment \(UCS-2\)$/);
    // A double click is one request id: one message.
    await page.locator(".composer button[type=submit]").dblclick();
    const bubble = page.locator("#thread .bubble", { hasText: text });
    await bubble.first().waitFor();
    const seen = new Set();
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const status = await bubble.first().locator(".status").innerText();
      seen.add(status);
      if (status === "Delivered") break;
      await page.waitForTimeout(50);
    }
    assert.ok(seen.has("Delivered"), `statuses seen: ${[...seen]}`);
    assert.equal(await bubble.count(), 1);
    const row = page.locator("table.feed tr", { hasText: "Marco Bianchi" }).filter({ hasText: "Manual" });
    await row.first().waitFor();
    assert.equal(await row.count(), 1, "the feed shows the new message once, live");
    assert.match(await row.first().innerText(), /Delivered/);
    const sent = (await system.smsSent()).messages.filter((m) => m.body.startsWith(text));
    assert.equal(sent.length, 1, "one SMS reached the provider");
    await page.close();
  });

  test("the composer says up front why a customer cannot be written to", async () => {
    const page = await open("?thread=cus_priya");
    await page.locator("#compose-channel").waitFor();
    assert.equal(await page.inputValue("#compose-channel"), String(2), "email, the channel Priya can get");
    await page.selectOption("#compose-channel", "1");
    assert.match(await page.locator(".compose-blocked").innerText(), /no phone/);
    assert.ok(await page.locator("#compose-text").isDisabled());
    assert.ok(await page.locator(".composer button[type=submit]").isDisabled());
    await page.close();
  });

  test("a reply raises the unread badge live; opening its thread clears it", async () => {
    const page = await open();
    await rows(page);
    await page.locator("#unread-total[data-count='0']").waitFor({ state: "attached" });
    await system.textIn("+15125550199", "+15125550100", "Thanks! Is the gate code still 4321?");
    await page.locator("#unread-total", { hasText: "1 unread" }).waitFor();
    const reply = page.locator("table.feed tr.unread", { hasText: "Dana Reyes" });
    await reply.waitFor();
    assert.match(await reply.innerText(), /Inbound[\s\S]*Reply[\s\S]*1 new/);
    await reply.locator("button.customer").click();
    await page.locator("#thread .bubble.in", { hasText: "gate code" }).waitFor();
    await page.locator("#unread-total").waitFor({ state: "hidden" });
    assert.equal(await page.locator("table.feed tr.unread").count(), 0);
    await page.reload();
    await rows(page);
    await page.locator("#unread-total[data-count]").waitFor({ state: "attached" });
    assert.equal(await page.locator("#unread-total").getAttribute("data-count"), "0", "read stays read");
    await page.close();
  });
});

describe("who sees what", () => {
  test("another account's token sees none of the demo, not even by a thread's link", async () => {
    const page = await open("", system.token("acc_rival"));
    await page.locator("p.empty").waitFor();
    assert.match(await page.locator("p.empty").innerText(), /No messages yet/);
    await page.goto(`${system.origin}/?thread=cus_dana`);
    await page.locator("#thread .error").waitFor();
    assert.match(await page.locator("#thread .error").innerText(), /no customer cus_dana/);
    assert.equal(await page.locator("#thread .bubble").count(), 0);
    await page.close();
  });

  test("an expired token shows the sign-in with what to do, and a fresh one signs in", async () => {
    const page = await open("", system.token("acc_demo", -1));
    await page.locator("form.sign-in").waitFor();
    assert.match(await page.locator("form.sign-in .error").innerText(), /expired/);
    assert.equal(new URL(page.url()).hash, "", "the token left the address bar");
    await page.fill("#token", system.token("acc_demo"));
    await page.click("form.sign-in button");
    assert.equal((await rows(page)).length > 0, true);
    await page.close();
  });

  test("the feed and a thread work on a phone-sized screen", async () => {
    const page = await open("", null, { width: 390, height: 844 });
    await rows(page);
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `the page scrolls sideways: ${width}px`);
    await page.locator("table.feed tr", { hasText: "Sam O'Connor" }).first().locator("button.customer").click();
    await page.locator("#thread .bubble").first().waitFor();
    assert.ok(await page.locator("table.feed").isHidden(), "the thread takes the screen");
    await page.click("text=← Feed");
    await page.locator("table.feed").waitFor();
    await page.close();
  });
});

describe("gRPC-Web for any client", () => {
  const curl = (args) =>
    promisify(execFile)("node_modules/.bin/buf", ["curl", "--protocol", "grpcweb", "--schema", "../proto", ...args]).then(
      (r) => ({ ok: true, out: r.stdout }),
      (e) => ({ ok: false, out: e.stderr }),
    );

  test("buf curl lists the feed with a token and is refused without one", async () => {
    const method = `${system.origin}/messaging.v1.FeedService/ListMessages`;
    const signed = await curl(["-H", `authorization: Bearer ${system.token("acc_demo")}`, "-d", '{"pageSize": 3}', method]);
    assert.ok(signed.ok, signed.out);
    assert.equal(JSON.parse(signed.out).messages.length, 3);
    const unsigned = await curl(["-d", "{}", method]);
    assert.ok(!unsigned.ok);
    assert.match(unsigned.out, /unauthenticated/);
  });
});

// `make screenshots` keeps the README's pictures true to the page.
test("screenshots of the feed and a thread", { skip: !process.env.SCREENSHOT_DIR }, async () => {
  const page = await open("", null, { width: 1280, height: 860 });
  await rows(page);
  await page.screenshot({ path: join(process.env.SCREENSHOT_DIR, "messages-feed.png") });
  await page.locator("table.feed tr", { hasText: "dana@example.com" }).first().locator("button.customer").click();
  await page.locator("#thread .bubble").first().waitFor();
  await page.screenshot({ path: join(process.env.SCREENSHOT_DIR, "messages-thread.png") });
  await page.close();
});

describe("an unknown number", () => {
  test("is listed, opened, texted back and attached to a customer", async () => {
    const page = await open();
    await rows(page);
    await system.textIn("+15125550177", "+15125550100", "Is this the plumber? My sink is leaking.");
    const row = page.locator("table.feed tr", { hasText: "+15125550177" });
    await row.waitFor();
    assert.match(await row.innerText(), /Inbound[\s\S]*Unknown sender[\s\S]*Reply/);
    await row.locator("button.customer").click();
    await page.waitForURL(/thread=%2B15125550177/);
    await page.locator("#thread .bubble.in", { hasText: "sink is leaking" }).waitFor();
    assert.equal(await page.locator("#thread-title").innerText(), "Unknown sender");
    await page.selectOption("#compose-channel", "2");
    assert.match(await page.locator(".compose-blocked").innerText(), /unknown sender/);
    await page.selectOption("#compose-channel", "1");
    await page.fill("#compose-text", "Yes, this is Ace Plumbing. We can come at 3.");
    await page.click("text=Text back");
    const answer = page.locator("#thread .bubble.out", { hasText: "We can come at 3" });
    await answer.waitFor();
    await answer.locator(".status", { hasText: "Delivered" }).waitFor({ timeout: 30_000 });
    await page.fill("#attach-query", "Dana");
    await page.click(".attach button[type=submit]");
    await page.click("text=Attach to Dana Reyes");
    await page.waitForURL(/thread=cus_dana/);
    await page.locator("#thread .bubble", { hasText: "sink is leaking" }).waitFor();
    await page.locator("#thread .bubble", { hasText: "We can come at 3" }).waitFor();
    // The number's rows become Dana's, live.
    await page.waitForFunction(() => ![...document.querySelectorAll("table.feed tr")].some((tr) => tr.innerText.includes("Unknown sender")));
    await page.close();
  });
});

describe("when things go wrong", () => {
  test("the live feed resumes from its cursor after the connection drops", async () => {
    const proxy = await dropper(Number(system.ports.WEB_PORT));
    const page = await browser.newPage();
    const watches = [];
    page.on("request", (r) => {
      if (r.url().endsWith("/WatchFeed")) watches.push(r.postDataBuffer()?.length ?? 0);
    });
    await page.goto(`${proxy.origin}/${new URL(system.link).hash}`);
    await rows(page);
    assert.equal(watches.length, 1);
    proxy.drop();
    // While the page is cut off (it retries after half a second), Sam writes in.
    await system.textIn("+17375550117", "+15125550100", "Sent while the page was cut off");
    const reply = page.locator("table.feed tr", { hasText: "Sam O'Connor" }).filter({ hasText: "Reply" });
    await reply.waitFor({ timeout: 20_000 });
    assert.ok(watches.length >= 2 && watches.slice(1).every((length) => length > 5), `resumed watches carry their cursor: ${watches}`);
    await page.close();
    await proxy.close();
  });

  test("a server that cannot be reached says so and the page recovers when it can", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.route("**/messaging.v1.FeedService/ListMessages", (route) => route.abort());
    await page.goto(system.link);
    await page.locator("#notice .error").waitFor();
    assert.match(await page.locator("#notice .error").innerText(), /cannot be reached/);
    await page.unroute("**/messaging.v1.FeedService/ListMessages");
    await page.click("text=Try again");
    assert.ok((await rows(page)).length > 0);
    await context.close();
  });

  test("every control is labelled and the keyboard opens a thread", async () => {
    const page = await open();
    await rows(page);
    const unlabelled = await page.$$eval("input, select, textarea", (els) => els.filter((el) => el.labels.length === 0 && !el.getAttribute("aria-label")).map((el) => el.outerHTML));
    assert.deepEqual(unlabelled, []);
    await page.locator("table.feed tbody tr button.customer").first().focus();
    await page.keyboard.press("Enter");
    await page.locator("#thread .bubble").first().waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.id), "thread-title", "focus moves to the thread");
    const unlabelledInThread = await page.$$eval("#thread input, #thread select, #thread textarea", (els) => els.filter((el) => el.labels.length === 0).length);
    assert.equal(unlabelledInThread, 0);
    await page.close();
  });
});

describe("what goes out later", () => {
  test("the day-before reminders are listed above the feed and in the customer's thread", async () => {
    const page = await open();
    await rows(page);
    const summary = page.locator("#waiting summary");
    await summary.waitFor();
    assert.equal(await summary.innerText(), "Going out later (5)");
    await summary.click();
    const items = await page.$$eval("#waiting li", (lis) => lis.map((li) => li.textContent));
    assert.equal(items.length, 5);
    assert.ok(items.every((text) => text.startsWith("Reminder to ") && text.includes("the day before the visit")), items.join("\n"));
    assert.ok(items.some((text) => text.includes("Dana Reyes")));
    await page.locator("table.feed tr", { hasText: "Marco Bianchi" }).first().locator("button.customer").click();
    const later = page.locator("#thread .thread-waiting");
    await later.waitFor();
    assert.match(await later.innerText(), /Going out later\s+Reminder · goes .+ \(the day before the visit\)/);
    await page.close();
  });
});

describe("the details", () => {
  test("a failure's status history names the provider's error, and its composer the reason up front", async () => {
    const page = await open("?thread=cus_lee");
    const failed = page.locator("#thread .bubble").first();
    await failed.waitFor();
    assert.match(await failed.locator(".status").innerText(), /Failed: not sms capable/);
    await failed.locator("summary").click();
    await failed.locator(".provider-error").waitFor();
    assert.match(await failed.locator(".provider-error").innerText(), /Provider error 21614: .+/);
    assert.match(await page.locator(".compose-blocked").innerText(), /landline/);
    assert.ok(await page.locator(".composer button[type=submit]").isDisabled());
    assert.match(await failed.locator("footer .refused").innerText(), /^Cannot resend: .*cannot receive SMS.*no email address/);
    await page.close();
  });

  test("a failed message is resent by a channel that reaches the customer, once, and the thread links the two", async () => {
    // Lee gives the business an email address; the failed confirmation can now go by email.
    system.event("acc_demo", "customer.updated", { customer: { id: "cus_lee", name: "Lee Park", phone: "+15005550009", email: "lee@example.com", notifications: { sms: true, email: true } } });
    const page = await open("?thread=cus_lee");
    const failed = page.locator("#thread .bubble").first();
    const resend = failed.locator("button.resend", { hasText: "Resend by Email" });
    for (let tries = 0; !(await resend.isVisible()); tries++) {
      assert.ok(tries < 30, "the thread never offered a resend by email");
      await new Promise((resume) => setTimeout(resume, 500));
      await page.reload();
      await failed.waitFor();
    }
    assert.equal(await failed.locator("button.resend").count(), 1, "no resend by the landline");
    await resend.dblclick();
    const again = page.locator("#thread .bubble", { hasText: "a resend of a failed message" });
    await again.waitFor();
    assert.match(await again.locator("header").innerText(), /^Email · Manual · /);
    assert.match(await again.locator(".subject").innerText(), /^A message from Ace Plumbing & Heating$/);
    assert.match(await again.locator(".body").innerText(), /^Ace Plumbing & Heating: Hi Lee, your .+ is confirmed for /);
    await failed.locator(".resent").waitFor();
    assert.equal(await page.locator("#thread .bubble", { hasText: "a resend of a failed message" }).count(), 1, "a double click resends once");
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  test("an on-my-way text a landline cannot take goes by email instead, and the thread links the two", async () => {
    // Lee has an email address now (the test before); his technician sets off.
    const lee = { id: "cus_lee", name: "Lee Park", phone: "+15005550009", email: "lee@example.com", notifications: { sms: true, email: true } };
    const starts = new Date(Date.now() + 20 * 60_000);
    const job = { id: "job_lee_omw", title: "Outlet repair", starts_at: starts.toISOString(), ends_at: new Date(starts.getTime() + 3_600_000).toISOString(), technician: { name: "Jo Rivera" }, address: "4 Oak Ave" };
    system.event("acc_demo", "job.en_route", { customer: lee, job });
    const page = await open("?thread=cus_lee");
    const email = page.locator("#thread .bubble", { hasText: "sent by email because the text could not be delivered" });
    for (let tries = 0; !(await email.isVisible()); tries++) {
      assert.ok(tries < 30, "the fallback email never showed in the thread");
      await new Promise((resume) => setTimeout(resume, 500));
      await page.reload();
      await page.locator("#thread .bubble").first().waitFor();
    }
    assert.match(await email.locator("header").innerText(), /^Email · On my way · /);
    assert.equal(await email.locator(".subject").innerText(), "Jo Rivera from Ace Plumbing & Heating is on the way");
    const text = page.locator("#thread .bubble", { hasText: "Sent by email instead" });
    assert.equal(await text.count(), 1);
    assert.match(await text.locator("header").innerText(), /^SMS · On my way · /);
    assert.match(await text.locator(".status").innerText(), /Failed: not sms capable/);
    assert.equal(await text.locator("button.resend").count(), 0, "nothing left to resend");
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  test("load more pages on by token, with no row twice and none skipped", async () => {
    for (let n = 0; n < 45; n++) await system.textIn("+15125550155", "+15125550100", `Question number ${n}`);
    const page = await open();
    await page.waitForFunction(() => document.querySelectorAll("table.feed tbody tr").length === 50);
    const more = page.locator("button.more");
    await more.waitFor();
    await more.click();
    await page.waitForFunction(() => document.querySelectorAll("table.feed tbody tr").length > 50);
    const ids = await page.$$eval("table.feed tbody tr", (trs) => trs.map((tr) => tr.dataset.messageId));
    assert.equal(new Set(ids).size, ids.length, "no row twice");
    const questions = await page.$$eval("table.feed tbody tr", (trs) => trs.filter((tr) => tr.innerText.includes("+15125550155")).length);
    assert.equal(questions, 45, "every text is listed once across the pages");
    await page.close();
  });
});

describe("a refusal the page could not foresee", () => {
  test("a customer who texts STOP while the composer is open gets nothing, and the page says why", async () => {
    const page = await open("?thread=cus_sam");
    await page.locator("#compose-text").waitFor();
    assert.ok(!(await page.locator(".composer button[type=submit]").isDisabled()), "reachable when the thread opened");
    await system.textIn("+17375550117", "+15125550100", "STOP");
    await page.locator("#thread .bubble.in", { hasText: "STOP" }).waitFor();
    const before = (await system.smsSent()).messages.length;
    await page.fill("#compose-text", "Your technician is 10 minutes away.");
    await page.click(".composer button[type=submit]");
    await page.locator(".compose-note.refused").waitFor();
    assert.match(await page.locator(".compose-note.refused").innerText(), /Not sent: opted_out: the customer replied STOP/);
    assert.equal((await system.smsSent()).messages.length, before, "nothing reached the provider");
    await page.close();
  });
});
