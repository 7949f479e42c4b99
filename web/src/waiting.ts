//! What will go out later (reminders scheduled, messages held by quiet hours), so the owner is
//! never surprised by what goes out: a list above the feed and a note at the end of a thread.

import type { WaitingMessage } from "./gen/messaging/v1/feed_pb.js";
import { h } from "./dom.js";
import { TYPES, label, time } from "./format.js";

function why(w: WaitingMessage): string {
  return w.reason === "quiet_hours" ? "held until quiet hours end" : "the day before the visit";
}

function item(w: WaitingMessage, withCustomer: boolean): HTMLElement {
  const who = withCustomer && w.customer?.name ? ` to ${w.customer.name}` : "";
  return h("li", { "data-key": w.key }, h("strong", {}, label(TYPES, w.type)), `${who} · goes `, h("time", {}, time(w.dueAt)), ` (${why(w)})`);
}

/** The account's waiting messages above the feed; nothing when none wait. */
export function upcoming(waiting: WaitingMessage[]): HTMLElement | null {
  if (waiting.length === 0) return null;
  return h(
    "details",
    { class: "waiting", id: "waiting" },
    h("summary", {}, `Going out later (${waiting.length})`),
    h("ul", {}, ...waiting.map((w) => item(w, true))),
  );
}

/** A thread's waiting messages, after its last message. */
export function pending(waiting: WaitingMessage[]): HTMLElement | null {
  if (waiting.length === 0) return null;
  return h("section", { class: "waiting thread-waiting", "aria-label": "Going out later" }, h("h3", {}, "Going out later"), h("ul", {}, ...waiting.map((w) => item(w, false))));
}
