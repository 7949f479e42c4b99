//! One customer's thread: every message in both directions, oldest first, each with its whole text,
//! its status and (on request) its timeline and the provider's error, a failed one with a resend;
//! the composer below.

import { Channel, Direction, MessageStatus, type ChannelReach, type Customer, type GetMessageResponse, type Message } from "./gen/messaging/v1/feed_pb.js";
import type { Feed } from "./api.js";
import { explain } from "./api.js";
import { h, replace } from "./dom.js";
import { CHANNELS, STATUSES, TYPES, label, messageTime, statusClass, statusText, time } from "./format.js";
import { MAX_SMS_CHARS, count } from "./sms.js";

function details(feed: Feed, m: Message): HTMLElement {
  const body = h("div", { class: "timeline" });
  const toggle = h("details", {}, h("summary", {}, "Status history"), body);
  toggle.addEventListener("toggle", async () => {
    if (!toggle.open || body.childElementCount > 0) return;
    replace(body, h("p", { role: "status" }, "Loading…"));
    try {
      replace(body, timeline(await feed.getMessage({ messageId: m.messageId })));
    } catch (error) {
      replace(body, h("p", { class: "error", role: "alert" }, explain(error).text));
    }
  });
  return toggle;
}

function timeline(r: GetMessageResponse): HTMLElement {
  const items = r.timeline.map((e) =>
    h("li", {}, h("time", {}, time(e.occurredAt)), " ", h("strong", {}, label(STATUSES, e.status)), ` from ${e.source}`, e.detail && ` (${e.detail})`),
  );
  const error = r.providerErrorCode || r.providerErrorText;
  return h(
    "div",
    {},
    h("ol", {}, ...items),
    error && h("p", { class: "provider-error" }, `Provider error ${r.providerErrorCode}: ${r.providerErrorText}`),
  );
}

/** A failed message's way out: a button per channel that reaches the customer now, each with its
 * own request id kept across retries, so a double click resends once. */
function resender(feed: Feed, m: Message, reach: ChannelReach[], resent: () => void): HTMLElement | false {
  if (m.direction !== Direction.OUTBOUND || m.status !== MessageStatus.FAILED) return false;
  if (m.resentAs) return h("span", { class: "resent" }, m.fallback ? "Sent by email instead" : "Resent");
  const note = h("span", { class: "compose-note", role: "alert" });
  const reachable = reach.filter((r) => r.reachable);
  if (reachable.length === 0) return h("span", { class: "refused" }, `Cannot resend: ${reach.map((r) => r.detail).join("; ") || "the customer cannot be reached"}`);
  const buttons = reachable.map((r) => {
    const requestId = crypto.randomUUID();
    const button = h("button", { type: "button", class: "secondary resend", "data-channel": label(CHANNELS, r.channel) }, `Resend by ${label(CHANNELS, r.channel)}`);
    button.addEventListener("click", async () => {
      button.disabled = true;
      note.textContent = "Resending…";
      try {
        await feed.resendMessage({ requestId, messageId: m.messageId, channel: r.channel });
        note.textContent = "Resent.";
        resent();
      } catch (error) {
        note.textContent = `Not resent: ${explain(error).text}`;
        button.disabled = false;
      }
    });
    return button;
  });
  return h("span", { class: "resend-actions" }, ...buttons, note);
}

/** What a thread's bubbles need beyond the message: how the customer can be reached now, and what to do after a resend. */
export interface BubbleContext {
  reach: ChannelReach[];
  resent: () => void;
}

/** One message of the thread as a bubble: inbound on the left, outbound on the right; a failed one offers a resend. */
export function bubble(feed: Feed, m: Message, context?: BubbleContext): HTMLElement {
  const inbound = m.direction === Direction.INBOUND;
  return h(
    "article",
    { class: `bubble ${inbound ? "in" : "out"}`, "data-message-id": m.messageId, "aria-label": `${inbound ? "From" : "To"} the customer, ${time(messageTime(m))}` },
    h("header", {}, `${label(CHANNELS, m.channel)} · ${label(TYPES, m.type)} · `, h("time", {}, time(messageTime(m))), m.resentFrom && (m.fallback ? " · sent by email because the text could not be delivered" : " · a resend of a failed message")),
    m.subject && h("p", { class: "subject" }, m.subject),
    h("p", { class: "body" }, m.body || m.preview),
    h("footer", {}, h("span", { class: statusClass(m) }, statusText(m)), details(feed, m), context && resender(feed, m, context.reach, context.resent)),
  );
}

/** The thread's heading: who, and how to reach them. */
export function heading(customer: Customer | undefined, key: string, close: () => void): HTMLElement {
  const name = customer?.name || (customer?.customerId ? "Customer" : "Unknown sender");
  return h(
    "header",
    { class: "thread-head" },
    h("button", { type: "button", class: "back", onclick: close, "aria-label": "Back to the feed" }, "← Feed"),
    h("h2", { id: "thread-title" }, name),
    h("p", { class: "contact" }, [customer?.phone, customer?.email].filter(Boolean).join(" · ") || key),
  );
}

/** Why the customer cannot be written to on `channel` (the server's words), or nothing when they can. */
function unreachable(reach: ChannelReach[], channel: Channel): string {
  const found = reach.find((r) => r.channel === channel);
  if (!found) return "";
  return found.reachable ? "" : `Cannot send: ${found.detail} (${found.reason.replaceAll("_", " ")}).`;
}

