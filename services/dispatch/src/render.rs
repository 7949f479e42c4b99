//! The hard-coded templates: one SMS text and one email (subject, text, HTML) per message type.
//! Customer- and job-provided text is data: interpolated, never interpreted; HTML-escaped in HTML.

use chrono::DateTime;
use chrono_tz::Tz;
use messaging_domain::MessageType;
use messaging_proto::bus::NotificationRequest;
use messaging_templates::Values;

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Why a request cannot be rendered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("{0} requires {1}")]
    Missing(&'static str, &'static str),
    #[error("account time zone {0:?} is unknown")]
    Zone(String),
}

pub use messaging_domain::sms::with_opt_out_notice;

/// Renders the SMS text for a request.
pub fn sms(request: &NotificationRequest, kind: MessageType) -> Result<String, RenderError> {
    let f = Fields::of(request)?;
    let text = match kind {
        MessageType::AppointmentConfirmation => format!(
            "{business}: Hi {first}, your {title} is confirmed for {when}.{tech}",
            business = f.business,
            first = f.first_name,
            title = f.job_title()?,
            when = f.window()?,
            tech = f.tech_sentence()
        ),
        MessageType::Reminder => format!(
            "{business}: Reminder, {first}: your {title} is tomorrow, {when}.",
            business = f.business,
            first = f.first_name,
            title = f.job_title()?,
            when = f.window()?
        ),
        MessageType::OnMyWay => format!(
            "{business}: Hi {first}, {tech} is on the way to you now.",
            business = f.business,
            first = f.first_name,
            tech = f.technician_or("your technician")
        ),
        MessageType::JobCompleted => format!(
            "{business}: Your {title} is complete. Thank you, {first}! Invoice {number}: {url}",
            business = f.business,
            title = f.job_title()?,
            first = f.first_name,
            number = f.invoice_number()?,
            url = f.invoice_url()?
        ),
        MessageType::PaymentLink => format!(
            "{business}: Invoice {number} for {amount} is ready. Pay here: {url}",
            business = f.business,
            number = f.invoice_number()?,
            amount = f.invoice_amount()?,
            url = f.invoice_url()?
        ),
        MessageType::PaymentReceipt => format!(
            "{business}: We received your payment of {amount}. Thank you, {first}!",
            business = f.business,
            amount = f.payment_amount()?,
            first = f.first_name
        ),
        MessageType::Manual | MessageType::Reply => request.manual_text.clone(),
    };
    Ok(text)
}

/// Renders the email for a request.
pub fn email(request: &NotificationRequest, kind: MessageType) -> Result<Rendered, RenderError> {
    let f = Fields::of(request)?;
    let (subject, lines): (String, Vec<String>) = match kind {
        MessageType::AppointmentConfirmation => (
            format!("Your appointment with {} is confirmed", f.business),
            vec![
                format!("Hi {},", f.first_name),
                format!("your {} is confirmed for {}.", f.job_title()?, f.window()?),
                f.tech_sentence().trim().to_owned(),
                f.address_line(),
            ],
        ),
        MessageType::Reminder => (
            format!("Reminder: your appointment with {} is tomorrow", f.business),
            vec![
                format!("Hi {},", f.first_name),
                format!("a reminder that your {} is tomorrow, {}.", f.job_title()?, f.window()?),
                f.address_line(),
            ],
        ),
        MessageType::JobCompleted => (
            format!("Your {} is complete", f.job_title()?),
            vec![
                format!("Hi {},", f.first_name),
                format!(
                    "thank you for choosing {}. Your invoice {} is here: {}",
                    f.business,
                    f.invoice_number()?,
                    f.invoice_url()?
                ),
            ],
        ),
        MessageType::PaymentLink => (
            format!("Invoice {} from {}", f.invoice_number()?, f.business),
            vec![
                format!("Hi {},", f.first_name),
                format!(
                    "invoice {} for {} is ready. Pay here: {}",
                    f.invoice_number()?,
                    f.invoice_amount()?,
                    f.invoice_url()?
                ),
            ],
        ),
        MessageType::PaymentReceipt => (
            format!("Payment received: thank you from {}", f.business),
            vec![
                format!("Hi {},", f.first_name),
                format!("we received your payment of {}. Thank you!", f.payment_amount()?),
                f.receipt_line(),
            ],
        ),
        // On-my-way goes by SMS; its email is the SMS→email fallback's, and has no template.
        MessageType::OnMyWay => (
            format!("{} from {} is on the way", f.technician_or("Your technician"), f.business),
            vec![
                format!("Hi {},", f.first_name),
                format!("{} is on the way to you now.", f.technician_or("your technician")),
                f.address_line(),
            ],
        ),
        MessageType::Manual | MessageType::Reply => (request.manual_subject.clone(), vec![request.manual_text.clone()]),
    };
    let lines: Vec<String> = lines.into_iter().filter(|l| !l.is_empty()).collect();
    let text = format!("{}\n\n{}\n", lines.join("\n"), f.business);
    let html_lines: String = lines.iter().map(|l| format!("<p>{}</p>", escape_html(l))).collect();
    let html = format!(
        "<!DOCTYPE html><html><body>{html_lines}<p>{business}</p></body></html>",
        business = escape_html(&f.business)
    );
    Ok(Rendered { subject: one_line(&subject), text, html })
}

