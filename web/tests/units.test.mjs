// The page's pure parts, bundled from src/ by esbuild and checked in Node: the SMS counter, the
// words for each status (unknowns said honestly), the filters a URL turns into, and a template's
// text cut into chips.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { build } from "esbuild";

let dir;
let sms;
let format;
let filters;
let chips;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "page-units-"));
  for (const name of ["sms", "format", "filters", "chips"]) {
    await build({ entryPoints: [`src/${name}.ts`], bundle: true, format: "esm", platform: "neutral", outfile: join(dir, `${name}.mjs`), logLevel: "warning" });
  }
  [sms, format, filters, chips] = await Promise.all(["sms", "format", "filters", "chips"].map((name) => import(join(dir, `${name}.mjs`))));
});

after(() => rmSync(dir, { recursive: true, force: true }));

test("the SMS counter counts as carriers do", () => {
  assert.deepEqual(sms.count("a".repeat(160)), { encoding: "GSM-7", units: 160, segments: 1 });
  assert.deepEqual(sms.count("a".repeat(161)), { encoding: "GSM-7", units: 161, segments: 2 });
  assert.deepEqual(sms.count("€".repeat(80)), { encoding: "GSM-7", units: 160, segments: 1 }, "extension characters count twice");
  assert.deepEqual(sms.count("€".repeat(81)).segments, 2);
  assert.deepEqual(sms.count("é".repeat(10)).encoding, "GSM-7");
  assert.deepEqual(sms.count("Running late — sorry"), { encoding: "UCS-2", units: 20, segments: 1 });
  assert.deepEqual(sms.count("😀".repeat(35)), { encoding: "UCS-2", units: 70, segments: 1 }, "an emoji is two UTF-16 units");
  assert.deepEqual(sms.count("😀".repeat(36)).segments, 2);
  assert.deepEqual(sms.count("").segments, 1);
});

test("each status reads honestly, unknowns included", () => {
  const { MessageStatus } = format;
  const message = (status, extra = {}) => ({ status, failureReason: "", deliveryUnknown: false, ...extra });
  assert.equal(format.statusText(message(MessageStatus.FAILED, { failureReason: "opted_out" })), "Failed: opted out");
  assert.equal(format.statusText(message(MessageStatus.FAILED, { failureReason: "invalid_number" })), "Failed: invalid number");
  assert.equal(format.statusText(message(MessageStatus.UNKNOWN)), "Unknown: the provider never confirmed the send");
  assert.equal(format.statusText(message(MessageStatus.SENT, { deliveryUnknown: true })), "Sent, delivery unknown");
  assert.equal(format.statusClass(message(MessageStatus.SENT, { deliveryUnknown: true })), "status unknown");
  assert.equal(format.statusClass(message(MessageStatus.FAILED)), "status failed");
  assert.equal(format.statusText(message(MessageStatus.DELIVERED)), "Delivered");
});

test("a URL's filters become one ListMessages request", () => {
  const view = filters.read("?channel=email&type=on_my_way&status=failed&direction=inbound&q=%20555-01%20&since=2026-12-01&until=2026-12-02");
  const request = filters.request(view);
  assert.deepEqual([request.channels, request.types, request.statuses, request.directions], [[2], [3], [4], [2]]);
  assert.equal(request.query, "555-01");
  const since = new Date(Number(request.since.seconds) * 1000);
  const until = new Date(Number(request.until.seconds) * 1000);
  assert.equal(until - since, 2 * 24 * 3600 * 1000, "until includes its whole day");
  assert.equal(filters.request(filters.read("?channel=fax")).channels.length, 0, "an unknown value filters nothing");
  assert.equal(filters.narrowed(filters.read("?thread=cus_1")), false, "an open thread is not a filter");
});

test("a template's text cuts into text, variable chips and tags, and joins back whole", () => {
  const source = "Hi {{customer_first_name | title}}!\n{% if job_window %}See you {{ job_window }}{% endif %}{# note #} {{ }}";
  const tokens = chips.tokens(source);
  assert.equal(tokens.map((t) => t.text).join(""), source);
  assert.deepEqual(
    tokens.filter((t) => t.variable !== undefined).map((t) => t.variable),
    ["customer_first_name", "job_window", ""],
  );
  assert.equal(tokens.filter((t) => t.tag).length, 3);
  assert.deepEqual(chips.tokens("no variables {{ unclosed"), [{ text: "no variables {{ unclosed" }]);
  assert.deepEqual(chips.insert("Hi , bye", 3, 3, "customer_first_name"), { value: "Hi {{ customer_first_name }}, bye", caret: 28 });
  assert.deepEqual(chips.insert("Hi NAME", 3, 7, "x"), { value: "Hi {{ x }}", caret: 10 });
});

test("templates are named and keyed as the page shows them", () => {
  const { MessageType, Channel } = { MessageType: { APPOINTMENT_CONFIRMATION: 1, ON_MY_WAY: 3 }, Channel: { SMS: 1, EMAIL: 2 } };
  assert.equal(format.templateKey(MessageType.APPOINTMENT_CONFIRMATION, Channel.SMS), "appointment_confirmation.sms");
  assert.equal(format.templateKey(MessageType.ON_MY_WAY, Channel.EMAIL), "on_my_way.email");
  assert.equal(format.templateTitle({ type: MessageType.ON_MY_WAY, channel: Channel.SMS }), "On my way · SMS");
  assert.equal(format.versionText({ builtIn: true, version: 0 }), "Built-in wording");
  assert.match(format.versionText({ builtIn: false, version: 3, publishedAt: { seconds: 1_800_000_000n, nanos: 0 } }), /^Version 3, published \w{3} \d+, /);
});
