//! Templates a business writes for its automatic messages: the variable catalogue, the subset of
//! Jinja they may use, a sandboxed engine to render them, and the checks a template passes before
//! it can be published.

mod builtin;
pub mod catalogue;
mod engine;
pub mod syntax;
mod validate;

pub use builtin::{Builtin, builtin};
pub use catalogue::{CATALOGUE, Kind, Variable};
pub use engine::{Values, render, sample_values, worst_values};
pub use validate::{Checked, MAX_SMS_SEGMENTS, SmsCost, validate};

/// Which part of a message a template is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    Sms,
    Subject,
    Text,
    /// The email's HTML part: values are HTML-escaped in it.
    Html,
}

impl Part {
    pub const ALL: &'static [Part] = &[Part::Sms, Part::Subject, Part::Text, Part::Html];

    pub fn as_str(self) -> &'static str {
        match self {
            Part::Sms => "sms",
            Part::Subject => "subject",
            Part::Text => "text",
            Part::Html => "html",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Part::ALL.iter().copied().find(|p| p.as_str() == text)
    }

    /// The longest source and the longest output, in characters.
    pub fn limit(self) -> usize {
        match self {
            // Twilio's longest body.
            Part::Sms => 1_600,
            Part::Subject => 200,
            Part::Text | Part::Html => 20_000,
        }
    }
}

/// What is wrong with a template, at which line, about which variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct Problem {
    /// 1-based; 0 when the problem is the template as a whole.
    pub line: usize,
    pub message: String,
    pub variable: Option<String>,
}

impl Problem {
    pub fn at(line: usize, message: impl Into<String>) -> Self {
        Self { line, message: message.into(), variable: None }
    }

    pub fn about(line: usize, variable: &str, message: impl Into<String>) -> Self {
        Self { line, message: message.into(), variable: Some(variable.to_owned()) }
    }
}
