//! Golden tests for every template, SMS and email (`golden/<type>.txt`; `UPDATE_GOLDEN=1`
//! rewrites them), and the rules around them: escaping, data never being template code, length;
//! and the values a request gives the templates accounts word themselves.

use std::path::PathBuf;

use super::*;
use messaging_domain::Channel;
use messaging_domain::sms::segments;
use messaging_proto::bus::{AccountSnapshot, CustomerSnapshot, InvoiceSnapshot, JobSnapshot, PaymentSnapshot};

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
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A request with everything any template uses.
fn full(kind: MessageType) -> NotificationRequest {
    NotificationRequest {
        request_id: format!("evt_1:{}", kind.as_str()),
        r#type: kind.to_proto(),
        invoice: Some(InvoiceSnapshot {
            invoice_id: "inv_9".into(),
            number: "INV-1042".into(),
            amount_cents: 48_250,
            currency: "USD".into(),
            url: "https://pay.example.com/i/inv_9".into(),
        }),
        payment: Some(PaymentSnapshot {
            payment_id: "pay_3".into(),
            amount_cents: 48_250,
            currency: "USD".into(),
            invoice_id: "inv_9".into(),
            receipt_url: "https://pay.example.com/r/pay_3".into(),
        }),
        ..confirmation("Dana Reyes")
    }
}

/// Every type a template words: those an account may word itself too.
const AUTOMATED: &[MessageType] = messaging_templates::catalogue::AUTOMATIC;

fn golden_text(kind: MessageType) -> String {
    let request = full(kind);
    let text = sms(&request, kind).expect("renders");
    let first = with_opt_out_notice(&text);
    let counted = segments(&text);
    let mut golden = format!(
        "== sms ({}, {} segment(s)) ==\n{text}\n== first sms to a number ({} segment(s)) ==\n{first}\n",
        counted.encoding.as_str(),
        counted.count,
        segments(&first).count
    );
    // On-my-way's email is the SMS→email fallback's.
    let rendered = email(&request, kind).expect("renders");
    golden.push_str(&format!(
        "== email subject ==\n{}\n== email text ==\n{}== email html ==\n{}\n",
        rendered.subject, rendered.text, rendered.html
    ));
    golden
}

#[test]
fn every_template_matches_its_golden_file() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/render/golden");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for kind in AUTOMATED {
        let path = dir.join(format!("{}.txt", kind.as_str()));
        let actual = golden_text(*kind);
        if update {
            std::fs::create_dir_all(&dir).expect("golden dir");
            std::fs::write(&path, &actual).expect("golden file written");
            continue;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(actual, expected, "{} differs from its golden file (UPDATE_GOLDEN=1 rewrites it)", kind.as_str());
    }
}

#[test]
fn sms_bodies_stay_within_two_segments_even_the_first() {
    for kind in AUTOMATED {
        let text = with_opt_out_notice(&sms(&full(*kind), *kind).expect("renders"));
        let counted = segments(&text);
        assert!(counted.count <= 2, "{}: {} segments: {text}", kind.as_str(), counted.count);
    }
}

#[test]
fn appointment_confirmation_sms() {
    let text = sms(&confirmation("Dana Reyes"), MessageType::AppointmentConfirmation).expect("renders");
    assert_eq!(
        text,
        "Ace Plumbing: Hi Dana, your Water heater install is confirmed for Sat, Nov 28 between 9:00 AM and 11:00 AM. \
         Your technician is Luis Ortega."
    );
    assert_eq!(with_opt_out_notice(&text), format!("{text} Reply STOP to opt out."));
}

#[test]
fn a_template_missing_its_data_is_an_error_not_a_blank() {
    let mut request = full(MessageType::PaymentLink);
    request.invoice = None;
    assert_eq!(sms(&request, MessageType::PaymentLink), Err(RenderError::Missing("this message", "an invoice")));
    assert!(email(&request, MessageType::PaymentLink).is_err());
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

#[test]
fn a_request_with_all_its_data_gives_every_catalogue_variable_its_type_carries_formatted_as_the_built_ins() {
    for kind in AUTOMATED {
        let values = values(&full(*kind), *kind).expect("values");
        let carried: Vec<&str> = messaging_templates::catalogue::carried_by(*kind).map(|v| v.name).collect();
        assert_eq!(values.keys().copied().collect::<Vec<_>>().len(), carried.len(), "{kind}: {values:?}");
        assert!(carried.iter().all(|name| values.contains_key(name)), "{kind}: {values:?}");
    }
    let confirmation =
        values(&full(MessageType::AppointmentConfirmation), MessageType::AppointmentConfirmation).expect("values");
    let sms = sms(&full(MessageType::AppointmentConfirmation), MessageType::AppointmentConfirmation).expect("sms");
    assert!(sms.contains(&confirmation["job_window"]), "the window reads as the built-in wording has it: {sms}");
    assert_eq!(confirmation["customer_first_name"], "Dana");
    assert_eq!(confirmation["customer_last_name"], "Reyes");
    let receipt = values(&full(MessageType::PaymentReceipt), MessageType::PaymentReceipt).expect("values");
    assert!(receipt["payment_amount"].starts_with('$'), "{receipt:?}");
}

#[test]
fn the_built_in_wording_written_as_templates_renders_exactly_what_this_code_sends() {
    let variants = |kind: MessageType| -> Vec<NotificationRequest> {
        let mut plain = full(kind);
        if let Some(job) = plain.job.as_mut() {
            job.technician_name = " ".into();
            job.address = String::new();
            job.title = String::new();
        }
        if let Some(payment) = plain.payment.as_mut() {
            payment.receipt_url = String::new();
        }
        if let Some(customer) = plain.customer.as_mut() {
            customer.name = "Cher".into();
        }
        vec![full(kind), plain]
    };
    for kind in AUTOMATED {
        for request in variants(*kind) {
            let values = values(&request, *kind).expect("values");
            let source = messaging_templates::builtin(*kind, Channel::Sms).expect("an SMS built-in");
            let templated = messaging_templates::render(messaging_templates::Part::Sms, source.sms_body, &values);
            assert_eq!(templated.as_deref().ok(), sms(&request, *kind).ok().as_deref(), "{kind} sms");
            let Some(source) = messaging_templates::builtin(*kind, Channel::Email) else { continue };
            let built_in = email(&request, *kind).expect("email");
            let part = |part, source| messaging_templates::render(part, source, &values).expect("renders");
            let text = part(messaging_templates::Part::Text, source.text);
            assert_eq!(part(messaging_templates::Part::Subject, source.subject), built_in.subject, "{kind} subject");
            assert_eq!(text, built_in.text, "{kind} text");
            assert_eq!(html_of_text(&text), built_in.html, "{kind} html");
        }
    }
}
