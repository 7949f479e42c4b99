//! Templates end to end: a business owner publishes its own confirmation wording over gRPC
//! (TemplateService), books a job, and the SMS the provider receives and the email the SMTP server
//! receives say what the owner wrote, and GetMessage names the version; another account's owner
//! sees none of it; a reset brings the built-in wording back for the next booking. dispatch
//! killed between wording a message and publishing it sends those words once.

use std::time::Duration;

use chrono::Utc;
use messaging_integration_tests::client::{sim_messages, start_with, token_as, with_bearer};
use messaging_integration_tests::events::{account, customer, event, job};
use messaging_integration_tests::eventually;
use messaging_proto::v1::template_service_client::TemplateServiceClient;
use messaging_proto::v1::{
    Channel, GetMessageRequest, ListTemplatesRequest, MessageType, PublishTemplateRequest, ResetTemplateRequest,
    TemplateContent,
};
use serde_json::json;

const ACCOUNT: &str = "acc_ace";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_template_words_the_sms_the_provider_gets_and_the_email_the_relay_gets() -> anyhow::Result<()> {
    let setup = account("evt_acc", ACCOUNT, "America/Chicago", ("00:00", "00:00"));
    let (mut stack, publisher, dashboard) = start_with("templates", &setup).await?;
    let endpoint = format!("http://127.0.0.1:{}", stack.ports.grpc);
    let mut templates = TemplateServiceClient::connect(endpoint).await?;
    let owner = token_as(ACCOUNT, "owner");
    let confirmation = MessageType::AppointmentConfirmation as i32;
    let sms = TemplateContent {
        sms_body: "{{ business_name }} here! {{ customer_first_name | upper }}, your {{ job_title }} is booked for {{ job_window }}.".into(),
        ..Default::default()
    };
    let email = TemplateContent {
        subject: "Booked with {{ business_name }} on {{ job_date }}".into(),
        text: "Dear {{ customer_first_name }} {{ customer_last_name }},\nyour visit is set for {{ job_window }}.{% if technician_name %}\n{{ technician_name }} will come.{% endif %}".into(),
        ..Default::default()
    };
    for (channel, content, id) in [(Channel::Sms, sms, "t1"), (Channel::Email, email, "t2")] {
        let publish = PublishTemplateRequest {
            r#type: confirmation,
            channel: channel as i32,
            content: Some(content),
            request_id: id.into(),
        };
        templates.publish_template(with_bearer(publish, &owner)).await?;
    }
    // dispatch has both versions once every consumer is drained.
    stack.quiesce().await?;

    let dana = customer("cus_dana", "Dana Reyes", "+15125550199", "dana@example.com");
    let booked = json!({"customer": dana, "job": job("job_1", Utc::now() + chrono::Duration::days(2))});
    publisher.event(&event("e1", "job.scheduled", ACCOUNT, Utc::now(), booked)).await?;
    dashboard.settled(2).await?;
    let texts = sim_messages(stack.ports.sim).await?;
    let body = texts.iter().find(|m| m["to"] == "+15125550199").and_then(|m| m["body"].as_str()).unwrap_or_default();
    assert!(body.starts_with("Ace Plumbing here! DANA, your Water heater install is booked for "), "{body}");
    assert!(body.ends_with(". Reply STOP to opt out."), "the first SMS to a number keeps the notice: {body}");
    let mails = stack.mails();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert!(mails[0].contains("Subject: Booked with Ace Plumbing on "), "{}", mails[0]);
    let unfolded = mails[0].replace("=\r\n", "").replace("=\n", "");
    assert!(unfolded.contains("Dear Dana Reyes,") && unfolded.contains("Luis Ortega will come."), "{unfolded}");

    // Each message shows the version it was worded by.
    let worded_by = |customer: &'static str, channel: Channel| {
        let mut dashboard = dashboard.clone();
        async move {
            let found = dashboard.all().await.into_iter().find(|m| {
                m.channel == channel as i32 && m.customer.as_ref().is_some_and(|c| c.customer_id == customer)
            });
            let id = found.map(|m| m.message_id).unwrap_or_default();
            let got = dashboard.grpc().get_message(dashboard.authed(GetMessageRequest { message_id: id })).await;
            got.map(|r| r.into_inner()).map(|r| (r.template_version, r.template_fallback)).unwrap_or_default()
        }
    };
    assert_eq!(worded_by("cus_dana", Channel::Sms).await, (1, String::new()));
    assert_eq!(worded_by("cus_dana", Channel::Email).await, (1, String::new()));

    // Another account's owner sees only the built-in wording.
    let other = token_as("acc_other", "owner");
    let theirs = templates.list_templates(with_bearer(ListTemplatesRequest {}, &other)).await?.into_inner();
    assert!(theirs.templates.iter().all(|t| t.built_in && t.version == 0));

    // A reset: the next booking goes in the built-in wording again.
    let reset = ResetTemplateRequest { r#type: confirmation, channel: Channel::Sms as i32, request_id: "t3".into() };
    templates.reset_template(with_bearer(reset, &owner)).await?;
    stack.quiesce().await?;
    let pat = customer("cus_pat", "Pat Lee", "+15125550188", "");
    let booked = json!({"customer": pat, "job": job("job_2", Utc::now() + chrono::Duration::days(3))});
    publisher.event(&event("e2", "job.scheduled", ACCOUNT, Utc::now(), booked)).await?;
    dashboard.settled(3).await?;
    let texts = sim_messages(stack.ports.sim).await?;
    let body = texts.iter().find(|m| m["to"] == "+15125550188").and_then(|m| m["body"].as_str()).unwrap_or_default();
    assert!(body.contains("is confirmed for"), "the built-in wording: {body}");
    assert_eq!(worded_by("cus_pat", Channel::Sms).await, (0, String::new()), "version 0: the built-in wording");
    stack.stop().await;
    Ok(())
}

