//! The editor of one template: the variables the message type carries as chips to insert, the
//! parts with their variables shown as chips, a live preview (sample data or one of the account's
//! own messages of that type) with the SMS cost, the server's problems inline under their part,
//! and publish, discard and reset. Publishing keeps one request id per draft, so a retry or a
//! double click makes one version.

import { Channel, Direction, type Message } from "./gen/messaging/v1/feed_pb.js";
import type { PreviewTemplateResponse, Template, TemplateContent, TemplateVariable } from "./gen/messaging/v1/templates_pb.js";
import { explain, type Feed, type Templates } from "./api.js";
import { chipField, type ChipField, type FieldSpec } from "./chipfield.js";
import { h, replace } from "./dom.js";
import { customerText, messageTime, templateTitle, time, versionText } from "./format.js";

export interface EditorContext {
  templates: Templates;
  feed: Feed;
  /** The current version. */
  template: Template;
  variables: TemplateVariable[];
  canManage: boolean;
  /** A new version is current (published or reset). */
  changed(current: Template): void;
  back(): void;
}

type Parts = Pick<TemplateContent, "smsBody" | "subject" | "text" | "html">;

const PARTS: Record<string, keyof Parts> = { sms_body: "smsBody", subject: "subject", text: "text", html: "html" };

function specs(channel: Channel, c: Parts, readOnly: boolean): FieldSpec[] {
  if (channel === Channel.SMS) return [{ part: "sms_body", label: "SMS text", value: c.smsBody, rows: 6, readOnly }];
  return [
    { part: "subject", label: "Subject", value: c.subject, rows: 1, oneLine: true, readOnly },
    { part: "text", label: "Text", value: c.text, rows: 8, readOnly },
    { part: "html", label: "HTML (optional)", hint: "Left empty, the HTML part is made from the text.", value: c.html, rows: 6, readOnly },
  ];
}

/** The API's encoding names as carriers write them. */
function encoding(name: string): string {
  return name === "gsm7" ? "GSM-7" : name === "ucs2" ? "UCS-2" : name;
}

function segmentsText(n: number): string {
  return `${n} segment${n === 1 ? "" : "s"}`;
}