/** Whom the composer writes to: a customer, or an unknown sender's number. */
export type Recipient = { customerId: string } | { sender: string };

/** The composer: SMS or email to this one customer (or an SMS back to an unknown number), with a
 * live counter and one request id per draft, so a double click or a retry never sends twice. */
export function composer(feed: Feed, to: Recipient, reach: ChannelReach[], sent: () => void): HTMLElement {
  let requestId = crypto.randomUUID();
  let channel = unreachable(reach, Channel.SMS) && !unreachable(reach, Channel.EMAIL) ? Channel.EMAIL : Channel.SMS;
  const text = h("textarea", { id: "compose-text", name: "text", rows: 4, required: true });
  const subject = h("input", { id: "compose-subject", name: "subject", type: "text", maxlength: 200 });
  const subjectField = h("div", { class: "field" }, h("label", { for: "compose-subject" }, "Subject"), subject);
  const counter = h("p", { class: "counter", id: "compose-counter", "aria-live": "polite" });
  const note = h("p", { class: "compose-note", role: "alert" });
  const blocked = h("p", { class: "compose-blocked refused" });
  const send = h("button", { type: "submit" }, "sender" in to ? "Text back" : "Send");
  const channelSelect = h(
    "select",
    { id: "compose-channel", name: "channel" },
    ...CHANNELS.map(([c, t]) => h("option", { value: String(c), selected: c === channel }, t)),
  );
  const refresh = () => {
    const why = unreachable(reach, channel);
    subjectField.hidden = channel !== Channel.EMAIL;
    text.disabled = why !== "";
    send.disabled = why !== "";
    blocked.textContent = why;
    blocked.hidden = why === "";
    if (channel === Channel.SMS) {
      const c = count(text.value);
      const chars = [...text.value].length;
      counter.textContent = `${chars}/${MAX_SMS_CHARS} characters · ${c.segments} segment${c.segments === 1 ? "" : "s"} (${c.encoding})`;
      counter.classList.toggle("over", chars > MAX_SMS_CHARS);
    } else {
      counter.textContent = "";
    }
  };
  channelSelect.addEventListener("change", () => {
    channel = Number(channelSelect.value) as Channel;
    requestId = crypto.randomUUID();
    refresh();
  });
  text.addEventListener("input", refresh);
  const submit = async () => {
    if ("sender" in to) {
      await feed.replyToSender({ requestId, sender: to.sender, text: text.value });
    } else {
      const subjectText = channel === Channel.EMAIL ? subject.value : "";
      await feed.sendMessage({ requestId, customerId: to.customerId, channel, text: text.value, subject: subjectText });
    }
  };
  const form = h(
    "form",
    {
      class: "composer",
      "aria-label": "sender" in to ? "Text this number back" : "Write to this customer",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        if (send.disabled) return;
        send.disabled = true;
        note.textContent = "Sending…";
        note.className = "compose-note";
        try {
          // The same request id until it succeeds: a double click or a retry never sends twice.
          await submit();
          requestId = crypto.randomUUID();
          text.value = "";
          subject.value = "";
          note.textContent = "Queued.";
          sent();
        } catch (error) {
          note.textContent = `Not sent: ${explain(error).text}`;
          note.className = "compose-note refused";
        } finally {
          refresh();
        }
      },
    },
    h("div", { class: "field" }, h("label", { for: "compose-channel" }, "Send by"), channelSelect),
    subjectField,
    h("div", { class: "field grow" }, h("label", { for: "compose-text" }, "Message"), text),
    counter,
    blocked,
    note,
    send,
  );
  refresh();
  return form;
}

/** Attaching an unknown sender's thread to a customer found by name or number. */
export function attacher(feed: Feed, sender: string, attached: (customerId: string) => void): HTMLElement {
  const query = h("input", { id: "attach-query", type: "search", name: "attach", autocomplete: "off", placeholder: "Name or phone" });
  const results = h("ul", { class: "attach-results", "aria-live": "polite" });
  const note = h("p", { class: "compose-note", role: "alert" });
  const find = async (e: Event) => {
    e.preventDefault();
    note.textContent = "";
    try {
      const page = await feed.listMessages({ query: query.value.trim(), pageSize: 100 });
      const customers = new Map<string, Customer>();
      for (const m of page.messages) if (m.customer?.customerId) customers.set(m.customer.customerId, m.customer);
      if (customers.size === 0) {
        replace(results, h("li", {}, "No customer matches."));
        return;
      }
      replace(results, ...[...customers.values()].map((c) => h("li", {}, h("button", { type: "button", class: "link", onclick: () => attach(c) }, `Attach to ${c.name}`), ` ${[c.phone, c.email].filter(Boolean).join(" · ")}`)));
    } catch (error) {
      note.textContent = explain(error).text;
    }
  };
  const attach = async (c: Customer) => {
    try {
      await feed.attachThread({ sender, customerId: c.customerId });
      attached(c.customerId);
    } catch (error) {
      note.textContent = `Not attached: ${explain(error).text}`;
    }
  };
  return h(
    "form",
    { class: "attach", "aria-label": "Attach this thread to a customer", onsubmit: find },
    h("label", { for: "attach-query" }, "Attach this thread to a customer"),
    h("div", { class: "search" }, query, h("button", { type: "submit" }, "Find")),
    results,
    note,
  );
}
