//! Job events as the scheduling system publishes them, built from parts so tests can say
//! exactly which customer, job, time and event id they mean.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

/// A customer object; empty phone or email means none.
pub fn customer(id: &str, name: &str, phone: &str, email: &str) -> Value {
    json!({"id": id, "name": name, "phone": phone, "email": email, "notifications": {"sms": true, "email": true}})
}

/// A two-hour job starting at `starts_at`.
pub fn job(id: &str, starts_at: DateTime<Utc>) -> Value {
    json!({"id": id, "title": "Water heater install", "starts_at": starts_at.to_rfc3339(),
           "ends_at": (starts_at + Duration::hours(2)).to_rfc3339(), "technician": {"name": "Luis Ortega"},
           "address": "12 Elm St, Austin, TX"})
}

pub fn invoice(id: &str) -> Value {
    json!({"id": id, "number": "INV-1042", "amount_cents": 48_250, "currency": "USD",
           "url": format!("https://pay.example.com/i/{id}")})
}

pub fn payment(id: &str, invoice_id: &str) -> Value {
    json!({"id": id, "amount_cents": 48_250, "currency": "USD", "invoice_id": invoice_id,
           "receipt_url": format!("https://pay.example.com/r/{id}")})
}

/// An event of `kind` for `account` with the given objects (`customer`, `job`, `invoice`, …).
pub fn event(event_id: &str, kind: &str, account: &str, occurred_at: DateTime<Utc>, objects: Value) -> Value {
    let mut event = json!({"event_id": event_id, "type": kind, "occurred_at": occurred_at.to_rfc3339(),
                           "account_id": account});
    if let (Some(target), Some(extra)) = (event.as_object_mut(), objects.as_object()) {
        target.extend(extra.clone());
    }
    event
}

/// A test account's send address: its own, as two accounts can never share one.
pub fn send_address(account: &str) -> String {
    format!("office+{account}@ace.example")
}

/// A test account's business number: its own (derived from its id), as two accounts can never
/// share one.
pub fn business_number(account: &str) -> String {
    let hash = account.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    format!("+1512555{}", 5000 + hash % 4000)
}

/// `account.updated` in `timezone` with the given quiet hours ("HH:MM"; equal means none).
pub fn account(event_id: &str, account: &str, timezone: &str, quiet: (&str, &str)) -> Value {
    event(
        event_id,
        "account.updated",
        account,
        Utc::now() - Duration::days(1),
        json!({"account": {"name": "Ace Plumbing", "timezone": timezone, "sms_number": business_number(account),
                           "email_from": send_address(account), "reminder_time": "09:00",
                           "quiet_hours": {"start": quiet.0, "end": quiet.1}}}),
    )
}
