//! The email a gateway sends and how a send can fail: builds the MIME message with threading and
//! unsubscribe headers; the relay client itself is `relay.rs`.

use std::future::Future;

use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use serde::{Deserialize, Serialize};

/// Relay settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    /// `none`, `starttls` or `tls` (implicit).
    pub tls: String,
    pub username: String,
    pub password: String,
    pub timeout_ms: u64,
    /// Open sessions kept for reuse between sends.
    pub pool_size: usize,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 2525,
            tls: "none".into(),
            username: String::new(),
            password: String::new(),
            timeout_ms: 15_000,
            pool_size: 4,
        }
    }
}

/// One email to send, already rendered.
#[derive(Debug, Clone)]
pub struct Email {
    pub message_id: String,
    pub from_name: String,
    pub from: String,
    pub to: String,
    pub reply_to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub unsubscribe_url: String,
    /// A signed open-tracking pixel, added to the HTML part; empty for none.
    pub open_pixel_url: String,
    /// Our signed message token, carried to an event webhook (SendGrid's unique args); empty for none.
    pub tracking_token: String,
}

/// How a send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// Input that must never reach SMTP (CR/LF in a header, an unparseable address).
    #[error("invalid message: {0}")]
    Invalid(String),
    /// 5xx: the relay refused it for good.
    #[error("relay refused: {0}")]
    Permanent(String),
    /// 4xx, or a problem before the relay had the whole message: retry later.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// The whole message was sent and no verdict came back (a timeout, a dropped connection): the
    /// relay may have it, so it is never sent again.
    #[error("outcome unknown: {0}")]
    Ambiguous(String),
    /// Our side is set up wrong (an untrusted certificate, refused credentials): nothing was sent.
    #[error("configuration: {0}")]
    Misconfigured(String),
}

/// A mail relay, behind a trait for tests.
pub trait Mailer: Send + Sync + 'static {
    fn send(&self, email: &Email) -> impl Future<Output = Result<(), MailError>> + Send;
}

/// Builds the MIME message; refuses CR/LF in anything that becomes a header.
pub fn build(email: &Email, domain: &str) -> Result<Message, MailError> {
    for (field, value) in [
        ("from name", &email.from_name),
        ("from", &email.from),
        ("to", &email.to),
        ("reply-to", &email.reply_to),
        ("subject", &email.subject),
        ("unsubscribe url", &email.unsubscribe_url),
        ("open pixel url", &email.open_pixel_url),
        ("tracking token", &email.tracking_token),
    ] {
        if value.contains(['\r', '\n']) {
            return Err(MailError::Invalid(format!("{field} contains a line break")));
        }
    }
    let address = |value: &str| value.parse().map_err(|e| MailError::Invalid(format!("address {value:?}: {e}")));
    let from = Mailbox::new(Some(email.from_name.clone()), address(&email.from)?);
    let mut builder = Message::builder()
        .message_id(Some(format!("<{}@{}>", email.message_id, domain)))
        .from(from)
        .to(Mailbox::new(None, address(&email.to)?))
        .subject(email.subject.clone());
    if !email.reply_to.is_empty() {
        builder = builder.reply_to(Mailbox::new(None, address(&email.reply_to)?));
    }
    if !email.unsubscribe_url.is_empty() {
        builder = builder
            .raw_header(raw("List-Unsubscribe", format!("<{}>", email.unsubscribe_url))?)
            .raw_header(raw("List-Unsubscribe-Post", "List-Unsubscribe=One-Click".to_owned())?);
    }
    if !email.tracking_token.is_empty() {
        let args = serde_json::json!({"unique_args": {"message_token": email.tracking_token}});
        builder = builder.raw_header(raw("X-SMTPAPI", args.to_string())?);
    }
    builder
        .multipart(MultiPart::alternative_plain_html(
            email.text.clone(),
            with_pixel(&email.html, &email.open_pixel_url),
        ))
        .map_err(|e| MailError::Invalid(e.to_string()))
}

/// The HTML with the open-tracking pixel just before `</body>` (or at the end).
fn with_pixel(html: &str, pixel_url: &str) -> String {
    if pixel_url.is_empty() || pixel_url.contains(['"', '<', '>']) {
        return html.to_owned();
    }
    let img = format!("<img src=\"{pixel_url}\" width=\"1\" height=\"1\" alt=\"\" style=\"display:none\">");
    match html.rfind("</body>") {
        Some(at) => format!("{}{img}{}", &html[..at], &html[at..]),
        None => format!("{html}{img}"),
    }
}

fn raw(name: &'static str, value: String) -> Result<HeaderValue, MailError> {
    let name = HeaderName::new_from_ascii_str(name);
    Ok(HeaderValue::new(name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email {
            message_id: "msg_1".into(),
            from_name: "Ace Plumbing".into(),
            from: "office@ace.example".into(),
            to: "dana@example.com".into(),
            reply_to: "reply+tok@reply.example".into(),
            subject: "Your appointment".into(),
            text: "Hi".into(),
            html: "<p>Hi</p>".into(),
            unsubscribe_url: "http://127.0.0.1:8080/unsubscribe/tok".into(),
            open_pixel_url: "http://127.0.0.1:8080/o/tok.gif".into(),
            tracking_token: "acc.msg.sig".into(),
        }
    }

    #[test]
    fn the_html_part_carries_the_open_pixel() {
        assert_eq!(
            with_pixel("<html><body><p>Hi</p></body></html>", "http://h/o/t.gif"),
            "<html><body><p>Hi</p><img src=\"http://h/o/t.gif\" width=\"1\" height=\"1\" alt=\"\" style=\"display:none\"></body></html>"
        );
        assert_eq!(with_pixel("<p>Hi</p>", ""), "<p>Hi</p>");
    }

    #[test]
    fn builds_with_threading_and_unsubscribe_headers() {
        let message = build(&email(), "ace.example").expect("builds");
        let text = String::from_utf8(message.formatted()).expect("utf8");
        assert!(text.contains("Message-ID: <msg_1@ace.example>"), "{text}");
        assert!(text.contains("List-Unsubscribe: <http://127.0.0.1:8080/unsubscribe/tok>"), "{text}");
        assert!(text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"), "{text}");
        assert!(text.contains("Reply-To: reply+tok@reply.example"), "{text}");
        assert!(text.contains(r#"X-SMTPAPI: {"unique_args":{"message_token":"acc.msg.sig"}}"#), "{text}");
    }

    #[test]
    fn refuses_line_breaks_in_headers() {
        let mut injected = email();
        injected.subject = "Hi\r\nBcc: attacker@example.com".into();
        assert!(matches!(build(&injected, "ace.example"), Err(MailError::Invalid(_))));
        let mut injected = email();
        injected.from_name = "Ace\nBcc: attacker@example.com".into();
        assert!(matches!(build(&injected, "ace.example"), Err(MailError::Invalid(_))));
    }
}
