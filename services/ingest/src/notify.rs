//! Builds the notification requests dispatch renders from: each carries the account, customer
//! and job snapshot it needs, so dispatch never reads ingest's tables.

use chrono::{DateTime, Utc};
use messaging_domain::event::{Contact, Invoice, JobEvent, JobInput, Payment};
use messaging_domain::{AccountId, Channel, MessageType};
use messaging_platform::bus::OutboxMessage;
use messaging_proto::bus;
use messaging_proto::time::timestamp;

use crate::store::StoredAccount;

/// One notification to request, before it is addressed to an account.
#[derive(Debug, Clone)]
pub struct Notification {
    /// Deterministic: the same cause always gives the same id, so dispatch makes one message of it.
    pub request_id: String,
    pub event_id: String,
    pub kind: MessageType,
    /// Empty: every channel the customer has and allows.
    pub channels: Vec<Channel>,
    pub requested_at: DateTime<Utc>,
    pub customer: bus::CustomerSnapshot,
    pub job: Option<bus::JobSnapshot>,
    pub invoice: Option<bus::InvoiceSnapshot>,
    pub payment: Option<bus::PaymentSnapshot>,
}

impl Notification {
    /// The `kind` notification a job event causes; its id is the event id and the type.
    pub fn for_event(event: &JobEvent, kind: MessageType, contact: &Contact) -> Self {
        Self {
            request_id: format!("{}:{}", event.event_id, kind.as_str()),
            event_id: event.event_id.to_string(),
            kind,
            channels: if kind == MessageType::OnMyWay { vec![Channel::Sms] } else { Vec::new() },
            requested_at: event.occurred_at,
            customer: customer_snapshot(contact),
            job: None,
            invoice: None,
            payment: None,
        }
    }

    /// The request as an outbox row for `notify.<account>`.
    pub fn into_outbox(self, account_id: &AccountId, account: &StoredAccount) -> OutboxMessage {
        let request = bus::NotificationRequest {
            request_id: self.request_id.clone(),
            event_id: self.event_id,
            r#type: self.kind.to_proto(),
            account: Some(account_snapshot(account_id, account)),
            customer: Some(self.customer),
            job: self.job,
            invoice: self.invoice,
            payment: self.payment,
            channels: self.channels.iter().map(|c| c.to_proto()).collect(),
            manual_text: String::new(),
            manual_subject: String::new(),
            requested_at: Some(timestamp(self.requested_at)),
            message_id: String::new(),
        };
        OutboxMessage::of(&request, &self.request_id)
    }
}

pub fn account_snapshot(id: &AccountId, a: &StoredAccount) -> bus::AccountSnapshot {
    bus::AccountSnapshot {
        account_id: id.to_string(),
        name: a.name.clone(),
        timezone: a.timezone.clone(),
        sms_number: a.sms_number.clone(),
        email_from: a.email_from.clone(),
        reminder_time: a.reminder_time.format("%H:%M").to_string(),
        quiet_start: a.quiet_start.format("%H:%M").to_string(),
        quiet_end: a.quiet_end.format("%H:%M").to_string(),
        sms_registration: a.sms_registration.clone().unwrap_or_default(),
        sms_registration_reason: a.sms_registration_reason.clone(),
        email_fallback_off: !a.email_fallback,
    }
}

pub fn customer_snapshot(c: &Contact) -> bus::CustomerSnapshot {
    bus::CustomerSnapshot {
        customer_id: c.customer_id.to_string(),
        name: c.name.clone(),
        phone: c.phone.as_ref().map(|p| p.to_string()).unwrap_or_default(),
        email: c.email.clone().unwrap_or_default(),
        sms_allowed: c.preferences.sms,
        email_allowed: c.preferences.email,
    }
}

pub fn job_snapshot(j: &JobInput) -> bus::JobSnapshot {
    let (lead, helpers) = j.technician_ids();
    bus::JobSnapshot {
        job_id: j.id.to_string(),
        title: j.title.clone(),
        starts_at: Some(timestamp(j.starts_at)),
        ends_at: Some(timestamp(j.ends_at)),
        technician_name: j.technician.as_ref().map(|t| t.name.clone()).unwrap_or_default(),
        address: j.address.clone(),
        technician_id: lead.map(|t| t.to_string()).unwrap_or_default(),
        helper_ids: helpers.iter().map(|t| t.to_string()).collect(),
    }
}

pub fn invoice_snapshot(i: &Invoice) -> bus::InvoiceSnapshot {
    bus::InvoiceSnapshot {
        invoice_id: i.id.clone(),
        number: i.number.clone(),
        amount_cents: i.amount_cents,
        currency: i.currency.clone(),
        url: i.url.clone(),
    }
}

pub fn payment_snapshot(p: &Payment) -> bus::PaymentSnapshot {
    bus::PaymentSnapshot {
        payment_id: p.id.clone(),
        amount_cents: p.amount_cents,
        currency: p.currency.clone(),
        invoice_id: p.invoice_id.clone(),
        receipt_url: p.receipt_url.clone().unwrap_or_default(),
    }
}
