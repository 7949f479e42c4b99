//! A template's text as the editor shows it: plain text, variables (`{{ name | filter }}`) as
//! chips, and block tags (`{% if … %}`) marked apart; inserting a variable where the caret is.

export interface Token {
  text: string;
  /** A variable's name, for `{{ … }}`. */
  variable?: string;
  /** True for a `{% … %}` tag or a `{# … #}` comment. */
  tag?: boolean;
}

const DELIMITED = /\{\{[\s\S]*?\}\}|\{%[\s\S]*?%\}|\{#[\s\S]*?#\}/g;

/** `source` cut into text, variables and tags, in order; joined again they are `source`. */
export function tokens(source: string): Token[] {
  const out: Token[] = [];
  let last = 0;
  for (const match of source.matchAll(DELIMITED)) {
    const at = match.index ?? 0;
    if (at > last) out.push({ text: source.slice(last, at) });
    const text = match[0];
    if (text.startsWith("{{")) {
      const name = /^\{\{\s*([A-Za-z_][A-Za-z0-9_]*)/.exec(text)?.[1] ?? "";
      out.push({ text, variable: name });
    } else {
      out.push({ text, tag: true });
    }
    last = at + text.length;
  }
  if (last < source.length) out.push({ text: source.slice(last) });
  return out;
}

/** `value` with `{{ name }}` put in place of the selection `[start, end)`, and where the caret goes after it. */
export function insert(value: string, start: number, end: number, name: string): { value: string; caret: number } {
  const chip = `{{ ${name} }}`;
  return { value: value.slice(0, start) + chip + value.slice(end), caret: start + chip.length };
}
