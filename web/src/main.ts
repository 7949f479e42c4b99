//! The Messages page: sign-in, the feed with its filters, a thread beside it, the unread badge, and
//! live updates from WatchFeed (resumed from its cursor whenever the connection drops); and the
//! Templates screen (`?screen=templates`), where the business words its automatic messages.

import { Code, ConnectError } from "@connectrpc/connect";
import { MessageType, type ChannelReach, type Message } from "./gen/messaging/v1/feed_pb.js";
import { adoptTokenFromFragment, explain, feedClient, signIn, signOut, templateClient, token } from "./api.js";
import { h, replace } from "./dom.js";
import { filterBar, loading, prepend, table, update, type FeedHandlers } from "./feed.js";
import { narrowed, read, request, write, type View } from "./filters.js";
import { registrationNotice, threadKey } from "./format.js";
import { attacher, bubble, composer, heading } from "./thread.js";
import { showTemplates, type TemplatesScreen } from "./templates.js";
import { pending, upcoming } from "./waiting.js";

const feed = feedClient();
const root = document.getElementById("app") as HTMLElement;

let view: View = read();
let messages: Message[] = [];
let nextPage = "";
let unread = new Map<string, number>();
let watching: AbortController | null = null;

const badge = h("span", { class: "unread-total", id: "unread-total", "aria-live": "polite", hidden: true });
const filtersBox = h("div", { id: "filters" });
const list = h("section", { id: "feed", "aria-label": "Feed" });
const upcomingBox = h("div", { id: "upcoming" });
const notice = h("div", { id: "notice" });
const banner = h("div", { id: "banner", role: "status", hidden: true });
const threadBox = h("section", { id: "thread", "aria-labelledby": "thread-title", hidden: true });
const threadMessages = h("div", { class: "messages", "aria-live": "polite" });
const templatesBox = h("main", { id: "templates", class: "templates-screen" });
/** The screen last started, to tell a history step between screens from one within a screen. */
let wasTemplates = false;

/** Whether the URL asks for the Templates screen, and which template it opens ("" for the list). */
function onTemplates(): boolean {
  return new URLSearchParams(location.search).get("screen") === "templates";
}
function openTemplate(): string {
  return new URLSearchParams(location.search).get("template") ?? "";
}

const templatesScreen: TemplatesScreen = {
  templates: templateClient(),
  feed,
  go(key) {
    history.pushState(null, "", `${location.pathname}?screen=templates${key ? `&template=${encodeURIComponent(key)}` : ""}`);
    void showTemplates(templatesBox, templatesScreen, key);
  },
  failed: (error) => failed(error),
};

const handlers: FeedHandlers = {
  change(next) {
    view = { ...next, thread: view.thread };
    write(view);
    showFeed();
  },
  open(thread) {
    view = { ...view, thread };
    write(view);
    renderList();
    void showThread();
  },
  async more() {
    try {
      const page = await feed.listMessages(request(view, nextPage));
      messages = messages.concat(page.messages);
      nextPage = page.nextPageToken;
      renderList();
    } catch (error) {
      failed(error);
    }
  },
  unreadOf: (thread) => unread.get(thread) ?? 0,
  openThread: () => view.thread,
};

function failed(error: unknown): void {
  const { text, signIn: again } = explain(error);
  if (again) {
    signOut();
    showSignIn(text);
    return;
  }
  replace(notice, h("div", { class: "error", role: "alert" }, h("p", {}, text), h("button", { type: "button", onclick: () => start() }, "Try again")));
}

function showSignIn(why = ""): void {
  watching?.abort();
  const input = h("textarea", { id: "token", name: "token", rows: 4, required: true, spellcheck: false, autocomplete: "off" });
  const form = h(
    "form",
    {
      class: "sign-in",
      onsubmit: (e: Event) => {
        e.preventDefault();
        signIn(input.value);
        start();
      },
    },
    h("h1", {}, "Messages"),
    why && h("p", { class: "error", role: "alert" }, why),
    h("p", {}, "Sign in with your dashboard token. On a development machine, ", h("code", {}, "make token ACCOUNT=acc_demo"), " prints one."),
    h("label", { for: "token" }, "Access token"),
    input,
    h("button", { type: "submit" }, "Sign in"),
  );
  replace(root, form);
  input.focus();
}

