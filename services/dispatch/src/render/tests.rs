//! Golden tests for the templates that exist so far.

use super::*;
use messaging_proto::bus::{AccountSnapshot, CustomerSnapshot, JobSnapshot};

fn confirmation(customer_name: &str) -> NotificationRequest {
    NotificationRequest {
        request_id: "evt_1:appointment_confirmation".into(),
        r#type: MessageType::AppointmentConfirmation.to_proto(),
        account: Some(AccountSnapshot {
            account_id: "acc_ace".into(),
            name: "Ace Plumbing".into(),
            timezone: "America/Chicago".into(),
            sms_number: "+15125550100".into(),
            email_from: "office@ace.example".into(),
            ..Default::default()
        }),
        customer: Some(CustomerSnapshot {
            customer_id: "cus_42".into(),
            name: customer_name.into(),
            phone: "+15125550199".into(),
            email: "dana@example.com".into(),
            sms_allowed: true,
            email_allowed: true,
        }),
        job: Some(JobSnapshot {
            job_id: "job_7".into(),
            title: "Water heater install".into(),
            starts_at: Some(prost_types::Timestamp { seconds: 1_795_878_000, nanos: 0 }), // 2026-11-28T15:00Z
            ends_at: Some(prost_types::Timestamp { seconds: 1_795_885_200, nanos: 0 }),
            technician_name: "Luis Ortega".into(),
            address: "12 Elm St, Austin, TX".into(),
        }),
        ..Default::default()
    }
}

#[test]
fn appointment_confirmation_sms() {
    let text = sms(&confirmation("Dana Reyes"), MessageType::AppointmentConfirmation).expect("renders");
    assert_eq!(
        text,
        "Ace Plumbing: Hi Dana, your Water heater install is confirmed for Sat, Nov 28 between 9:00 AM and 11:00 AM. \
         Your technician is Luis Ortega. Reply STOP to opt out."
    );
}

#[test]
fn appointment_confirmation_email() {
    let rendered = email(&confirmation("Dana Reyes"), MessageType::AppointmentConfirmation).expect("renders");
    assert_eq!(rendered.subject, "Your appointment with Ace Plumbing is confirmed");
    assert_eq!(
        rendered.text,
        "Hi Dana,\nyour Water heater install is confirmed for Sat, Nov 28 between 9:00 AM and 11:00 AM.\n\
         Your technician is Luis Ortega.\nAddress: 12 Elm St, Austin, TX\n\nAce Plumbing\n"
    );
    assert!(rendered.html.contains("<p>Hi Dana,</p>"));
}

#[test]
fn customer_text_is_escaped_in_html_and_never_interpreted() {
    let rendered = email(&confirmation("<script>alert(1)</script> {{ secret }}"), MessageType::AppointmentConfirmation)
        .expect("renders");
    assert!(rendered.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!rendered.html.contains("<script>"));
    let text = sms(&confirmation("{business} %s"), MessageType::AppointmentConfirmation).expect("renders");
    assert!(text.contains("Hi {business},"));
}

#[test]
fn money_formats() {
    assert_eq!(money(123_450, "USD"), "$1,234.50");
    assert_eq!(money(5, "usd"), "$0.05");
    assert_eq!(money(100_000_000, "EUR"), "1,000,000.00 EUR");
}
