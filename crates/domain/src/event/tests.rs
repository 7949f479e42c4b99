//! Tests for job-event parsing: every refusal the dead-letter subject must explain.

use super::*;

fn scheduled() -> serde_json::Value {
    serde_json::json!({
        "event_id": "evt_1", "type": "job.scheduled", "occurred_at": "2026-11-26T15:04:05Z",
        "account_id": "acc_ace", "extra_field": {"ignored": true},
        "customer": {"id": "cus_42", "name": "Dana Reyes", "phone": "+1 (512) 555-0199",
                     "email": "dana@example.com", "notifications": {"sms": true, "email": true}},
        "job": {"id": "job_7", "title": "Water heater install",
                "starts_at": "2026-11-28T15:00:00Z", "ends_at": "2026-11-28T17:00:00Z",
                "technician": {"name": "Luis Ortega"}, "address": "12 Elm St, Austin, TX"}
    })
}

fn parse(value: &serde_json::Value) -> Result<JobEvent, EventError> {
    let subject =
        format!("jobs.{}.{}", value["account_id"].as_str().unwrap_or(""), value["type"].as_str().unwrap_or(""));
    parse_job_event(&subject, value.to_string().as_bytes(), now())
}

fn now() -> DateTime<Utc> {
    "2026-11-26T15:05:00Z".parse().expect("time")
}

#[test]
fn parses_the_documented_example() {
    let event = parse(&scheduled()).expect("valid");
    let EventKind::JobScheduled(customer, job) = &event.kind else { panic!("wrong kind") };
    assert_eq!(job.technician.as_ref().map(|t| t.name.as_str()), Some("Luis Ortega"));
    let contact = customer.contact(PhoneRegion::US);
    assert_eq!(contact.phone.map(|p| p.to_string()), Some("+15125550199".to_owned()));
}

#[test]
fn refuses_malformed_json() {
    assert!(matches!(
        parse_job_event("jobs.acc_ace.job.scheduled", b"{not json", now()),
        Err(EventError::Malformed(_))
    ));
}

#[test]
fn refuses_unknown_types() {
    let mut event = scheduled();
    event["type"] = "job.exploded".into();
    assert!(matches!(parse(&event), Err(EventError::UnknownType(t)) if t == "job.exploded"));
}

#[test]
fn refuses_missing_customer() {
    let mut event = scheduled();
    event.as_object_mut().map(|o| o.remove("customer"));
    assert_eq!(parse(&event), Err(EventError::Missing("customer")));
}

#[test]
fn refuses_a_subject_for_another_account() {
    let event = scheduled();
    let result = parse_job_event("jobs.acc_other.job.scheduled", event.to_string().as_bytes(), now());
    assert!(matches!(result, Err(EventError::SubjectMismatch { .. })));
}

#[test]
fn an_unusable_phone_or_email_is_set_aside_with_its_reason_and_the_rest_kept() {
    let mut event = scheduled();
    event["customer"]["phone"] = "call the office".into();
    let parsed = parse(&event).expect("shape is fine");
    let contact = parsed.kind.customer().expect("customer").contact(PhoneRegion::US);
    assert_eq!(contact.phone, None);
    let (given, why) = contact.unusable_phone.clone().expect("set aside");
    assert_eq!(given, "call the office");
    assert!(!why.is_empty());
    assert!(contact.email.is_some() && contact.unusable_email.is_none(), "the email is still usable: {contact:?}");

    event["customer"]["phone"] = "".into();
    event["customer"]["email"] = "dana at example".into();
    let contact = parse(&event).expect("fine").kind.customer().expect("customer").contact(PhoneRegion::US);
    assert_eq!((contact.phone, contact.unusable_phone), (None, None), "no phone given is not an unusable one");
    assert_eq!(contact.unusable_email.map(|(given, _)| given).as_deref(), Some("dana at example"));
}

#[test]
fn account_defaults_apply() {
    let event = serde_json::json!({
        "event_id": "evt_2", "type": "account.updated", "occurred_at": "2026-11-26T15:04:05Z", "account_id": "acc_ace",
        "account": {"name": "Ace Plumbing", "timezone": "America/Chicago", "sms_number": "+15125550100", "email_from": "office@ace.example"}
    });
    let EventKind::AccountUpdated(settings) = parse(&event).expect("valid").kind else { panic!("kind") };
    assert_eq!(settings.reminder_time, NaiveTime::from_hms_opt(9, 0, 0).expect("time"));
    assert_eq!(settings.quiet_start, NaiveTime::from_hms_opt(21, 0, 0).expect("time"));
    assert_eq!(settings.timezone, chrono_tz::America::Chicago);
    assert_eq!(settings.sms_registration, None, "not reported: not tracked");
    assert!(settings.email_fallback, "SMS→email fallback is on unless turned off");
}

#[test]
fn email_fallback_can_be_turned_off_and_must_be_a_boolean() {
    let with = |fallback: serde_json::Value| {
        serde_json::json!({
            "event_id": "evt_3", "type": "account.updated", "occurred_at": "2026-11-26T15:04:05Z", "account_id": "acc_ace",
            "account": {"name": "Ace Plumbing", "timezone": "America/Chicago", "sms_number": "+15125550100",
                        "email_from": "office@ace.example", "email_fallback": fallback}
        })
    };
    let EventKind::AccountUpdated(settings) = parse(&with(serde_json::json!(false))).expect("valid").kind else {
        panic!("kind")
    };
    assert!(!settings.email_fallback);
    assert!(parse(&with(serde_json::json!("no"))).is_err(), "a string is not a switch");
}