/** The header's link to one screen; following it keeps the page and starts that screen. */
function section(text: string, href: string, current: boolean): HTMLElement {
  const go = (e: Event) => {
    e.preventDefault();
    history.pushState(null, "", href);
    view = read();
    start();
  };
  return h("a", { href, onclick: go, "aria-current": current ? "page" : undefined }, text);
}

function shell(): void {
  const out = h("button", { type: "button", class: "link", onclick: () => { signOut(); showSignIn(); } }, "Sign out");
  const templates = onTemplates();
  const sections = h("nav", { class: "sections", "aria-label": "Sections" }, section("Feed", location.pathname, !templates), section("Templates", "?screen=templates", templates));
  replace(
    root,
    h("header", { class: "top" }, h("h1", {}, "Messages"), badge, sections, out),
    banner,
    notice,
    templates ? templatesBox : h("main", { class: "layout" }, h("div", { class: "feed-column" }, upcomingBox, filtersBox, list), threadBox),
  );
}

function renderList(): void {
  replace(list, table(messages, narrowed(view), nextPage !== "", handlers));
  // How long the page took from navigation to its first rows (the browser tests report it).
  if (messages.length > 0 && performance.getEntriesByName("first-rows").length === 0) performance.mark("first-rows");
}

async function showFeed(): Promise<void> {
  replace(filtersBox, filterBar(view, handlers));
  replace(notice);
  loading(list);
  try {
    const page = await feed.listMessages(request(view));
    messages = page.messages;
    nextPage = page.nextPageToken;
    renderList();
  } catch (error) {
    replace(list);
    failed(error);
  }
}

/** Says up front when the account's texts cannot go out (its number's A2P 10DLC registration). */
async function refreshBanner(): Promise<void> {
  try {
    const registration = (await feed.getAccount({})).smsRegistration;
    const blocked = registration !== undefined && !registration.sendsSms;
    banner.hidden = !blocked;
    if (blocked) replace(banner, registrationNotice(registration.status, registration.reason));
  } catch {
    // The feed itself reports a connection problem; the banner only adds to it.
  }
}

async function refreshWaiting(): Promise<void> {
  try {
    replace(upcomingBox, upcoming((await feed.listWaiting({})).waiting));
  } catch (error) {
    failed(error);
  }
}

async function refreshCounts(): Promise<void> {
  try {
    const counts = await feed.getCounts({});
    unread = new Map(counts.threads.map((t) => [t.customerId || t.sender, Number(t.unread)]));
    badge.textContent = counts.unreadTotal > 0n ? `${counts.unreadTotal} unread` : "";
    badge.hidden = counts.unreadTotal === 0n;
    badge.dataset.count = String(counts.unreadTotal);
    renderList();
  } catch (error) {
    failed(error);
  }
}

function closeThread(): void {
  view = { ...view, thread: "" };
  write(view);
  renderList();
  threadBox.hidden = true;
  document.body.classList.remove("reading");
}

/** One thread, oldest first (its latest 200 messages). */
function getThread(key: string) {
  return feed.getThread({ customerId: key, oldestFirst: true, pageSize: 200 });
}

/** How the open thread's customer can be reached now (from GetThread), for its resend buttons. */
let threadReach: ChannelReach[] = [];

/** Shows `shown` in the open thread, scrolled to the newest. */
function showMessages(shown: Message[]): void {
  const context = { reach: threadReach, resent: () => reloadThread() };
  replace(threadMessages, ...shown.map((m) => bubble(feed, m, context)));
  threadMessages.lastElementChild?.scrollIntoView({ block: "end" });
}

/** Opening a thread reads it: its replies are marked read, in the feed's rows and the counts too. */
async function markShownRead(key: string, shown: Message[]): Promise<void> {
  if (!shown.some((m) => m.unread)) return;
  await feed.markRead({ customerId: key });
  messages = messages.map((m) => (threadKey(m) === key && m.unread ? { ...m, unread: false } : m));
  await refreshCounts();
}

