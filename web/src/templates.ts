//! The Templates screen: every automatic message type with its SMS and email template (the
//! built-in wording or the account's version), and the editor of the one chosen. Which one is
//! open lives in the URL (`?screen=templates&template=reminder.sms`).

import { Channel } from "./gen/messaging/v1/feed_pb.js";
import type { Template, TemplateVariable } from "./gen/messaging/v1/templates_pb.js";
import { explain, managesAccount, type Feed, type Templates } from "./api.js";
import { h, replace } from "./dom.js";
import { editor } from "./editor.js";
import { CHANNELS, TYPES, label, templateKey, versionText } from "./format.js";

export interface TemplatesScreen {
  templates: Templates;
  feed: Feed;
  /** Opens the template with this key ("" for the list), as a new history entry. */
  go(key: string): void;
  /** An error the page as a whole handles (an expired sign-in). */
  failed(error: unknown): void;
}

/** Shows the list, or the editor of the template `key`, in `box`. */
export async function showTemplates(box: HTMLElement, screen: TemplatesScreen, key: string): Promise<void> {
  replace(box, h("p", { class: "loading", role: "status" }, "Loading the templates…"));
  let listed: { templates: Template[]; variables: TemplateVariable[] };
  try {
    listed = await screen.templates.listTemplates({});
  } catch (error) {
    if (explain(error).signIn) return screen.failed(error);
    replace(box, h("p", { class: "error", role: "alert" }, explain(error).text));
    return;
  }
  const chosen = listed.templates.find((t) => templateKey(t.type, t.channel) === key);
  if (!chosen) {
    replace(box, list(listed.templates, screen));
    (box.querySelector("h2") as HTMLElement | null)?.focus();
    return;
  }
  const open = (template: Template, published = "") => {
    const view = editor({
      templates: screen.templates,
      feed: screen.feed,
      template,
      variables: listed.variables,
      canManage: managesAccount(),
      changed: (current) => open(current, current.builtIn ? "Reset: messages from now on use the built-in wording." : `Published version ${current.version}: messages from now on use it.`),
      back: () => screen.go(""),
    });
    replace(box, view);
    if (published) (view.querySelector("#template-note") as HTMLElement).textContent = published;
    (view.querySelector("h2") as HTMLElement).focus();
  };
  open(chosen);
}

function list(templates: Template[], screen: TemplatesScreen): HTMLElement {
  const cell = (type: number, channel: Channel) => {
    const t = templates.find((x) => x.type === type && x.channel === channel);
    if (!t) return h("td", { "data-column": label(CHANNELS, channel).toLowerCase() }, h("span", { class: "muted" }, "Not sent by this channel"));
    const key = templateKey(t.type, t.channel);
    return h(
      "td",
      { "data-column": label(CHANNELS, channel).toLowerCase() },
      h("a", { href: `?screen=templates&template=${key}`, "data-template": key, onclick: (e: Event) => { e.preventDefault(); screen.go(key); } }, versionText(t)),
    );
  };
  const types = TYPES.filter(([type]) => templates.some((t) => t.type === type));
  return h(
    "section",
    { class: "templates", "aria-labelledby": "templates-title" },
    h("h2", { id: "templates-title", tabindex: -1 }, "Automatic message templates"),
    h("p", {}, "The words of the messages sent for you when a job is booked, the day before, on the way, when it is done and when an invoice or a payment happens. Edit one to use your own; reset it to go back to the built-in wording."),
    h(
      "table",
      { class: "feed template-list" },
      h("thead", {}, h("tr", {}, h("th", {}, "Message"), h("th", {}, "SMS"), h("th", {}, "Email"))),
      h("tbody", {}, ...types.map(([type, text]) => h("tr", {}, h("th", { scope: "row" }, text), cell(type, Channel.SMS), cell(type, Channel.EMAIL)))),
    ),
  );
}