export function editor(ctx: EditorContext): HTMLElement {
  const { template } = ctx;
  const saved: Parts = { smsBody: "", subject: "", text: "", html: "", ...template.content };
  const carried = ctx.variables.filter((v) => v.types.includes(template.type));
  const known = new Set(carried.map((v) => v.name));
  const fields = new Map<string, ChipField>();
  let lastFocused: ChipField | undefined;
  let requestId = crypto.randomUUID();
  let resetId = crypto.randomUUID();
  let checkedOk = false;
  let sequence = 0;

  const publish = h("button", { type: "submit", id: "template-publish" }, "Publish");
  const discard = h("button", { type: "button", class: "link", id: "template-discard" }, "Discard changes");
  const reset = h("button", { type: "button", class: "secondary", id: "template-reset" }, "Reset to the built-in wording");
  const confirmBox = h("div", { class: "confirm", hidden: true, role: "group", "aria-label": "Confirm the reset" });
  const note = h("p", { class: "editor-note", id: "template-note", role: "status" });
  const previewWith = h("select", { id: "preview-with", name: "preview-with" }, h("option", { value: "" }, "Sample data"));
  const previewBody = h("div", { class: "preview-body", id: "template-preview", "aria-live": "polite" });
  const counter = h("p", { class: "counter", id: "template-counter" });
  const general = h("ul", { class: "problems", id: "template-problems" });

  const content = (): Parts => {
    const c: Parts = { smsBody: "", subject: "", text: "", html: "" };
    for (const [part, field] of fields) c[PARTS[part]] = field.input.value;
    return c;
  };
  const dirty = () => Object.entries(content()).some(([k, v]) => saved[k as keyof Parts] !== v);
  const refreshButtons = () => {
    publish.disabled = !ctx.canManage || !checkedOk || !dirty();
    discard.hidden = !dirty();
    reset.disabled = !ctx.canManage || template.builtIn;
  };

  const showPreview = (r: PreviewTemplateResponse) => {
    const byPart = new Map<string, string[]>();
    for (const p of r.problems) {
      const where = p.line > 0 ? `Line ${p.line}: ` : "";
      byPart.set(p.part, [...(byPart.get(p.part) ?? []), `${where}${p.message}`]);
    }
    for (const [part, field] of fields) field.problems(byPart.get(part) ?? []);
    replace(general, ...r.problems.filter((p) => !fields.has(p.part)).map((p) => h("li", {}, `${p.part}: ${p.message}`)));
    checkedOk = r.problems.length === 0;
    const cost = r.smsCost;
    counter.textContent = cost
      ? `${segmentsText(cost.segments)} (${encoding(cost.encoding)}) with the sample data and the opt-out notice a number's first SMS carries; up to ${segmentsText(cost.worstSegments)} (${encoding(cost.worstEncoding)}) with the longest values`
      : "";
    const shown = r.rendered;
    if (!shown) {
      replace(previewBody, h("p", { class: "muted" }, "Fix the problems marked in red to see the preview."));
    } else if (template.channel === Channel.SMS) {
      replace(previewBody, h("div", { class: "bubble out" }, h("p", { class: "body" }, shown.smsBody)));
    } else {
      const html = shown.html
        ? h("iframe", { class: "html-preview", title: "The HTML part", sandbox: "", srcdoc: shown.html })
        : h("p", { class: "muted" }, "The HTML part is made from the text.");
      replace(previewBody, h("p", { class: "subject" }, shown.subject), h("p", { class: "body" }, shown.text), html);
    }
    refreshButtons();
  };

  let timer: number | undefined;
  const check = () => {
    checkedOk = false;
    refreshButtons();
    clearTimeout(timer);
    timer = window.setTimeout(async () => {
      const mine = ++sequence;
      try {
        const r = await ctx.templates.previewTemplate({ type: template.type, channel: template.channel, content: content(), messageId: previewWith.value });
        if (mine === sequence) showPreview(r);
      } catch (error) {
        if (mine === sequence) replace(previewBody, h("p", { class: "error", role: "alert" }, explain(error).text));
      }
    }, 250);
  };
  const edited = () => {
    requestId = crypto.randomUUID();
    note.textContent = "";
    check();
  };

  for (const spec of specs(template.channel, saved, !ctx.canManage)) {
    const field = chipField(spec, known, edited);
    field.input.addEventListener("focus", () => (lastFocused = field));
    fields.set(spec.part, field);
  }
  const palette = h(
    "div",
    { class: "palette", role: "group", "aria-label": "Variables" },
    h("span", { class: "hint" }, "Insert a variable:"),
    ...carried.map((v) =>
      h("button", { type: "button", class: "chip-button", title: `${v.meaning} (for example: ${v.sample})`, disabled: !ctx.canManage, onclick: () => (lastFocused ?? [...fields.values()][0])?.insert(v.name) }, v.name),
    ),
  );

  discard.addEventListener("click", () => {
    for (const [part, field] of fields) field.input.value = saved[PARTS[part]];
    for (const field of fields.values()) field.input.dispatchEvent(new Event("input"));
  });
  reset.addEventListener("click", () => {
    confirmBox.hidden = false;
    (confirmBox.querySelector("button") as HTMLButtonElement).focus();
  });
  replace(
    confirmBox,
    h("span", {}, "Messages from now on use the built-in wording. Your versions stay in the history. "),
    h("button", { type: "button", id: "template-reset-confirm", onclick: () => void resetNow() }, "Reset"),
    h("button", { type: "button", class: "link", onclick: () => (confirmBox.hidden = true) }, "Cancel"),
  );
  const resetNow = async () => {
    note.textContent = "Resetting…";
    try {
      const r = await ctx.templates.resetTemplate({ type: template.type, channel: template.channel, requestId: resetId });
      if (r.template) ctx.changed(r.template);
    } catch (error) {
      note.textContent = `Not reset: ${explain(error).text}`;
    }
  };
  const form = h(
    "form",
    {
      class: "template-form",
      "aria-label": "Template",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        if (publish.disabled) return;
        publish.disabled = true;
        note.textContent = "Publishing…";
        try {
          // The same request id until the content changes: a retry publishes once.
          const r = await ctx.templates.publishTemplate({ type: template.type, channel: template.channel, content: content(), requestId });
          if (r.template) ctx.changed(r.template);
        } catch (error) {
          note.textContent = `Not published: ${explain(error).text}`;
          refreshButtons();
        }
      },
    },
    palette,
    ...[...fields.values()].map((f) => f.element),
    general,
    !ctx.canManage && h("p", { class: "readonly-note" }, "Your sign-in can read templates; an owner or office manager changes them."),
    h("div", { class: "actions" }, publish, discard, reset),
    confirmBox,
    note,
  );
  previewWith.addEventListener("change", check);
  void recentMessages(ctx, previewWith);
  refreshButtons();
  check();
  return h(
    "section",
    { class: "editor", "aria-labelledby": "editor-title" },
    h(
      "header",
      { class: "editor-head" },
      h("button", { type: "button", class: "back", onclick: ctx.back }, "← Templates"),
      h("h2", { id: "editor-title" }, templateTitle(template)),
      h("p", { class: "version", id: "template-version" }, versionText(template)),
    ),
    h(
      "div",
      { class: "editor-grid" },
      form,
      h(
        "aside",
        { class: "preview", "aria-label": "Preview" },
        h("h3", {}, "Preview"),
        h("div", { class: "field" }, h("label", { for: "preview-with" }, "Preview with"), previewWith),
        previewBody,
        counter,
      ),
    ),
  );
}

/** The account's latest messages of the template's type and channel, to preview with. */
async function recentMessages(ctx: EditorContext, select: HTMLSelectElement): Promise<void> {
  const { type, channel } = ctx.template;
  try {
    const page = await ctx.feed.listMessages({ types: [type], channels: [channel], directions: [Direction.OUTBOUND], pageSize: 10 });
    const option = (m: Message) => h("option", { value: m.messageId }, `${customerText(m)[0]} · ${time(messageTime(m))}`);
    select.append(...page.messages.map(option));
  } catch {
    // Sample data still works; the list of real jobs is a convenience.
  }
}
