//! A template field: a plain textarea over a backdrop that paints the same text with each variable
//! as a chip (red when the message type does not carry it) and each block tag marked, so the
//! business edits ordinary text and sees its variables. Problems the server finds show below it.

import { h, replace } from "./dom.js";
import { insert, tokens } from "./chips.js";

export interface ChipField {
  element: HTMLElement;
  input: HTMLTextAreaElement;
  /** Shows the server's problems for this part (none clears them). */
  problems(found: string[]): void;
  /** Puts `{{ name }}` where the caret is, as if typed. */
  insert(name: string): void;
}

export interface FieldSpec {
  /** The part's name in the API: sms_body, subject, text or html. */
  part: string;
  label: string;
  hint?: string;
  value: string;
  rows: number;
  /** A subject: Enter does not break the line. */
  oneLine?: boolean;
  readOnly: boolean;
}

export function chipField(spec: FieldSpec, known: Set<string>, changed: () => void): ChipField {
  const id = `template-${spec.part}`;
  const backdrop = h("div", { class: "chip-backdrop", "aria-hidden": "true" });
  const input = h("textarea", {
    id,
    name: spec.part,
    rows: spec.rows,
    spellcheck: spec.oneLine ? "false" : "true",
    readonly: spec.readOnly,
    "aria-describedby": `${id}-problems`,
    class: "chip-input",
  });
  input.value = spec.value;
  const list = h("ul", { class: "problems", id: `${id}-problems`, "aria-live": "polite" });
  const paint = () => {
    const shown = tokens(input.value).map((t) => {
      if (t.variable !== undefined) return h("mark", { class: known.has(t.variable) ? "chip" : "chip bad" }, t.text);
      if (t.tag) return h("mark", { class: "tag" }, t.text);
      return t.text;
    });
    // A trailing line break needs something after it to take up its line, as it does in the textarea.
    replace(backdrop, ...shown, input.value.endsWith("\n") ? " " : "");
    backdrop.scrollTop = input.scrollTop;
  };
  input.addEventListener("input", () => {
    paint();
    changed();
  });
  input.addEventListener("scroll", () => (backdrop.scrollTop = input.scrollTop));
  if (spec.oneLine) input.addEventListener("keydown", (e) => e.key === "Enter" && e.preventDefault());
  paint();
  const element = h(
    "div",
    { class: "field grow template-field" },
    h("label", { for: id }, spec.label),
    spec.hint && h("span", { class: "hint" }, spec.hint),
    h("div", { class: "chip-field" }, backdrop, input),
    list,
  );
  return {
    element,
    input,
    problems(found) {
      replace(list, ...found.map((text) => h("li", {}, text)));
      if (found.length > 0) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    },
    insert(name) {
      if (spec.readOnly) return;
      const put = insert(input.value, input.selectionStart, input.selectionEnd, name);
      input.value = put.value;
      input.focus();
      input.setSelectionRange(put.caret, put.caret);
      paint();
      changed();
    },
  };
}
