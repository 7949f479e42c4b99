//! Job events from the scheduling system (design brief 4.1): parsed, validated and typed
//! before anything is stored. Unknown fields are ignored; missing required ones are errors.

use chrono::{DateTime, NaiveTime, SubsecRound, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

use crate::ids::{AccountId, CustomerId, EventId, JobId, TechnicianId};
use crate::phone::{E164, PhoneError, PhoneRegion};
use crate::registration::{MAX_REASON_CHARS, Registration, SmsRegistration};

/// Why a job event was refused; each becomes the dead-letter reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("malformed JSON: {0}")]
    Malformed(String),
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("missing required field {0}")]
    Missing(&'static str),
    #[error("subject {subject:?} does not match the event's account {account} and type {kind}")]
    SubjectMismatch { subject: String, account: String, kind: String },
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("invalid customer phone: {0}")]
    Phone(#[from] PhoneError),
    #[error("{field} is {length} characters; at most {max} are accepted")]
    TooLong { field: &'static str, length: usize, max: usize },
    #[error("the event is {0} bytes; at most {max} are accepted", max = limits::MAX_EVENT_BYTES)]
    TooLarge(usize),
}

/// A validated job event.
#[derive(Debug, Clone, PartialEq)]
pub struct JobEvent {
    pub event_id: EventId,
    pub account_id: AccountId,
    pub occurred_at: DateTime<Utc>,
    pub kind: EventKind,
}

/// What happened, with the objects that event type requires.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    AccountUpdated(AccountSettings),
    CustomerUpdated(CustomerInput),
    JobScheduled(CustomerInput, JobInput),
    JobRescheduled(CustomerInput, JobInput),
    JobCancelled(CustomerInput, JobInput),
    JobEnRoute(CustomerInput, JobInput),
    JobCompleted(CustomerInput, JobInput, Invoice),
    InvoiceSent(CustomerInput, Invoice),
    PaymentReceived(CustomerInput, Payment),
}

impl EventKind {
    /// The event type as it appears in the subject and the `type` field.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::AccountUpdated(_) => "account.updated",
            EventKind::CustomerUpdated(_) => "customer.updated",
            EventKind::JobScheduled(..) => "job.scheduled",
            EventKind::JobRescheduled(..) => "job.rescheduled",
            EventKind::JobCancelled(..) => "job.cancelled",
            EventKind::JobEnRoute(..) => "job.en_route",
            EventKind::JobCompleted(..) => "job.completed",
            EventKind::InvoiceSent(..) => "invoice.sent",
            EventKind::PaymentReceived(..) => "payment.received",
        }
    }

    /// The job the event concerns, if it names one.
    pub fn job(&self) -> Option<&JobInput> {
        match self {
            EventKind::JobScheduled(_, job)
            | EventKind::JobRescheduled(_, job)
            | EventKind::JobCancelled(_, job)
            | EventKind::JobEnRoute(_, job)
            | EventKind::JobCompleted(_, job, _) => Some(job),
            EventKind::AccountUpdated(_)
            | EventKind::CustomerUpdated(_)
            | EventKind::InvoiceSent(..)
            | EventKind::PaymentReceived(..) => None,
        }
    }

    /// The customer the event concerns, if it names one.
    pub fn customer(&self) -> Option<&CustomerInput> {
        match self {
            EventKind::AccountUpdated(_) => None,
            EventKind::CustomerUpdated(c)
            | EventKind::JobScheduled(c, _)
            | EventKind::JobRescheduled(c, _)
            | EventKind::JobCancelled(c, _)
            | EventKind::JobEnRoute(c, _)
            | EventKind::JobCompleted(c, _, _)
            | EventKind::InvoiceSent(c, _)
            | EventKind::PaymentReceived(c, _) => Some(c),
        }
    }
}

