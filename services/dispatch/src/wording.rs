//! The wording of a planned message: the account's own template for its type and channel when it
//! has one and it renders this request, the built-in wording otherwise. A template that cannot
//! render a request (a variable the request has no data for, output past a part's limit) never
//! stops the message: the built-in wording goes, the message records why, and a metric counts it.

use messaging_domain::{Channel, MessageType};
use messaging_proto::bus::NotificationRequest;
use messaging_templates::{Part, Problem, Values};

use crate::render::{self, RenderError};
use crate::templates::Custom;

/// What a message says and where its words come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wording {
    pub subject: String,
    pub body: String,
    pub html: String,
    /// The custom template's version it was rendered from; `None` for the built-in wording.
    pub template_version: Option<i32>,
    /// Why the account's template could not render it (the built-in wording went instead).
    pub fallback: Option<String>,
}

/// The SMS body for `request`, whose template values are `values`.
pub fn sms(
    request: &NotificationRequest,
    kind: MessageType,
    custom: Option<&Custom>,
    values: &Result<Values, RenderError>,
) -> Result<Wording, RenderError> {
    let custom_body = |custom: &Custom| -> Result<String, Problem> {
        messaging_templates::render(Part::Sms, &custom.sms_body, usable(values)?)
    };
    let built_in = || -> Result<Wording, RenderError> {
        Ok(Wording {
            subject: String::new(),
            body: render::sms(request, kind)?,
            html: String::new(),
            template_version: None,
            fallback: None,
        })
    };
    let Some(custom) = custom else { return built_in() };
    match custom_body(custom) {
        Ok(body) => Ok(Wording {
            subject: String::new(),
            body,
            html: String::new(),
            template_version: Some(custom.version),
            fallback: None,
        }),
        Err(problem) => fell_back(request, kind, Channel::Sms, custom, &problem, built_in()?),
    }
}

/// The email (subject, text, HTML) for `request`, whose template values are `values`.
pub fn email(
    request: &NotificationRequest,
    kind: MessageType,
    custom: Option<&Custom>,
    values: &Result<Values, RenderError>,
) -> Result<Wording, RenderError> {
    let built_in = || -> Result<Wording, RenderError> {
        let rendered = render::email(request, kind)?;
        Ok(Wording {
            subject: rendered.subject,
            body: rendered.text,
            html: rendered.html,
            template_version: None,
            fallback: None,
        })
    };
    let Some(custom) = custom else { return built_in() };
    let worded = || -> Result<Wording, Problem> {
        let values = usable(values)?;
        let subject = messaging_templates::render(Part::Subject, &custom.subject, values)?;
        let text = messaging_templates::render(Part::Text, &custom.text, values)?;
        let html = if custom.html.is_empty() {
            render::html_of_text(&text)
        } else {
            messaging_templates::render(Part::Html, &custom.html, values)?
        };
        Ok(Wording {
            subject: render::one_line(&subject),
            body: text,
            html,
            template_version: Some(custom.version),
            fallback: None,
        })
    };
    match worded() {
        Ok(wording) => Ok(wording),
        Err(problem) => fell_back(request, kind, Channel::Email, custom, &problem, built_in()?),
    }
}

/// The values, or why a custom template cannot have them (the request's data cannot be formatted).
fn usable(values: &Result<Values, RenderError>) -> Result<&Values, Problem> {
    values.as_ref().map_err(|e| Problem::at(0, e.to_string()))
}

/// The built-in wording, recording why the account's template could not be used.
fn fell_back(
    request: &NotificationRequest,
    kind: MessageType,
    channel: Channel,
    custom: &Custom,
    problem: &Problem,
    built_in: Wording,
) -> Result<Wording, RenderError> {
    let why = format!("template version {} could not render this message: {problem}", custom.version);
    let account_id = request.account.as_ref().map(|a| a.account_id.as_str()).unwrap_or("");
    tracing::warn!(account_id, request_id = %request.request_id, %kind, %channel, %why, "built-in wording sent instead");
    crate::metrics::template_fallback(kind, channel);
    Ok(Wording { fallback: Some(why), ..built_in })
}
