//! Rendering: minijinja's core with no loader (a template can name no other), no globals or
//! functions, five text filters, undefined variables an error, bounded fuel and output, and HTML
//! escaping of every value in the HTML part. Values are data: whatever a customer's name holds,
//! it is output as text, never read as template source.

use std::collections::BTreeMap;

use messaging_domain::MessageType;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};

use crate::{Part, Problem, catalogue, syntax};

/// A message's values, by variable name.
pub type Values = BTreeMap<&'static str, String>;

/// Instructions one render may run: far more than the largest template allowed needs.
const FUEL: u64 = 50_000;

/// The sample values of every variable a message of type `kind` carries.
pub fn sample_values(kind: MessageType) -> Values {
    catalogue::carried_by(kind).map(|v| (v.name, v.sample.to_owned())).collect()
}

/// The longest values the event contract allows for every variable `kind` carries.
pub fn worst_values(kind: MessageType) -> Values {
    catalogue::carried_by(kind).map(|v| (v.name, v.worst())).collect()
}

/// Renders `source` as `part` with `values`: the problem, at its line, when it uses anything
/// beyond the subset ([`syntax`]), names a value `values` lacks, or outputs more than the part's limit.
pub fn render(part: Part, source: &str, values: &Values) -> Result<String, Problem> {
    let output = render_unbounded(part, source, values)?;
    let length = output.chars().count();
    if length > part.limit() {
        return Err(Problem::at(
            0,
            format!("renders {length} characters; a {} holds at most {}", part.as_str(), part.limit()),
        ));
    }
    Ok(output)
}

/// [`render`] without the output limit: what the longest values make, to report its cost. Its
/// output is still bounded: the subset outputs at most its source plus one value per tag.
pub(crate) fn render_unbounded(part: Part, source: &str, values: &Values) -> Result<String, Problem> {
    for name in syntax::check(source).map_err(|mut problems| problems.remove(0))? {
        if !values.contains_key(name.as_str()) {
            let line = syntax::line_of(source, source.find(name.as_str()).unwrap_or(0));
            return Err(Problem::about(line, &name, format!("`{name}` has no value in this message")));
        }
    }
    let mut env = Environment::empty();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(16);
    // A text ends as written: Jinja's default drops one trailing newline.
    let syntax = minijinja::syntax::SyntaxConfig::builder().keep_trailing_newline(true).build();
    env.set_syntax(syntax.map_err(|e| Problem::at(0, e.to_string()))?);
    env.set_auto_escape_callback(|name| if name == "html" { AutoEscape::Html } else { AutoEscape::None });
    env.add_filter("upper", minijinja::filters::upper);
    env.add_filter("lower", minijinja::filters::lower);
    env.add_filter("capitalize", minijinja::filters::capitalize);
    env.add_filter("title", minijinja::filters::title);
    env.add_filter("trim", minijinja::filters::trim);
    let template = env.template_from_named_str(part.as_str(), source).map_err(|e| problem(&e))?;
    template.render(values.clone()).map_err(|e| problem(&e))
}

/// The engine's error as a problem at its line.
fn problem(error: &minijinja::Error) -> Problem {
    Problem::at(error.line().unwrap_or(0), error.detail().unwrap_or("the template cannot be rendered").to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&'static str, &str)]) -> Values {
        pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
    }

    #[test]
    fn values_fill_the_template_and_conditions_choose() {
        let source = "Hi {{ customer_first_name | title }}!{% if technician_name %} {{ technician_name }} is on the way.{% else %} We are on the way.{% endif %}";
        let with = values(&[("customer_first_name", "dana"), ("technician_name", "Luis")]);
        assert_eq!(render(Part::Sms, source, &with).ok().as_deref(), Some("Hi Dana! Luis is on the way."));
        let without = values(&[("customer_first_name", "dana"), ("technician_name", "")]);
        assert_eq!(render(Part::Sms, source, &without).ok().as_deref(), Some("Hi Dana! We are on the way."));
    }

    #[test]
    fn a_value_that_looks_like_template_syntax_is_output_as_text() {
        let name = "{{ business_name }}{% if x %}<script>alert(1)</script>";
        let given = values(&[("customer_first_name", name), ("business_name", "Ace")]);
        assert_eq!(render(Part::Sms, "Hi {{ customer_first_name }}", &given).ok(), Some(format!("Hi {name}")));
        let html = render(Part::Html, "<p>Hi {{ customer_first_name }}</p>", &given).unwrap_or_default();
        assert_eq!(html, "<p>Hi {{ business_name }}{% if x %}&lt;script&gt;alert(1)&lt;&#x2f;script&gt;</p>");
    }

    #[test]
    fn a_variable_the_message_lacks_is_an_error_naming_it_at_its_line() {
        let problem = render(Part::Text, "Hello\n{{ invoice_number }}", &values(&[])).err();
        assert_eq!(problem.as_ref().map(|p| (p.line, p.variable.as_deref())), Some((2, Some("invoice_number"))));
    }

    #[test]
    fn output_past_the_parts_limit_is_refused() {
        let long = values(&[("job_address", &"x".repeat(300))]);
        assert!(render(Part::Subject, "{{ job_address }}", &long).is_err());
        assert!(render(Part::Text, "{{ job_address }}", &long).is_ok());
    }

    #[test]
    fn the_engine_never_sees_more_than_the_subset() {
        let problem = render(Part::Sms, "{{ 'x' * 100000000 }}", &values(&[])).err();
        assert!(problem.is_some_and(|p| p.message.contains("not a variable name")));
    }
}