/// The account's settings as `account.updated` carries them.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountSettings {
    pub name: String,
    pub timezone: Tz,
    pub sms_number: E164,
    pub email_from: String,
    pub reminder_time: NaiveTime,
    pub quiet_start: NaiveTime,
    pub quiet_end: NaiveTime,
    /// The A2P 10DLC registration of its number, when the events report one.
    pub sms_registration: Option<SmsRegistration>,
    /// Whether an automatic SMS that fails permanently goes by email instead (default on).
    pub email_fallback: bool,
}

/// A customer as the event describes them; the phone is still as typed, normalised later
/// with the account's region by [`CustomerInput::contact`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CustomerInput {
    pub id: CustomerId,
    pub name: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub notifications: Preferences,
}

/// Which channels the customer allows; both default to allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Preferences {
    #[serde(default = "yes")]
    pub sms: bool,
    #[serde(default = "yes")]
    pub email: bool,
}

impl Default for Preferences {
    fn default() -> Self {
        Self { sms: true, email: true }
    }
}

fn yes() -> bool {
    true
}

/// A customer's normalised contact details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub customer_id: CustomerId,
    pub name: String,
    pub phone: Option<E164>,
    pub email: Option<String>,
    pub preferences: Preferences,
    /// A phone number given but unusable, as given, and why (the event error it would have been).
    pub unusable_phone: Option<(String, String)>,
    /// An email address given but unusable, as given, and why (the event error it would have been).
    pub unusable_email: Option<(String, String)>,
}

impl CustomerInput {
    /// Normalises phone and email. One that cannot be used is set aside with the reason rather
    /// than refusing the whole event: the rest of it (a cancellation, the other channel) still
    /// applies, and the caller reports what was set aside.
    pub fn contact(&self, region: PhoneRegion) -> Contact {
        let (mut phone, mut unusable_phone) = (None, None);
        if let Some(raw) = given(&self.phone) {
            match E164::normalize(raw, region) {
                Ok(number) => phone = Some(number),
                Err(error) => unusable_phone = Some((raw.to_owned(), EventError::from(error).to_string())),
            }
        }
        let (mut email, mut unusable_email) = (None, None);
        if let Some(raw) = given(&self.email) {
            match check_email(raw) {
                Ok(address) => email = Some(address),
                Err(error) => unusable_email = Some((raw.to_owned(), error.to_string())),
            }
        }
        Contact {
            customer_id: self.id.clone(),
            name: self.name.trim().to_owned(),
            phone,
            email,
            preferences: self.notifications,
            unusable_phone,
            unusable_email,
        }
    }
}

/// A field's trimmed value, if it says anything.
fn given(field: &Option<String>) -> Option<&str> {
    field.as_deref().map(str::trim).filter(|raw| !raw.is_empty())
}

/// The job a notification is about.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct JobInput {
    pub id: JobId,
    #[serde(default)]
    pub title: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// The lead technician.
    #[serde(default)]
    pub technician: Option<Technician>,
    /// Technicians who help on the job, besides the lead.
    #[serde(default)]
    pub helpers: Vec<Technician>,
    #[serde(default)]
    pub address: String,
}

/// A technician on a job; the id (optional, for backward compatibility) is what scopes a
/// technician's view of the Messages page.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Technician {
    #[serde(default)]
    pub id: Option<TechnicianId>,
    #[serde(default)]
    pub name: String,
}

/// The most helpers a job event may name.
pub const MAX_HELPERS: usize = 20;