/// The catalogue's values for a request of type `kind` (`messaging_templates::catalogue`), each
/// formatted as the built-in templates format it; a value the request lacks the data for is
/// left out, so a template that uses it fails to render rather than show a blank.
pub fn values(request: &NotificationRequest, kind: MessageType) -> Result<Values, RenderError> {
    let f = Fields::of(request)?;
    let customer = request.customer.as_ref().map(|c| c.name.as_str()).unwrap_or("");
    let account = request.account.clone().unwrap_or_default();
    let job = request.job.clone().unwrap_or_default();
    let start = f.zone.clone().ok().and_then(|zone| local(job.starts_at.as_ref(), zone));
    let mut values = Values::new();
    for variable in messaging_templates::catalogue::carried_by(kind) {
        let value = match variable.name {
            "business_name" => Some(f.business.clone()),
            "business_phone" => Some(account.sms_number.clone()),
            "customer_first_name" => Some(f.first_name.clone()),
            "customer_last_name" => Some(customer.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")),
            "job_title" => f.job_title().ok(),
            "job_date" => start.map(|s| s.format("%a, %b %-d").to_string()),
            "job_time" => start.map(|s| s.format("%-I:%M %p").to_string()),
            "job_window" => f.window().ok(),
            "job_address" => request.job.as_ref().map(|j| j.address.trim().to_owned()),
            "technician_name" => request.job.as_ref().map(|j| j.technician_name.trim().to_owned()),
            "invoice_number" => f.invoice_number().ok(),
            "invoice_amount" => f.invoice_amount().ok(),
            "payment_link" => f.invoice_url().ok(),
            "payment_amount" => f.payment_amount().ok(),
            "receipt_link" => request.payment.as_ref().map(|p| p.receipt_url.trim().to_owned()),
            _ => None,
        };
        if let Some(value) = value {
            values.insert(variable.name, value);
        }
    }
    Ok(values)
}

/// An email's HTML part made from its text part: each non-empty line a paragraph, escaped.
pub fn html_of_text(text: &str) -> String {
    let paragraphs: String =
        text.lines().filter(|l| !l.trim().is_empty()).map(|l| format!("<p>{}</p>", escape_html(l))).collect();
    format!("<!DOCTYPE html><html><body>{paragraphs}</body></html>")
}

/// Escapes the five HTML-significant characters.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Subjects are headers: no line breaks survive into them.
pub fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

struct Fields<'a> {
    request: &'a NotificationRequest,
    business: String,
    first_name: String,
    /// Needed only for a job's times (a manual message has none, and may come with no zone).
    zone: Result<Tz, String>,
}

