// The Templates screen in Chromium against the whole system: the list of automatic messages, the
// editor's variable chips, live preview (sample data and a real job of the account), problems
// inline, publishing that words the next texts the provider receives, reset, the HTML part in a
// sandbox, and a technician who can read but not change; and the banner an unregistered number
// raises.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { launchBrowser, startSystem } from "./system.mjs";

let system;
let browser;

before(async () => {
  system = await startSystem();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await system?.stop();
});

/** A page signed in with `token` (the demo owner's by default) at `query`. */
const open = (query, token = null) => system.open(browser, query, token);

const CONFIRMATION_SMS = "?screen=templates&template=appointment_confirmation.sms";

async function previewText(page, expected) {
  await page.waitForFunction((want) => document.querySelector("#template-preview")?.textContent?.includes(want), expected, { timeout: 10_000 });
  return page.locator("#template-preview").innerText();
}

describe("the templates screen", () => {
  test("lists every automatic message's templates, the built-in wording until the business words its own", async () => {
    const page = await open("");
    await page.click("nav.sections >> text=Templates");
    await page.waitForURL(/screen=templates/);
    await page.locator("table.template-list").waitFor();
    const rows = await page.$$eval("table.template-list tbody tr", (trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent.trim())));
    assert.deepEqual(
      rows.map((r) => r[0]),
      ["Appointment confirmation", "Reminder", "On my way", "Job completed", "Payment link", "Payment receipt"],
    );
    for (const row of rows) assert.equal(row[1], "Built-in wording", JSON.stringify(row));
    assert.equal(rows[2][2], "Not sent by this channel", "on-my-way goes by SMS only");
    assert.equal(await page.getAttribute("nav.sections >> text=Templates", "aria-current"), "page");
    await page.click("nav.sections >> text=Feed");
    await page.locator("table.feed tbody tr").first().waitFor();
    await page.goBack();
    await page.locator("table.template-list").waitFor();
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  test("the editor shows variables as chips, previews live, and marks problems under their part", async () => {
    const page = await open(CONFIRMATION_SMS);
    const body = page.locator("#template-sms_body");
    await body.waitFor();
    const builtIn = await body.inputValue();
    assert.match(builtIn, /\{\{ *business_name *\}\}/, "the built-in wording to start from");
    assert.ok((await page.locator(".chip-backdrop mark.chip").count()) >= 2);
    assert.equal(await page.locator(".chip-backdrop mark.chip.bad").count(), 0);
    const palette = await page.$$eval(".palette button", (bs) => bs.map((b) => b.textContent));
    assert.ok(palette.includes("job_window") && !palette.includes("invoice_number"), palette.join());

    await page.fill("#template-sms_body", "{{ business_name }}: {{ customer_first_name }}, see you {{ job_window }} at {{ job_address }}.");
    assert.equal(await previewText(page, "Dana, see you"), "Ace Plumbing: Dana, see you Sat, Nov 28 between 9:00 AM and 11:00 AM at 12 Elm St, Austin, TX 78701.");
    assert.match(await page.locator("#template-counter").innerText(), /^1 segment \(GSM-7\) with the sample data.*up to \d+ segments \(UCS-2\) with the longest values$/);
    assert.equal(await page.locator(".chip-backdrop mark.chip").count(), 4);

    // One of the account's own confirmations: its business, its address.
    await page.waitForFunction(() => document.querySelectorAll("#preview-with option").length > 1, null, { timeout: 60_000 }).catch(async () => {
      await page.reload();
      await page.waitForFunction(() => document.querySelectorAll("#preview-with option").length > 1);
    });
    const dana = await page.$eval("#preview-with", (s) => [...s.options].find((o) => o.text.startsWith("Dana Reyes"))?.value);
    assert.ok(dana, "a confirmation to Dana to preview with");
    await page.selectOption("#preview-with", dana);
    assert.match(await previewText(page, "Heating"), /^Ace Plumbing & Heating: Dana, see you .+ at 10 Elm St, Austin, TX\.$/);

    // A variable confirmations do not carry: a red chip, the problem under the field, no publishing.
    await page.fill("#template-sms_body", "Hi {{ customer_first_name }},\nyour invoice {{ invoice_number }}.");
    await page.locator("#template-sms_body-problems li").waitFor();
    assert.match(await page.locator("#template-sms_body-problems").innerText(), /^Line 2: .*invoice_number.*not available/);
    assert.equal(await page.locator(".chip-backdrop mark.chip.bad").count(), 1);
    assert.equal(await page.getAttribute("#template-sms_body", "aria-invalid"), "true");
    assert.ok(await page.locator("#template-publish").isDisabled());

    await page.fill("#template-sms_body", `{{ business_name }} ${"Thank you for your business. ".repeat(20)}`);
    await page.waitForFunction(() => document.querySelector("#template-sms_body-problems")?.textContent?.includes("segments"));
    await page.fill("#template-sms_body", "{% if %}");
    await page.locator("#template-sms_body-problems li").waitFor();

    // A chip goes in where the caret is.
    await page.fill("#template-sms_body", "Hi , see you soon.");
    await page.focus("#template-sms_body");
    await page.evaluate(() => document.querySelector("#template-sms_body").setSelectionRange(3, 3));
    await page.click(".palette >> text=customer_first_name");
    assert.equal(await body.inputValue(), "Hi {{ customer_first_name }}, see you soon.");
    await previewText(page, "Hi Dana, see you soon.");

    // Discard puts back the wording as published, and goes away with nothing left to discard.
    await page.click("#template-discard");
    assert.equal(await body.inputValue(), builtIn);
    assert.ok(await page.locator("#template-discard").isHidden());
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  test("publishing words the next texts the provider receives; another account keeps its own; reset brings the built-in wording back", async () => {
    const page = await open(CONFIRMATION_SMS);
    await page.locator("#template-sms_body").waitFor();
    assert.ok(await page.locator("#template-reset").isDisabled(), "nothing to reset yet");
    await page.fill("#template-sms_body", "{{ business_name }} has you down for {{ job_title }}, {{ job_window }}. Hi {{ customer_first_name }}!");
    await previewText(page, "has you down for");
    await page.locator("#template-publish:enabled").waitFor();
    await page.click("#template-publish");
    await page.waitForFunction(() => document.querySelector("#template-note")?.textContent?.startsWith("Published version 1"));
    assert.match(await page.locator("#template-version").innerText(), /^Version 1, published /);
    assert.ok(await page.locator("#template-publish").isDisabled(), "nothing new to publish");

    system.demo("acc_demo");
    let worded = [];
    for (let tries = 0; worded.length === 0; tries++) {
      const sent = (await system.smsSent()).messages;
      assert.ok(tries < 60, `the custom confirmation never reached the provider: ${JSON.stringify(sent.slice(-8).map((m) => m.body))}`);
      await new Promise((resume) => setTimeout(resume, 500));
      worded = sent.filter((m) => m.body.startsWith("Ace Plumbing & Heating has you down for"));
    }
    assert.match(worded[0].body, /^Ace Plumbing & Heating has you down for [A-Za-z -]+, \w{3}, \w{3} \d+ between .+\. Hi \w+!( Reply STOP to opt out\.)?$/, "the notice only on a number's first SMS");

    await page.click("text=← Templates");
    await page.locator("table.template-list").waitFor();
    assert.match(await page.locator('[data-template="appointment_confirmation.sms"]').innerText(), /^Version 1, published/);
    const other = await open("?screen=templates", system.token("acc_other"));
    await other.locator("table.template-list").waitFor();
    assert.equal(await other.locator('[data-template="appointment_confirmation.sms"]').innerText(), "Built-in wording", "another account");
    await other.close();

    await page.click('[data-template="appointment_confirmation.sms"]');
    await page.click("#template-reset");
    await page.click("#template-reset-confirm");
    await page.waitForFunction(() => document.querySelector("#template-note")?.textContent?.startsWith("Reset"));
    assert.match(await page.locator("#template-version").innerText(), /^Built-in wording \(reset /);
    assert.match(await page.locator("#template-sms_body").inputValue(), /\{\{ *business_name *\}\}/);
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  test("an email's subject stays one line and its HTML part is previewed in a sandbox where no script runs", async () => {
    const page = await open("?screen=templates&template=appointment_confirmation.email");
    await page.locator("#template-subject").waitFor();
    await page.fill("#template-subject", "");
    await page.type("#template-subject", "Booked: {{ job_title }}");
    await page.press("#template-subject", "Enter");
    await page.type("#template-subject", "!");
    assert.equal(await page.inputValue("#template-subject"), "Booked: {{ job_title }}!");
    await page.fill("#template-text", "Hi {{ customer_first_name }},\nsee you {{ job_date }}.");
    await page.fill("#template-html", '<p>Hi <b>{{ customer_first_name }}</b></p><script>parent.document.title = "taken"</script>');
    await previewText(page, "Booked: Water heater install!");
    const frame = page.frameLocator("iframe.html-preview");
    assert.equal(await frame.locator("b").innerText(), "Dana");
    assert.equal(await page.getAttribute("iframe.html-preview", "sandbox"), "");
    assert.equal(await page.title(), "Messages", "the preview's script never ran");
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  test("a technician reads templates but cannot change them", async () => {
    const page = await open(CONFIRMATION_SMS, system.token("acc_demo", 1, "technician", "tech_kim"));
    await page.locator("#template-sms_body").waitFor();
    assert.match(await page.locator(".readonly-note").innerText(), /can read templates/);
    assert.ok(await page.locator("#template-sms_body").getAttribute("readonly") !== null);
    assert.ok(await page.locator("#template-publish").isDisabled());
    assert.ok(await page.locator("#template-reset").isDisabled());
    await previewText(page, "Ace Plumbing");
    await page.close();
  });
});

test("a screenshot of the template editor", { skip: !process.env.SCREENSHOT_DIR }, async () => {
  const page = await open(CONFIRMATION_SMS);
  await page.locator("#template-sms_body").waitFor();
  await page.fill("#template-sms_body", "{{ business_name }}: Hi {{ customer_first_name }}, {{ technician_name }} will see you {{ job_window }}.\n{{ job_title }} at {{ job_address }} ({{ invoice_number }})");
  await page.locator("#template-sms_body-problems li").waitFor();
  await page.screenshot({ path: join(process.env.SCREENSHOT_DIR, "templates-editor.png") });
  await page.close();
});

describe("an account whose number is not registered to text", () => {
  test("the page says up front why texts are not going out", async () => {
    const page = await open("");
    await page.locator("table.feed tbody tr").first().waitFor();
    assert.ok(await page.locator("#banner").isHidden(), "no banner while texts go");
    const account = {
      name: "Ace Plumbing & Heating", timezone: "America/Chicago", sms_number: "+15125550100",
      email_from: "office@aceplumbing.example", quiet_hours: { start: "00:00", end: "00:00" },
      sms_registration: { status: "rejected", reason: "Brand details do not match the EIN" },
    };
    system.event("acc_demo", "account.updated", { account });
    for (let tries = 0; await page.locator("#banner").isHidden(); tries++) {
      assert.ok(tries < 30, "the banner never appeared");
      await new Promise((resume) => setTimeout(resume, 500));
      await page.reload();
      await page.locator("table.feed tbody tr").first().waitFor();
    }
    assert.match(await page.locator("#banner").innerText(), /^Texts are not being sent: .*registration is rejected \(Brand details do not match the EIN\).*emails still go\.$/);
    await page.close();
  });
});