/// Publishes `body` as the SMS template of `kind`.
async fn word(
    templates: &mut TemplateServiceClient<tonic::transport::Channel>,
    owner: &str,
    kind: MessageType,
    body: &str,
    request_id: &str,
) -> anyhow::Result<()> {
    let content = TemplateContent { sms_body: body.into(), ..Default::default() };
    let publish = PublishTemplateRequest {
        r#type: kind as i32,
        channel: Channel::Sms as i32,
        content: Some(content),
        request_id: request_id.into(),
    };
    templates.publish_template(with_bearer(publish, owner)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_held_by_quiet_hours_takes_the_wording_current_when_it_goes_and_a_sent_one_keeps_its_own()
-> anyhow::Result<()> {
    // Quiet from an hour ago until two hours from now, Chicago time.
    let local = Utc::now().with_timezone(&chrono_tz::America::Chicago);
    let hhmm = |t: chrono::DateTime<chrono_tz::Tz>| t.format("%H:%M").to_string();
    let quiet = (hhmm(local - chrono::Duration::hours(1)), hhmm(local + chrono::Duration::hours(2)));
    let setup = account("evt_acc", ACCOUNT, "America/Chicago", (&quiet.0, &quiet.1));
    let (mut stack, publisher, dashboard) = start_with("templates-quiet", &setup).await?;
    let mut templates = TemplateServiceClient::connect(format!("http://127.0.0.1:{}", stack.ports.grpc)).await?;
    let owner = token_as(ACCOUNT, "owner");
    word(&mut templates, &owner, MessageType::AppointmentConfirmation, "v1: {{ customer_first_name }}, booked.", "c1")
        .await?;
    word(&mut templates, &owner, MessageType::OnMyWay, "v1: {{ technician_name }} is coming.", "o1").await?;
    stack.quiesce().await?;

    // The confirmation waits for quiet hours to end; on-my-way goes at once.
    let now = Utc::now();
    let dana = customer("cus_dana", "Dana Reyes", "+15125550199", "");
    let body = json!({"customer": dana, "job": job("job_1", now + chrono::Duration::days(2))});
    publisher.event(&event("e1", "job.scheduled", ACCOUNT, now, body.clone())).await?;
    publisher.event(&event("e2", "job.en_route", ACCOUNT, now, body)).await?;
    dashboard.settled(1).await?;
    stack.quiesce().await?;

    // Both templates change while the confirmation is held.
    word(&mut templates, &owner, MessageType::AppointmentConfirmation, "v2: {{ customer_first_name }}, booked.", "c2")
        .await?;
    word(&mut templates, &owner, MessageType::OnMyWay, "v2: {{ technician_name }} is coming.", "o2").await?;
    stack.quiesce().await?;
    let offset = (now + chrono::Duration::hours(2) + chrono::Duration::minutes(1) - Utc::now()).num_seconds();
    stack.restart_with("ingest", &[("MSG_SCHEDULER__CLOCK_OFFSET_SECS", offset.to_string())]).await?;
    dashboard.settled(2).await?;
    stack.quiesce().await?;

    let texts = sim_messages(stack.ports.sim).await?;
    let bodies: Vec<&str> = texts.iter().filter_map(|m| m["body"].as_str()).collect();
    assert_eq!(bodies.len(), 2, "{bodies:#?}");
    assert!(bodies[0].starts_with("v1: Luis Ortega is coming."), "sent before the change: {bodies:?}");
    assert!(bodies[1].starts_with("v2: Dana, booked."), "worded when it went: {bodies:?}");
    stack.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_killed_after_wording_a_message_sends_those_words_once_though_the_template_changed_meanwhile()
-> anyhow::Result<()> {
    let setup = account("evt_acc", ACCOUNT, "America/Chicago", ("00:00", "00:00"));
    let (mut stack, publisher, dashboard) = start_with("templates-crash", &setup).await?;
    let mut templates = TemplateServiceClient::connect(format!("http://127.0.0.1:{}", stack.ports.grpc)).await?;
    let owner = token_as(ACCOUNT, "owner");
    let confirmation = MessageType::AppointmentConfirmation;
    word(&mut templates, &owner, confirmation, "v1: {{ customer_first_name }}, booked.", "c1").await?;
    stack.quiesce().await?;

    // dispatch words and commits the message, then dies before publishing it or acking its request.
    stack.restart_with("dispatch", &[("MSG_CRASH_AT", "after_commit".to_owned())]).await?;
    let now = Utc::now();
    let dana = customer("cus_dana", "Dana Reyes", "+15125550199", "");
    let booked = json!({"customer": dana, "job": job("job_1", now + chrono::Duration::days(2))});
    publisher.event(&event("e1", "job.scheduled", ACCOUNT, now, booked)).await?;
    eventually(Duration::from_secs(30), "dispatch to die after its commit", || {
        let exited = stack.has_exited("dispatch");
        async move { exited.then_some(()) }
    })
    .await?;
    assert!(sim_messages(stack.ports.sim).await?.is_empty(), "nothing went out");

    // The owner publishes new wording while dispatch is down; the redelivered request finds its
    // message already worded and sends it as it was worded, once.
    word(&mut templates, &owner, confirmation, "v2: {{ customer_first_name }}, booked.", "c2").await?;
    stack.restart_with("dispatch", &[]).await?;
    dashboard.settled(1).await?;
    stack.quiesce().await?;
    let texts = sim_messages(stack.ports.sim).await?;
    let bodies: Vec<&str> = texts.iter().filter_map(|m| m["body"].as_str()).collect();
    assert_eq!(bodies.len(), 1, "{bodies:#?}");
    assert!(bodies[0].starts_with("v1: Dana, booked."), "{bodies:?}");

    // The next booking takes the new wording.
    let pat = customer("cus_pat", "Pat Lee", "+15125550188", "");
    let booked = json!({"customer": pat, "job": job("job_2", now + chrono::Duration::days(3))});
    publisher.event(&event("e2", "job.scheduled", ACCOUNT, Utc::now(), booked)).await?;
    dashboard.settled(2).await?;
    let texts = sim_messages(stack.ports.sim).await?;
    let pats = texts.iter().find(|m| m["to"] == "+15125550188").and_then(|m| m["body"].as_str()).unwrap_or_default();
    assert!(pats.starts_with("v2: Pat, booked."), "{pats}");
    stack.stop().await;
    Ok(())
}