impl JobInput {
    /// The ids of the technicians assigned: the lead's (if it has one), then the helpers', each once.
    pub fn technician_ids(&self) -> (Option<&TechnicianId>, Vec<&TechnicianId>) {
        let lead = self.technician.as_ref().and_then(|t| t.id.as_ref());
        let mut helpers: Vec<&TechnicianId> = Vec::new();
        for id in self.helpers.iter().filter_map(|t| t.id.as_ref()) {
            if Some(id) != lead && !helpers.contains(&id) {
                helpers.push(id);
            }
        }
        (lead, helpers)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Invoice {
    pub id: String,
    pub number: String,
    pub amount_cents: i64,
    pub currency: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Payment {
    pub id: String,
    pub amount_cents: i64,
    pub currency: String,
    pub invoice_id: String,
    #[serde(default)]
    pub receipt_url: Option<String>,
}

#[derive(Deserialize)]
struct RawEvent {
    event_id: EventId,
    #[serde(rename = "type")]
    kind: String,
    occurred_at: DateTime<Utc>,
    account_id: AccountId,
    #[serde(default)]
    account: Option<RawAccount>,
    #[serde(default)]
    customer: Option<CustomerInput>,
    #[serde(default)]
    job: Option<JobInput>,
    #[serde(default)]
    invoice: Option<Invoice>,
    #[serde(default)]
    payment: Option<Payment>,
}

#[derive(Deserialize)]
struct RawAccount {
    name: String,
    timezone: String,
    sms_number: String,
    email_from: String,
    #[serde(default)]
    reminder_time: Option<String>,
    #[serde(default)]
    quiet_hours: Option<RawQuietHours>,
    #[serde(default)]
    sms_registration: Option<RawRegistration>,
    #[serde(default)]
    email_fallback: Option<bool>,
}

#[derive(Deserialize)]
struct RawRegistration {
    status: String,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
struct RawQuietHours {
    start: String,
    end: String,
}

/// The event types ingest understands.
pub const EVENT_TYPES: &[&str] = &[
    "account.updated",
    "customer.updated",
    "job.scheduled",
    "job.rescheduled",
    "job.cancelled",
    "job.en_route",
    "job.completed",
    "invoice.sent",
    "payment.received",
];

/// Parses the JSON body of a message received on `subject` (`jobs.<account_id>.<type>`) at `now`.
pub fn parse_job_event(subject: &str, payload: &[u8], now: DateTime<Utc>) -> Result<JobEvent, EventError> {
    if payload.len() > limits::MAX_EVENT_BYTES {
        return Err(EventError::TooLarge(payload.len()));
    }
    let raw: RawEvent = serde_json::from_slice(payload).map_err(|e| EventError::Malformed(e.to_string()))?;
    limits::check_fields(&raw)?;
    limits::check_occurred_at(raw.occurred_at, now)?;
    if !EVENT_TYPES.contains(&raw.kind.as_str()) {
        return Err(EventError::UnknownType(raw.kind.chars().take(64).collect()));
    }
    let expected = format!("jobs.{}.{}", raw.account_id, raw.kind);
    if subject != expected {
        return Err(EventError::SubjectMismatch {
            subject: subject.to_owned(),
            account: raw.account_id.to_string(),
            kind: raw.kind,
        });
    }
    let customer = || raw.customer.clone().ok_or(EventError::Missing("customer"));
    // Times keep microseconds, as Postgres stores them, so a time read back compares equal.
    let job = || {
        raw.job
            .clone()
            .map(|job| JobInput {
                starts_at: job.starts_at.trunc_subsecs(6),
                ends_at: job.ends_at.trunc_subsecs(6),
                ..job
            })
            .ok_or(EventError::Missing("job"))
    };
    let invoice = || raw.invoice.clone().ok_or(EventError::Missing("invoice"));
    let kind = match raw.kind.as_str() {
        "account.updated" => EventKind::AccountUpdated(account_settings(raw.account.as_ref())?),
        "customer.updated" => EventKind::CustomerUpdated(customer()?),
        "job.scheduled" => EventKind::JobScheduled(customer()?, checked_job(job()?)?),
        "job.rescheduled" => EventKind::JobRescheduled(customer()?, checked_job(job()?)?),
        "job.cancelled" => EventKind::JobCancelled(customer()?, job()?),
        "job.en_route" => EventKind::JobEnRoute(customer()?, job()?),
        "job.completed" => EventKind::JobCompleted(customer()?, job()?, invoice()?),
        "invoice.sent" => EventKind::InvoiceSent(customer()?, invoice()?),
        "payment.received" => {
            EventKind::PaymentReceived(customer()?, raw.payment.clone().ok_or(EventError::Missing("payment"))?)
        }
        other => return Err(EventError::UnknownType(other.to_owned())),
    };
    Ok(JobEvent { event_id: raw.event_id, account_id: raw.account_id, occurred_at: raw.occurred_at, kind })
}

fn checked_job(job: JobInput) -> Result<JobInput, EventError> {
    if job.ends_at < job.starts_at {
        return Err(EventError::Invalid { field: "job.ends_at", reason: "is before starts_at".into() });
    }
    Ok(job)
}

fn account_settings(raw: Option<&RawAccount>) -> Result<AccountSettings, EventError> {
    let raw = raw.ok_or(EventError::Missing("account"))?;
    let timezone: Tz = raw.timezone.parse().map_err(|_| EventError::Invalid {
        field: "account.timezone",
        reason: format!("{:?} is not an IANA zone", raw.timezone),
    })?;
    let sms_number = E164::parse_strict(&raw.sms_number)
        .map_err(|e| EventError::Invalid { field: "account.sms_number", reason: e.to_string() })?;
    let clock = |field: &'static str, value: Option<&str>, default: &str| -> Result<NaiveTime, EventError> {
        let text = value.unwrap_or(default);
        NaiveTime::parse_from_str(text, "%H:%M")
            .map_err(|_| EventError::Invalid { field, reason: format!("{text:?} is not HH:MM") })
    };
    let quiet = raw.quiet_hours.as_ref();
    Ok(AccountSettings {
        name: non_empty("account.name", &raw.name)?,
        timezone,
        sms_number,
        email_from: check_email(raw.email_from.trim())?,
        reminder_time: clock("account.reminder_time", raw.reminder_time.as_deref(), "09:00")?,
        quiet_start: clock("account.quiet_hours.start", quiet.map(|q| q.start.as_str()), "21:00")?,
        quiet_end: clock("account.quiet_hours.end", quiet.map(|q| q.end.as_str()), "08:00")?,
        sms_registration: raw.sms_registration.as_ref().map(registration).transpose()?,
        email_fallback: raw.email_fallback.unwrap_or(true),
    })
}

fn registration(raw: &RawRegistration) -> Result<SmsRegistration, EventError> {
    let state = Registration::parse(raw.status.trim()).ok_or_else(|| EventError::Invalid {
        field: "account.sms_registration.status",
        reason: format!(
            "{:?} is not one of {}",
            raw.status,
            Registration::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
        ),
    })?;
    let reason = raw.reason.trim();
    if reason.chars().count() > MAX_REASON_CHARS || reason.chars().any(char::is_control) {
        return Err(EventError::Invalid {
            field: "account.sms_registration.reason",
            reason: format!("must be one line of at most {MAX_REASON_CHARS} characters"),
        });
    }
    Ok(SmsRegistration { state, reason: reason.to_owned() })
}

fn non_empty(field: &'static str, value: &str) -> Result<String, EventError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(EventError::Missing(field));
    }
    Ok(value.to_owned())
}

/// A deliberately plain check: one `@`, a dotted domain, no whitespace or control characters.
pub fn check_email(raw: &str) -> Result<String, EventError> {
    let invalid = |reason: &str| EventError::Invalid {
        field: "email",
        reason: format!("{:?} {reason}", raw.chars().take(80).collect::<String>()),
    };
    if raw.len() > 254 || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("has whitespace or is too long"));
    }
    let (local, domain) = raw.split_once('@').ok_or_else(|| invalid("has no @"))?;
    if local.is_empty()
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
    {
        return Err(invalid("is not an email address"));
    }
    Ok(raw.to_owned())
}

pub mod limits;
#[cfg(test)]
mod tests;
