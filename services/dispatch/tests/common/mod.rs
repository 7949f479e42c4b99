//! Notification requests as ingest makes them, for dispatch's tests.
//! Each test binary uses part of it.
#![allow(dead_code)]

use messaging_dispatch::Dispatcher;
use messaging_domain::{Channel, MessageType};
use messaging_integration_tests::Database;
use messaging_integration_tests::database::delivery;
use messaging_platform::bus::{Delivery, Relay};
use messaging_proto::bus::{AccountSnapshot, CustomerSnapshot, JobSnapshot, NotificationRequest};

/// Request `id` (a repeat is a redelivery): its type, customer and channels follow from the id.
pub fn request(account: &str, id: usize) -> Delivery {
    delivery(&notification(account, id))
}

/// The request [`request`] delivers.
pub fn notification(account: &str, id: usize) -> NotificationRequest {
    let (kind, customer, channels) = (id % 3, (id / 3) % 4, (id * 7) % 3);
    let kind = [MessageType::AppointmentConfirmation, MessageType::OnMyWay, MessageType::PaymentReceipt][kind];
    // Customers 0 and 1 share a number; customer 3's number opted out.
    let phone = format!("+1512555{:04}", [100, 100, 101, 102][customer]);
    let channels = match channels {
        0 => vec![],
        1 => vec![Channel::Sms.to_proto()],
        _ => vec![Channel::Email.to_proto()],
    };
    let starts = prost_types::Timestamp { seconds: 1_900_000_000, nanos: 0 };
    NotificationRequest {
        request_id: format!("{account}_r{id}"),
        event_id: format!("{account}_e{id}"),
        r#type: kind.to_proto(),
        account: Some(AccountSnapshot {
            account_id: account.to_owned(),
            name: "Ace Plumbing".into(),
            timezone: "America/Chicago".into(),
            sms_number: "+15125550100".into(),
            email_from: "office@ace.example".into(),
            reminder_time: "09:00".into(),
            quiet_start: "21:00".into(),
            quiet_end: "08:00".into(),
            ..Default::default()
        }),
        customer: Some(CustomerSnapshot {
            customer_id: format!("cus_{customer}"),
            name: "Dana Reyes".into(),
            phone,
            email: format!("cus_{customer}@example.com"),
            sms_allowed: true,
            email_allowed: customer != 2,
        }),
        job: Some(JobSnapshot {
            job_id: "job_1".into(),
            title: "Water heater".into(),
            starts_at: Some(starts),
            ends_at: Some(prost_types::Timestamp { seconds: starts.seconds + 7200, nanos: 0 }),
            technician_name: "Luis".into(),
            address: "12 Elm St".into(),
            ..Default::default()
        }),
        payment: Some(messaging_proto::bus::PaymentSnapshot {
            payment_id: "pay_1".into(),
            amount_cents: 12_500,
            currency: "USD".into(),
            invoice_id: "inv_1".into(),
            receipt_url: String::new(),
        }),
        channels,
        requested_at: Some(starts),
        ..Default::default()
    }
}

/// A dispatcher on `database` and its NATS, as the service builds it (900 s on-my-way validity).
pub async fn dispatcher(database: &Database) -> Dispatcher {
    Dispatcher::new(relay(database).await, 900)
}

/// dispatch's outbox relay on `database` and its NATS.
pub async fn relay(database: &Database) -> Relay {
    let jetstream = async_nats::jetstream::new(async_nats::connect(database.infra.nats_url()).await.expect("nats"));
    Relay::new(database.pool.clone(), jetstream, "dispatch", 1 << 20)
}