#[test]
fn an_sms_registration_is_read_and_a_bad_one_refused() {
    let with = |registration: serde_json::Value| {
        serde_json::json!({
            "event_id": "evt_4", "type": "account.updated", "occurred_at": "2026-11-26T15:04:05Z", "account_id": "acc_ace",
            "account": {"name": "Ace", "timezone": "America/Chicago", "sms_number": "+15125550100",
                        "email_from": "office@ace.example", "sms_registration": registration}
        })
    };
    let event =
        with(serde_json::json!({"status": "rejected", "reason": " Brand information does not match EIN records "}));
    let EventKind::AccountUpdated(settings) = parse(&event).expect("valid").kind else { panic!("kind") };
    let expected = crate::registration::SmsRegistration {
        state: crate::registration::Registration::Rejected,
        reason: "Brand information does not match EIN records".into(),
    };
    assert_eq!(settings.sms_registration, Some(expected));
    for (bad, field) in [
        (serde_json::json!({"status": "approved"}), "account.sms_registration.status"),
        (serde_json::json!({"status": "rejected", "reason": "x".repeat(501)}), "account.sms_registration.reason"),
        (serde_json::json!({"status": "rejected", "reason": "a\nb"}), "account.sms_registration.reason"),
    ] {
        assert!(matches!(parse(&with(bad)), Err(EventError::Invalid { field: f, .. }) if f == field), "{field}");
    }
}

#[test]
fn refuses_a_bad_zone() {
    let event = serde_json::json!({
        "event_id": "evt_3", "type": "account.updated", "occurred_at": "2026-11-26T15:04:05Z", "account_id": "acc_ace",
        "account": {"name": "Ace", "timezone": "Mars/Olympus", "sms_number": "+15125550100", "email_from": "office@ace.example"}
    });
    assert!(matches!(parse(&event), Err(EventError::Invalid { field: "account.timezone", .. })));
}

#[test]
fn refuses_bad_ids() {
    let mut event = scheduled();
    event["event_id"] = "evt 1".into();
    assert!(matches!(parse(&event), Err(EventError::Malformed(_))));
}

#[test]
fn emails() {
    assert!(check_email("dana@example.com").is_ok());
    for bad in ["dana", "dana@", "@x.com", "dana@example", "da na@example.com", "dana@example.com\r\nBcc: x@y.z"] {
        assert!(check_email(bad).is_err(), "{bad}");
    }
}

#[test]
fn job_times_keep_microseconds_as_storage_does() {
    let mut raw = scheduled();
    raw["job"]["starts_at"] = "2026-11-28T15:00:00.123456789Z".into();
    let event = parse(&raw).expect("valid");
    let EventKind::JobScheduled(_, job) = event.kind else { panic!("a scheduled job") };
    assert_eq!(job.starts_at.to_rfc3339(), "2026-11-28T15:00:00.123456+00:00");
}

#[test]
fn refuses_an_oversized_event_and_every_overlong_field_naming_it() {
    let mut huge = scheduled();
    huge["job"]["title"] = "'".repeat(200_000).into();
    assert!(matches!(parse(&huge), Err(EventError::TooLarge(_))), "{:?}", parse(&huge));
    for (path, max) in [("title", 200), ("address", 500)] {
        let mut event = scheduled();
        event["job"][path] = "x".repeat(max).into();
        assert!(parse(&event).is_ok(), "{path} at its cap is fine");
        event["job"][path] = "x".repeat(max + 1).into();
        let refused = parse(&event).expect_err("over the cap");
        assert!(refused.to_string().contains(&format!("job.{path} is {} characters", max + 1)), "{refused}");
    }
    let mut event = scheduled();
    event["customer"]["name"] = "é".repeat(201).into();
    assert!(matches!(parse(&event), Err(EventError::TooLong { field: "customer.name", .. })));
}

#[test]
fn refuses_an_event_from_the_future_but_allows_a_little_clock_skew() {
    let mut event = scheduled();
    event["occurred_at"] = "2026-11-26T15:09:00Z".into();
    assert!(parse(&event).is_ok(), "four minutes ahead is skew");
    event["occurred_at"] = "3000-01-01T00:00:00Z".into();
    let refused = parse(&event).expect_err("from the future");
    assert!(refused.to_string().contains("occurred_at"), "{refused}");
}

#[test]
fn technicians_are_named_by_id_lead_first_each_once_and_ids_stay_optional() {
    let mut event = scheduled();
    event["job"]["technician"] = serde_json::json!({"id": "tech_luis", "name": "Luis Ortega"});
    event["job"]["helpers"] = serde_json::json!([
        {"id": "tech_kim", "name": "Kim Alvarez"}, {"id": "tech_luis"}, {"name": "No Id"}, {"id": "tech_kim"}
    ]);
    let parsed = parse(&event).expect("valid");
    let EventKind::JobScheduled(_, job) = &parsed.kind else { panic!("wrong kind") };
    let (lead, helpers) = job.technician_ids();
    assert_eq!(lead.map(|t| t.as_str()), Some("tech_luis"));
    assert_eq!(helpers.iter().map(|t| t.as_str()).collect::<Vec<_>>(), ["tech_kim"]);
    // An event from before technician ids still parses, with no one assigned by id.
    let EventKind::JobScheduled(_, old) = parse(&scheduled()).expect("valid").kind else { panic!("kind") };
    assert_eq!(old.technician_ids(), (None, vec![]));

    event["job"]["helpers"] = serde_json::json!([{"id": "tech kim"}]);
    assert!(parse(&event).is_err(), "an id that is not a subject-safe token");
    event["job"]["helpers"] =
        serde_json::Value::Array((0..21).map(|n| serde_json::json!({"id": format!("t{n}")})).collect());
    assert!(matches!(parse(&event), Err(EventError::Invalid { field: "job.helpers", .. })));
}