async function showThread(): Promise<void> {
  const key = view.thread;
  if (!key) return closeThread();
  threadBox.hidden = false;
  document.body.classList.add("reading");
  replace(threadBox, h("p", { class: "loading", role: "status" }, "Loading the thread…"));
  try {
    const thread = await getThread(key);
    threadReach = thread.reach;
    const customerId = thread.customer?.customerId ?? "";
    const later = customerId ? (await feed.listWaiting({ customerId })).waiting : [];
    const title = heading(thread.customer, key, closeThread);
    replace(
      threadBox,
      title,
      threadMessages,
      pending(later),
      composer(feed, customerId ? { customerId } : { sender: key }, thread.reach, () => reloadThread()),
      !customerId && attacher(feed, key, (attachedTo) => handlers.open(attachedTo)),
    );
    showMessages(thread.messages);
    const h2 = title.querySelector("h2") as HTMLElement;
    h2.tabIndex = -1;
    h2.focus();
    await markShownRead(key, thread.messages);
  } catch (error) {
    const { text, signIn: again } = explain(error);
    if (again) return failed(error);
    replace(threadBox, heading(undefined, key, closeThread), h("p", { class: "error", role: "alert" }, text));
  }
}

let threadTimer: number | undefined;
function reloadThread(): void {
  clearTimeout(threadTimer);
  threadTimer = window.setTimeout(async () => {
    const key = view.thread;
    if (!key) return;
    try {
      const thread = await getThread(key);
      threadReach = thread.reach;
      showMessages(thread.messages);
      await markShownRead(key, thread.messages);
    } catch (error) {
      failed(error);
    }
  }, 150);
}

let countsTimer: number | undefined;
let waitingTimer: number | undefined;
function changed(m: Message): void {
  const at = messages.findIndex((x) => x.messageId === m.messageId);
  if (at >= 0) {
    messages[at] = m;
    update(list, m, handlers);
  } else if (!narrowed(view)) {
    messages.unshift(m);
    if (messages.length === 1) renderList();
    else prepend(list, m, handlers);
  } else {
    replace(notice, h("div", { class: "info", role: "status" }, "New messages arrived. ", h("button", { type: "button", onclick: () => showFeed() }, "Show them")));
  }
  if (view.thread && threadKey(m) === view.thread) reloadThread();
  if (m.type === MessageType.REMINDER || at < 0) {
    clearTimeout(waitingTimer);
    waitingTimer = window.setTimeout(refreshWaiting, 300);
  }
  if (m.unread) {
    clearTimeout(countsTimer);
    countsTimer = window.setTimeout(refreshCounts, 150);
  }
}

/** Follows WatchFeed from now, resuming from the last cursor after a drop, until signed out. */
async function watch(signal: AbortSignal): Promise<void> {
  let cursor = "";
  let backoff = 500;
  while (!signal.aborted) {
    try {
      for await (const r of feed.watchFeed({ cursor }, { signal })) {
        cursor = r.cursor;
        backoff = 500;
        if (r.message) changed(r.message);
      }
    } catch (error) {
      if (signal.aborted) return;
      const code = ConnectError.from(error).code;
      if (code === Code.Unauthenticated) return failed(error);
      if (code === Code.FailedPrecondition) {
        // The cursor outlived its retention: what changed meanwhile is in a fresh listing.
        cursor = "";
        void showFeed();
      }
    }
    await new Promise((resume) => setTimeout(resume, backoff));
    backoff = Math.min(backoff * 2, 10_000);
  }
}

function start(): void {
  if (!token()) return showSignIn();
  watching?.abort();
  shell();
  replace(notice);
  wasTemplates = onTemplates();
  if (wasTemplates) {
    document.body.classList.remove("reading");
    void showTemplates(templatesBox, templatesScreen, openTemplate());
    return;
  }
  watching = new AbortController();
  void watch(watching.signal);
  void refreshBanner();
  void showFeed().then(refreshCounts);
  void refreshWaiting();
  if (view.thread) void showThread();
}

window.addEventListener("popstate", () => {
  const templates = onTemplates();
  if (templates !== wasTemplates) {
    wasTemplates = templates;
    view = read();
    return start();
  }
  if (templates) return void showTemplates(templatesBox, templatesScreen, openTemplate());
  const before = view;
  view = read();
  if (["direction", "channel", "type", "status", "since", "until", "q"].some((k) => before[k as keyof View] !== view[k as keyof View])) void showFeed();
  if (view.thread !== before.thread) void (view.thread ? showThread() : closeThread());
});

adoptTokenFromFragment();
start();
