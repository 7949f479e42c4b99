//! The part of Jinja a template may use, checked before the engine sees it: `{{ variable }}` with
//! a few text filters, `{% if variable %}` / `{% elif %}` / `{% else %}` / `{% endif %}` (with
//! `not`), and `{# comments #}`. Nothing else — no `set`, loops, calls, operators or literals — so
//! what a template outputs is bounded by its own length times the longest value: the engine's
//! fuel counts instructions, and one `~` or `*` can allocate without bound in a single one.

use crate::{Problem, catalogue};

/// The filters a template may apply to a value.
pub const FILTERS: &[&str] = &["upper", "lower", "capitalize", "title", "trim"];

/// Every variable `source` names, in order of first use (unknown ones included), or the
/// problems with its syntax, each with its line.
pub fn check(source: &str) -> Result<Vec<String>, Vec<Problem>> {
    let mut names: Vec<String> = Vec::new();
    let mut problems = Vec::new();
    let mut depth = 0usize;
    let mut rest = source;
    let mut offset = 0;
    while let Some(start) = rest.find(['{']) {
        let after = &rest[start..];
        let (close, is_tag) = match after.get(..2) {
            Some("{{") => ("}}", false),
            Some("{%") => ("%}", true),
            Some("{#") => ("#}", false),
            _ => {
                offset += start + 1;
                rest = &rest[start + 1..];
                continue;
            }
        };
        let line = line_of(source, offset + start);
        let Some(end) = after[2..].find(close) else {
            problems.push(Problem::at(line, format!("`{}` is never closed with `{close}`", &after[..2])));
            break;
        };
        let inner = &after[2..2 + end];
        if after.starts_with("{{") {
            match expression(inner) {
                Ok(name) => names.push(name),
                Err(message) => problems.push(Problem::at(line, message)),
            }
        } else if is_tag {
            match statement(inner, &mut depth) {
                Ok(Some(name)) => names.push(name),
                Ok(None) => {}
                Err(message) => problems.push(Problem::at(line, message)),
            }
        }
        let consumed = start + 2 + end + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    if depth > 0 && problems.is_empty() {
        problems.push(Problem::at(line_of(source, source.len()), "an `{% if %}` is never closed with `{% endif %}`"));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|name| seen.insert(name.clone()));
    Ok(names)
}

/// The 1-based line of byte `at` in `source`.
pub fn line_of(source: &str, at: usize) -> usize {
    source[..at.min(source.len())].matches('\n').count() + 1
}

/// `inner` without Jinja's whitespace-control markers and spaces.
fn trimmed(inner: &str) -> &str {
    inner.trim().trim_start_matches(['-', '+']).trim_end_matches(['-', '+']).trim()
}

/// `variable` or `variable | filter | …`: the variable's name.
fn expression(inner: &str) -> Result<String, String> {
    let mut parts = trimmed(inner).split('|').map(str::trim);
    let name = identifier(parts.next().unwrap_or(""))?;
    for filter in parts {
        if !FILTERS.contains(&filter) {
            return Err(format!(
                "`{filter}` is not a filter templates may use (only {}); write `{{{{ {name} }}}}` or add a filter from the list",
                FILTERS.join(", ")
            ));
        }
    }
    Ok(name)
}

/// `if`/`elif` with a variable (or `not` one), `else` or `endif`: the variable tested, if any.
fn statement(inner: &str, depth: &mut usize) -> Result<Option<String>, String> {
    let body = trimmed(inner);
    let (keyword, condition) = body.split_once(char::is_whitespace).unwrap_or((body, ""));
    match keyword {
        "if" | "elif" => {
            if keyword == "if" {
                *depth += 1;
            } else if *depth == 0 {
                return Err("`{% elif %}` outside an `{% if %}`".into());
            }
            let condition = condition.trim();
            let tested = condition.strip_prefix("not ").map(str::trim).unwrap_or(condition);
            identifier(tested).map(Some).map_err(|error| format!("`{{% {keyword} %}}` tests one variable: {error}"))
        }
        "else" if condition.is_empty() && *depth > 0 => Ok(None),
        "endif" if condition.is_empty() => match depth.checked_sub(1) {
            Some(less) => {
                *depth = less;
                Ok(None)
            }
            None => Err("`{% endif %}` without an `{% if %}`".into()),
        },
        "else" => Err("`{% else %}` outside an `{% if %}`".into()),
        other => Err(format!(
            "`{{% {other} %}}` is not allowed; templates use `{{% if %}}`, `{{% elif %}}`, `{{% else %}}` and `{{% endif %}}` only"
        )),
    }
}

/// A variable name: lowercase letters, digits and underscores, from the catalogue or not.
fn identifier(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !text.starts_with(|c: char| c.is_ascii_digit());
    if valid {
        return Ok(text.to_owned());
    }
    let known: Vec<&str> = catalogue::CATALOGUE.iter().map(|v| v.name).take(4).collect();
    Err(format!("`{text}` is not a variable name (names look like {}, …)", known.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(source: &str) -> Vec<(usize, String)> {
        check(source).err().unwrap_or_default().into_iter().map(|p| (p.line, p.message)).collect()
    }

    #[test]
    fn variables_filters_conditions_and_comments_pass_and_name_their_variables() {
        let source = "{# hello #}Hi {{ customer_first_name | title }}!\n{%- if technician_name %} {{technician_name}} is coming.{% elif job_address -%}\n{{ job_address }}{% else %}See you{% endif %}";
        assert_eq!(
            check(source).ok(),
            Some(vec!["customer_first_name".into(), "technician_name".into(), "job_address".into()])
        );
        assert_eq!(check("no variables at all, {not a tag}").ok(), Some(vec![]));
        assert_eq!(check("{% if not receipt_link %}none{% endif %}").ok(), Some(vec!["receipt_link".into()]));
    }

    #[test]
    fn anything_beyond_the_subset_is_refused_at_its_line() {
        for (source, line, says) in [
            ("Hi\n{{ name ~ name }}", 2, "not a variable name"),
            ("{{ 'x' * 100000000 }}", 1, "not a variable name"),
            ("{{ name | replace('a', 'b') }}", 1, "not a filter"),
            ("{% set x = 1 %}", 1, "not allowed"),
            ("a\nb\n{% for c in name %}{% endfor %}", 3, "not allowed"),
            ("{% include 'other' %}", 1, "not allowed"),
            ("{{ range(10) }}", 1, "not a variable name"),
            ("{% if a == b %}x{% endif %}", 1, "tests one variable"),
            ("{% endif %}", 1, "without an"),
            ("{% else %}", 1, "outside an"),
            ("{{ name", 1, "never closed"),
            ("{% if name %}open", 1, "never closed"),
        ] {
            let found = messages(source);
            assert!(found.iter().any(|(l, m)| *l == line && m.contains(says)), "{source:?}: {found:?}");
        }
    }
}
