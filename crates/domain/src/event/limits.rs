//! How big a job event and each of its free-text fields may be (the event contract's caps), so
//! one oversized event is refused with a reason instead of becoming a message no bus, relay or
//! provider can carry.

use chrono::{DateTime, Duration, Utc};

use super::{EventError, RawEvent};

/// The largest job event accepted, in bytes of JSON.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// How far ahead of the receiver's clock an event's `occurred_at` may be: clocks drift a little,
/// but an event "from the future" would otherwise win every later comparison for good.
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);

/// The longest each free-text field may be, in characters.
pub const FIELD_LIMITS: &[(&str, usize)] = &[
    ("account.name", 200),
    ("account.timezone", 64),
    ("account.sms_number", 32),
    ("account.email_from", 254),
    ("customer.name", 200),
    ("customer.phone", 64),
    ("customer.email", 254),
    ("job.title", 200),
    ("job.address", 500),
    ("job.technician.name", 100),
    ("job.helpers.name", 100),
    ("invoice.id", 64),
    ("invoice.number", 64),
    ("invoice.currency", 3),
    ("invoice.url", 2048),
    ("payment.id", 64),
    ("payment.currency", 3),
    ("payment.invoice_id", 64),
    ("payment.receipt_url", 2048),
];

fn limit(field: &str) -> usize {
    FIELD_LIMITS.iter().find(|(name, _)| *name == field).map(|(_, max)| *max).unwrap_or(200)
}

fn check(field: &'static str, value: &str) -> Result<(), EventError> {
    let max = limit(field);
    let length = value.chars().count();
    if length > max {
        return Err(EventError::TooLong { field, length, max });
    }
    Ok(())
}

/// Every free-text field of `raw` within its cap.
pub(super) fn check_fields(raw: &RawEvent) -> Result<(), EventError> {
    if let Some(account) = &raw.account {
        check("account.name", &account.name)?;
        check("account.timezone", &account.timezone)?;
        check("account.sms_number", &account.sms_number)?;
        check("account.email_from", &account.email_from)?;
    }
    if let Some(customer) = &raw.customer {
        check("customer.name", &customer.name)?;
        check("customer.phone", customer.phone.as_deref().unwrap_or_default())?;
        check("customer.email", customer.email.as_deref().unwrap_or_default())?;
    }
    if let Some(job) = &raw.job {
        check("job.title", &job.title)?;
        check("job.address", &job.address)?;
        check("job.technician.name", job.technician.as_ref().map(|t| t.name.as_str()).unwrap_or_default())?;
        if job.helpers.len() > super::MAX_HELPERS {
            return Err(EventError::Invalid {
                field: "job.helpers",
                reason: format!("{} helpers; a job names at most {}", job.helpers.len(), super::MAX_HELPERS),
            });
        }
        for helper in &job.helpers {
            check("job.helpers.name", &helper.name)?;
        }
    }
    if let Some(invoice) = &raw.invoice {
        check("invoice.id", &invoice.id)?;
        check("invoice.number", &invoice.number)?;
        check("invoice.currency", &invoice.currency)?;
        check("invoice.url", &invoice.url)?;
    }
    if let Some(payment) = &raw.payment {
        check("payment.id", &payment.id)?;
        check("payment.currency", &payment.currency)?;
        check("payment.invoice_id", &payment.invoice_id)?;
        check("payment.receipt_url", payment.receipt_url.as_deref().unwrap_or_default())?;
    }
    Ok(())
}

/// `occurred_at` no further ahead of `now` than [`MAX_CLOCK_SKEW`].
pub fn check_occurred_at(occurred_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), EventError> {
    if occurred_at > now + MAX_CLOCK_SKEW {
        return Err(EventError::Invalid {
            field: "occurred_at",
            reason: format!("{occurred_at} is more than {} minutes ahead of now", MAX_CLOCK_SKEW.num_minutes()),
        });
    }
    Ok(())
}
