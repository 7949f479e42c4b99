//! The checks a template passes before it can be published: the subset's syntax, only catalogue
//! variables the message type carries, a render with sample data and one with the longest values
//! the event contract allows, an SMS's encoding and segment count (with the opt-out notice the
//! first SMS to a number carries) under a cap, and a subject on one line.

use messaging_domain::MessageType;
use messaging_domain::sms::{Segments, segments, with_opt_out_notice};

use crate::engine::{render_unbounded, sample_values, worst_values};
use crate::{Part, Problem, catalogue, render, syntax};

/// The most segments an SMS template may cost with sample data, opt-out notice included.
pub const MAX_SMS_SEGMENTS: u32 = 3;

/// What an SMS template costs to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsCost {
    /// With the sample values and the opt-out notice.
    pub sample: Segments,
    /// With the longest values the event contract allows and the opt-out notice.
    pub worst: Segments,
}

/// A template that passed: what it uses and how it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The catalogue variables it uses, in order of first use.
    pub variables: Vec<&'static str>,
    /// The template rendered with the sample values.
    pub preview: String,
    /// An SMS template's cost.
    pub sms: Option<SmsCost>,
}

/// Checks `source` as the `part` of type `kind`'s messages; every problem found, each at its line.
pub fn validate(kind: MessageType, part: Part, source: &str) -> Result<Checked, Vec<Problem>> {
    if !catalogue::AUTOMATIC.contains(&kind) {
        return Err(vec![Problem::at(
            0,
            format!("{kind} messages are written by hand; only automatic messages have templates"),
        )]);
    }
    if source.trim().is_empty() {
        return Err(vec![Problem::at(0, "a template cannot be empty (reset it to use the built-in wording)")]);
    }
    let length = source.chars().count();
    if length > part.limit() {
        return Err(vec![Problem::at(
            0,
            format!("{length} characters; a {} template holds at most {}", part.as_str(), part.limit()),
        )]);
    }
    let mut problems = Vec::new();
    if part == Part::Subject && source.contains(['\n', '\r']) {
        problems.push(Problem::at(
            syntax::line_of(source, source.find(['\n', '\r']).unwrap_or(0)),
            "a subject is one line",
        ));
    }
    let names = syntax::check(source)?;
    let mut variables = Vec::new();
    for name in &names {
        let line = syntax::line_of(source, source.find(name.as_str()).unwrap_or(0));
        match catalogue::variable(name) {
            None => problems.push(Problem::about(line, name, format!("`{name}` is not a variable templates can use"))),
            Some(v) if !v.carried_by(kind) => {
                problems.push(Problem::about(line, name, format!("`{name}` is not available in {kind} messages")));
            }
            Some(v) => variables.push(v.name),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let preview = render(part, source, &sample_values(kind)).map_err(|p| vec![p])?;
    let worst = render_unbounded(part, source, &worst_values(kind))
        .map_err(|p| vec![Problem { message: format!("with the longest values: {}", p.message), ..p }])?;
    let sms = (part == Part::Sms).then(|| SmsCost {
        sample: segments(&with_opt_out_notice(&preview)),
        worst: segments(&with_opt_out_notice(&worst)),
    });
    if let Some(cost) = sms.filter(|cost| cost.sample.count > MAX_SMS_SEGMENTS) {
        return Err(vec![Problem::at(
            0,
            format!(
                "{} segments ({}) with sample data and the opt-out notice the first SMS to a number carries; at most {MAX_SMS_SEGMENTS}",
                cost.sample.count,
                cost.sample.encoding.as_str()
            ),
        )]);
    }
    Ok(Checked { variables, preview, sms })
}

#[cfg(test)]
mod tests {
    use super::*;
    use messaging_domain::sms::Encoding;

    fn problems(kind: MessageType, part: Part, source: &str) -> Vec<Problem> {
        validate(kind, part, source).err().unwrap_or_default()
    }

    #[test]
    fn a_good_sms_template_reports_its_variables_preview_and_cost() {
        let source = "{{ business_name }}: Hi {{ customer_first_name }}, see you {{ job_window }}.";
        let checked = validate(MessageType::AppointmentConfirmation, Part::Sms, source).ok();
        let checked = checked.as_ref();
        assert_eq!(
            checked.map(|c| c.variables.clone()),
            Some(vec!["business_name", "customer_first_name", "job_window"])
        );
        assert_eq!(
            checked.map(|c| c.preview.as_str()),
            Some("Ace Plumbing: Hi Dana, see you Sat, Nov 28 between 9:00 AM and 11:00 AM.")
        );
        let cost = checked.and_then(|c| c.sms);
        assert_eq!(cost.map(|c| (c.sample.encoding, c.sample.count)), Some((Encoding::Gsm7, 1)));
        assert_eq!(cost.map(|c| c.worst.encoding), Some(Encoding::Ucs2), "a name in another script");
        assert!(cost.is_some_and(|c| c.worst.count > c.sample.count));
    }

    #[test]
    fn unknown_and_unavailable_variables_are_named_at_their_lines() {
        let found = problems(
            MessageType::Reminder,
            Part::Text,
            "Hi {{ customer_first_name }}\n{{ invoice_number }}\n{{ favourite_colour }}",
        );
        let named: Vec<(usize, Option<&str>)> = found.iter().map(|p| (p.line, p.variable.as_deref())).collect();
        assert_eq!(named, [(2, Some("invoice_number")), (3, Some("favourite_colour"))]);
        assert!(found[0].message.contains("not available in reminder"), "{found:?}");
    }

    #[test]
    fn too_many_segments_an_empty_template_and_a_two_line_subject_are_refused() {
        let long = format!("{{{{ customer_first_name }}}} {}", "word ".repeat(100));
        let found = problems(MessageType::Reminder, Part::Sms, &long);
        assert!(found.iter().any(|p| p.message.contains("segments (gsm7) with sample data")), "{found:?}");
        assert!(!problems(MessageType::Reminder, Part::Sms, "  ").is_empty());
        let subject = problems(MessageType::Reminder, Part::Subject, "Reminder\n{{ job_date }}");
        assert_eq!(subject.first().map(|p| (p.line, p.message.as_str())), Some((1, "a subject is one line")));
    }

    #[test]
    fn manual_messages_have_no_templates_and_syntax_errors_carry_their_line() {
        assert!(!problems(MessageType::Manual, Part::Sms, "Hi").is_empty());
        let found = problems(MessageType::OnMyWay, Part::Sms, "Hi\nthere {% for x in y %}");
        assert_eq!(found.first().map(|p| p.line), Some(2));
    }

    #[test]
    fn every_type_and_part_takes_a_template_of_the_variables_its_messages_carry() {
        for kind in catalogue::AUTOMATIC {
            let names: Vec<String> = catalogue::carried_by(*kind).map(|v| format!("{{{{ {} }}}}", v.name)).collect();
            let source = format!("Hello {}", names[..3].join(" "));
            for part in Part::ALL {
                assert!(validate(*kind, *part, &source).is_ok(), "{kind} {part:?}");
            }
        }
    }
}