impl<'a> Fields<'a> {
    fn of(request: &'a NotificationRequest) -> Result<Self, RenderError> {
        let account = request.account.as_ref().ok_or(RenderError::Missing("a notification", "an account"))?;
        let customer = request.customer.as_ref().ok_or(RenderError::Missing("a notification", "a customer"))?;
        let zone = account.timezone.parse::<Tz>().map_err(|_| account.timezone.clone());
        let first_name = customer.name.split_whitespace().next().unwrap_or("there").to_owned();
        Ok(Self { request, business: account.name.clone(), first_name, zone })
    }

    fn job(&self) -> Result<&'a messaging_proto::bus::JobSnapshot, RenderError> {
        self.request.job.as_ref().ok_or(RenderError::Missing("this message", "a job"))
    }

    fn job_title(&self) -> Result<String, RenderError> {
        let title = self.job()?.title.trim();
        Ok(if title.is_empty() { "appointment".to_owned() } else { title.to_owned() })
    }

    /// "Sat, Nov 28 between 9:00 AM and 11:00 AM" in the account's zone.
    fn window(&self) -> Result<String, RenderError> {
        let job = self.job()?;
        let zone = self.zone.clone().map_err(RenderError::Zone)?;
        let start = local(job.starts_at.as_ref(), zone).ok_or(RenderError::Missing("this message", "a start time"))?;
        let end = local(job.ends_at.as_ref(), zone).ok_or(RenderError::Missing("this message", "an end time"))?;
        Ok(format!(
            "{} between {} and {}",
            start.format("%a, %b %-d"),
            start.format("%-I:%M %p"),
            end.format("%-I:%M %p")
        ))
    }

    fn technician_or(&self, fallback: &str) -> String {
        self.request
            .job
            .as_ref()
            .map(|j| j.technician_name.trim())
            .filter(|n| !n.is_empty())
            .unwrap_or(fallback)
            .to_owned()
    }

    fn tech_sentence(&self) -> String {
        match self.request.job.as_ref().map(|j| j.technician_name.trim()).filter(|n| !n.is_empty()) {
            Some(name) => format!(" Your technician is {name}."),
            None => String::new(),
        }
    }

    fn address_line(&self) -> String {
        match self.request.job.as_ref().map(|j| j.address.trim()).filter(|a| !a.is_empty()) {
            Some(address) => format!("Address: {address}"),
            None => String::new(),
        }
    }

    fn invoice(&self) -> Result<&'a messaging_proto::bus::InvoiceSnapshot, RenderError> {
        self.request.invoice.as_ref().ok_or(RenderError::Missing("this message", "an invoice"))
    }

    fn invoice_number(&self) -> Result<String, RenderError> {
        Ok(self.invoice()?.number.clone())
    }

    fn invoice_url(&self) -> Result<String, RenderError> {
        Ok(self.invoice()?.url.clone())
    }

    fn invoice_amount(&self) -> Result<String, RenderError> {
        let invoice = self.invoice()?;
        Ok(money(invoice.amount_cents, &invoice.currency))
    }

    fn payment_amount(&self) -> Result<String, RenderError> {
        let payment = self.request.payment.as_ref().ok_or(RenderError::Missing("this message", "a payment"))?;
        Ok(money(payment.amount_cents, &payment.currency))
    }

    fn receipt_line(&self) -> String {
        match self.request.payment.as_ref().map(|p| p.receipt_url.trim()).filter(|u| !u.is_empty()) {
            Some(url) => format!("Your receipt: {url}"),
            None => String::new(),
        }
    }
}

fn local(at: Option<&prost_types::Timestamp>, zone: Tz) -> Option<DateTime<Tz>> {
    messaging_proto::time::datetime(at).map(|t| t.with_timezone(&zone))
}

/// "$1,234.50" for USD, "1,234.50 EUR" otherwise.
fn money(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    let whole = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    let amount = format!("{grouped}.{:02}", cents % 100);
    match currency.to_ascii_uppercase().as_str() {
        "USD" | "" => format!("{sign}${amount}"),
        other => format!("{sign}{amount} {other}"),
    }
}

#[cfg(test)]
mod tests;
