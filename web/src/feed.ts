//! The feed: the filter bar, one row per message (newest first) and "Load more" by page token.

import type { Message } from "./gen/messaging/v1/feed_pb.js";
import { h, replace } from "./dom.js";
import { CHANNELS, DIRECTIONS, STATUSES, TYPES, customerText, label, messageTime, statusClass, statusKind, statusText, threadKey, time } from "./format.js";
import { key, type View } from "./filters.js";

export interface FeedHandlers {
  /** A filter or the search changed. */
  change(view: View): void;
  open(thread: string): void;
  more(): void;
  /** The thread open beside the feed, if any. */
  openThread(): string;
  /** Unread replies in a thread, from GetCounts. */
  unreadOf(thread: string): number;
}

function select(name: string, text: string, table: [unknown, string][], value: string, onChange: (v: string) => void): HTMLElement {
  const id = `filter-${name}`;
  const options = [h("option", { value: "" }, "Any"), ...table.map(([, t]) => h("option", { value: key(t), selected: key(t) === value }, t))];
  const control = h("select", { id, name, onchange: (e: Event) => onChange((e.target as HTMLSelectElement).value) }, ...options);
  return h("div", { class: "field" }, h("label", { for: id }, text), control);
}

function date(name: string, text: string, value: string, onChange: (v: string) => void): HTMLElement {
  const id = `filter-${name}`;
  const control = h("input", { id, name, type: "date", value, onchange: (e: Event) => onChange((e.target as HTMLInputElement).value) });
  return h("div", { class: "field" }, h("label", { for: id }, text), control);
}

/** The filter bar for `view`; each change reports the whole new view. */
export function filterBar(view: View, handlers: FeedHandlers): HTMLElement {
  const set = (field: keyof View) => (value: string) => handlers.change({ ...view, [field]: value });
  const search = h("input", {
    id: "filter-q",
    type: "search",
    name: "q",
    value: view.q,
    placeholder: "Name or phone, any format",
    autocomplete: "off",
  });
  const form = h(
    "form",
    {
      class: "search",
      role: "search",
      onsubmit: (e: Event) => {
        e.preventDefault();
        handlers.change({ ...view, q: search.value });
      },
    },
    h("label", { for: "filter-q" }, "Search customers"),
    search,
    h("button", { type: "submit" }, "Search"),
  );
  const clear = h("button", { type: "button", class: "link", onclick: () => handlers.change({ ...view, direction: "", channel: "", type: "", status: "", since: "", until: "", q: "" }) }, "Clear filters");
  return h(
    "div",
    { class: "filters" },
    form,
    h(
      "div",
      { class: "filter-row" },
      select("direction", "Direction", DIRECTIONS, view.direction, set("direction")),
      select("channel", "Channel", CHANNELS, view.channel, set("channel")),
      select("type", "Type", TYPES, view.type, set("type")),
      select("status", "Status", STATUSES, view.status, set("status")),
      date("since", "From", view.since, set("since")),
      date("until", "To", view.until, set("until")),
      clear,
    ),
  );
}

/** One feed row; the customer cell is the keyboard's way into the thread. */
export function row(m: Message, handlers: FeedHandlers): HTMLTableRowElement {
  const isOpen = handlers.openThread() === threadKey(m);
  const [name, address] = customerText(m);
  const thread = threadKey(m);
  const open = h(
    "button",
    { type: "button", class: "customer", "aria-label": `Open the thread with ${name} ${address}`, onclick: () => handlers.open(thread) },
    h("span", { class: "name" }, name),
    h("span", { class: "address" }, address),
  );
  const tr = h(
    "tr",
    {
      "data-message-id": m.messageId,
      "data-thread": thread,
      class: [statusKind(m), m.unread ? "unread" : "", isOpen ? "open" : ""].filter(Boolean).join(" "),
      "aria-current": isOpen && "true",
    },
    h("td", { "data-column": "direction" }, label(DIRECTIONS, m.direction)),
    h("td", { "data-column": "channel" }, label(CHANNELS, m.channel)),
    h("td", { "data-column": "customer" }, open),
    h("td", { "data-column": "type" }, label(TYPES, m.type)),
    h("td", { "data-column": "status" }, h("span", { class: statusClass(m) }, statusText(m)), m.unread && h("span", { class: "badge" }, `${Math.max(handlers.unreadOf(thread), 1)} new`)),
    h("td", { "data-column": "time" }, h("time", {}, time(messageTime(m)))),
  );
  tr.addEventListener("click", (e) => {
    if (!(e.target as Element).closest("button")) handlers.open(thread);
  });
  return tr;
}

/** The feed's table, or its empty state. */
export function table(messages: Message[], narrowedBy: boolean, more: boolean, handlers: FeedHandlers): HTMLElement {
  if (messages.length === 0) {
    return h(
      "p",
      { class: "empty", role: "status" },
      narrowedBy ? "No messages match these filters. Clear them to see the whole feed." : "No messages yet. They appear here as soon as one is sent or a customer writes in.",
    );
  }
  const body = h("tbody", {}, ...messages.map((m) => row(m, handlers)));
  const head = h("thead", {}, h("tr", {}, ...["Direction", "Channel", "Customer", "Type", "Status", "Time"].map((c) => h("th", { scope: "col" }, c))));
  return h(
    "div",
    {},
    h("table", { class: "feed" }, h("caption", { class: "visually-hidden" }, "Messages, newest first"), head, body),
    more && h("button", { type: "button", class: "more", onclick: () => handlers.more() }, "Load more"),
  );
}

/** Puts `m` in place of its row in `container`'s table, if it is shown; whether it was. */
export function update(container: Element, m: Message, handlers: FeedHandlers): boolean {
  const existing = container.querySelector(`tr[data-message-id="${CSS.escape(m.messageId)}"]`);
  if (!existing) return false;
  existing.replaceWith(row(m, handlers));
  return true;
}

/** Adds `m` at the top of `container`'s table (the newest message). */
export function prepend(container: Element, m: Message, handlers: FeedHandlers): void {
  const body = container.querySelector("tbody");
  if (body) body.prepend(row(m, handlers));
}

export function loading(container: Element): void {
  replace(container, h("p", { class: "loading", role: "status" }, "Loading messages…"));
}
