//! Builds the notification requests dispatch renders from: each carries the account, customer
//! and job snapshot it needs, so dispatch never reads ingest's tables.

use messaging_domain::event::{Contact, Invoice, JobEvent, JobInput, Payment};
use messaging_domain::{AccountId, Channel, MessageType};
use messaging_platform::bus::OutboxMessage;
use messaging_proto::bus;
use messaging_proto::time::timestamp;
use prost::Message as _;

use crate::store::StoredAccount;

/// What a notification is about, beyond the customer.
#[derive(Default)]
pub struct Subject<'a> {
    pub job: Option<&'a JobInput>,
    pub invoice: Option<&'a Invoice>,
    pub payment: Option<&'a Payment>,
}

/// One notification request for `event`, as an outbox row for `notify.<account>`.
pub fn request(
    event: &JobEvent,
    kind: MessageType,
    channels: &[Channel],
    account: &StoredAccount,
    contact: &Contact,
    about: Subject<'_>,
) -> OutboxMessage {
    let request_id = format!("{}:{}", event.event_id, kind.as_str());
    let request = bus::NotificationRequest {
        request_id: request_id.clone(),
        event_id: event.event_id.to_string(),
        r#type: kind.to_proto(),
        account: Some(account_snapshot(&event.account_id, account)),
        customer: Some(customer_snapshot(contact)),
        job: about.job.map(job_snapshot),
        invoice: about.invoice.map(|i| bus::InvoiceSnapshot {
            invoice_id: i.id.clone(),
            number: i.number.clone(),
            amount_cents: i.amount_cents,
            currency: i.currency.clone(),
            url: i.url.clone(),
        }),
        payment: about.payment.map(|p| bus::PaymentSnapshot {
            payment_id: p.id.clone(),
            amount_cents: p.amount_cents,
            currency: p.currency.clone(),
            invoice_id: p.invoice_id.clone(),
            receipt_url: p.receipt_url.clone().unwrap_or_default(),
        }),
        channels: channels.iter().map(|c| c.to_proto()).collect(),
        manual_text: String::new(),
        manual_subject: String::new(),
        requested_at: Some(timestamp(event.occurred_at)),
    };
    OutboxMessage {
        id: format!("notify:{request_id}"),
        subject: format!("notify.{}", event.account_id),
        payload: request.encode_to_vec(),
    }
}

fn account_snapshot(id: &AccountId, a: &StoredAccount) -> bus::AccountSnapshot {
    bus::AccountSnapshot {
        account_id: id.to_string(),
        name: a.name.clone(),
        timezone: a.timezone.clone(),
        sms_number: a.sms_number.clone(),
        email_from: a.email_from.clone(),
        reminder_time: a.reminder_time.format("%H:%M").to_string(),
        quiet_start: a.quiet_start.format("%H:%M").to_string(),
        quiet_end: a.quiet_end.format("%H:%M").to_string(),
    }
}

fn customer_snapshot(c: &Contact) -> bus::CustomerSnapshot {
    bus::CustomerSnapshot {
        customer_id: c.customer_id.to_string(),
        name: c.name.clone(),
        phone: c.phone.as_ref().map(|p| p.to_string()).unwrap_or_default(),
        email: c.email.clone().unwrap_or_default(),
        sms_allowed: c.preferences.sms,
        email_allowed: c.preferences.email,
    }
}

fn job_snapshot(j: &JobInput) -> bus::JobSnapshot {
    bus::JobSnapshot {
        job_id: j.id.to_string(),
        title: j.title.clone(),
        starts_at: Some(timestamp(j.starts_at)),
        ends_at: Some(timestamp(j.ends_at)),
        technician_name: j.technician.as_ref().map(|t| t.name.clone()).unwrap_or_default(),
        address: j.address.clone(),
    }
}
