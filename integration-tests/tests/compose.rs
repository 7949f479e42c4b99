//! Manual messages through `SendMessage`: one message per `request_id` however often and however
//! concurrently it is sent, delivered and shown in the customer's thread; a reused id with other
//! content, a malformed request, an unknown customer and every unreachable customer (no phone, no
//! email, a landline, STOP, SMS turned off) are refused with the right code and reason, and
//! nothing is sent for them; the thread names those reasons before a send, and shows every
//! message's whole text where the feed lists its preview.

use chrono::Utc;
use messaging_integration_tests::client::{Dashboard, sim_inbound, sim_requests, start_with};
use messaging_integration_tests::events::{account, business_number, customer, event, job};
use messaging_proto::v1::{
    Channel, GetMessageRequest, GetThreadRequest, MessageStatus, MessageType, SendMessageRequest,
};
use serde_json::json;

const ACCOUNT: &str = "acc_compose";
const DANA: &str = "+15125550199";
const OTTO: &str = "+15125550144";
const LANA: &str = "+15005550009";

fn sms(request_id: &str, customer_id: &str, text: &str) -> SendMessageRequest {
    SendMessageRequest {
        request_id: request_id.into(),
        customer_id: customer_id.into(),
        channel: Channel::Sms as i32,
        text: text.into(),
        subject: String::new(),
    }
}

async fn send(dashboard: &Dashboard, request: SendMessageRequest) -> Result<String, tonic::Status> {
    Ok(dashboard.grpc().send_message(dashboard.authed(request)).await?.into_inner().message_id)
}

async fn refused(dashboard: &Dashboard, request: SendMessageRequest) -> (tonic::Code, String) {
    match dashboard.grpc().send_message(dashboard.authed(request)).await {
        Ok(answer) => panic!("expected a refusal, got {answer:?}"),
        Err(status) => (status.code(), status.message().to_owned()),
    }
}

async fn bodies_to(sim: u16, to: &str) -> anyhow::Result<Vec<String>> {
    Ok(sim_requests(sim)
        .await?
        .iter()
        .filter(|r| r["to"] == to)
        .map(|r| r["body"].as_str().unwrap_or_default().to_owned())
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_messages_are_sent_once_and_unreachable_customers_refused() -> anyhow::Result<()> {
    let setup = account("evt_acc", ACCOUNT, "America/Chicago", ("00:00", "00:00"));
    let (mut stack, publisher, dashboard) = start_with("compose", &setup).await?;
    let sim = stack.ports.sim;
    let mut quiet = customer("cus_quiet", "Quinn Quiet", "+15125550166", "");
    quiet["notifications"]["sms"] = json!(false);
    let listed = [
        customer("cus_dana", "Dana Reyes", DANA, "dana@example.com"),
        customer("cus_sam", "Sam Ortiz", "+15125550133", ""),
        customer("cus_otto", "Otto Out", OTTO, ""),
        quiet,
    ];
    for (i, who) in listed.iter().enumerate() {
        publisher
            .event(&event(&format!("c{i}"), "customer.updated", ACCOUNT, Utc::now(), json!({"customer": who})))
            .await?;
    }
    // Lana's number is a landline: the provider refuses the confirmation (21614).
    let body = json!({"customer": customer("cus_lana", "Lana Landline", LANA, ""),
                      "job": job("job_lana", Utc::now() + chrono::Duration::days(3))});
    publisher.event(&event("e_lana", "job.scheduled", ACCOUNT, Utc::now(), body)).await?;
    // Otto texts STOP.
    sim_inbound(sim, OTTO, &business_number(ACCOUNT), "STOP").await?;
    dashboard.settled(1).await?;
    stack.quiesce().await?;

    // One message however often the same request arrives, concurrently or later.
    let text = "Running 10 minutes late, see you soon";
    let first = send(&dashboard, sms("req-1", "cus_dana", text)).await?;
    let mut racing = Vec::new();
    for _ in 0..8 {
        let dashboard = dashboard.clone();
        racing.push(tokio::spawn(async move { send(&dashboard, sms("req-1", "cus_dana", text)).await }));
    }
    for handle in racing {
        assert_eq!(handle.await??, first);
    }
    let concurrent: Vec<_> = (0..6)
        .map(|_| {
            let dashboard = dashboard.clone();
            tokio::spawn(async move { send(&dashboard, sms("req-2", "cus_sam", "Gate code please?")).await })
        })
        .collect();
    let mut second = Vec::new();
    for handle in concurrent {
        second.push(handle.await??);
    }
    second.dedup();
    assert_eq!(second.len(), 1, "concurrent first sends of one request id agree on one message");

    let email = SendMessageRequest {
        request_id: "req-3".into(),
        customer_id: "cus_dana".into(),
        channel: Channel::Email as i32,
        text: "Your estimate is attached to your portal.".into(),
        subject: "Your estimate".into(),
    };
    let email_id = send(&dashboard, email.clone()).await?;
    let thread =
        messaging_integration_tests::eventually(std::time::Duration::from_secs(60), "manual messages settled", || {
            let (mut dashboard, first, email_id) = (dashboard.clone(), first.clone(), email_id.clone());
            async move {
                let thread = dashboard.thread("cus_dana").await.ok()?;
                let delivered =
                    thread.iter().any(|m| m.message_id == first && m.status == MessageStatus::Delivered as i32);
                let sent = thread.iter().any(|m| m.message_id == email_id && m.status == MessageStatus::Sent as i32);
                (delivered && sent).then_some(thread)
            }
        })
        .await?;
    assert_eq!(thread.len(), 2);
    let manual = thread.iter().find(|m| m.message_id == first).expect("the SMS");
    assert_eq!(manual.r#type, MessageType::Manual as i32);
    assert!(manual.preview.starts_with(text), "{}", manual.preview);
    assert_eq!(thread.iter().find(|m| m.message_id == email_id).map(|m| m.subject.as_str()), Some("Your estimate"));
    stack.quiesce().await?;
    let to_dana = bodies_to(sim, DANA).await?;
    assert_eq!(to_dana.len(), 1, "one provider request for nine sends of req-1: {to_dana:?}");
    assert!(to_dana[0].starts_with(text), "{to_dana:?}");
    assert_eq!(bodies_to(sim, "+15125550133").await?.len(), 1);

    // The same request id with other content is refused; the original stands.
    let (status, _) = refused(&dashboard, sms("req-1", "cus_dana", "Something else")).await;
    assert_eq!(status, tonic::Code::AlreadyExists);
    assert_eq!(send(&dashboard, sms("req-1", "cus_dana", text)).await?, first, "a retry still gets the message");

    // Malformed requests.
    let long = "x".repeat(1601);
    for (request, why) in [
        (sms("", "cus_dana", "hi"), "no request id"),
        (sms("r", "", "hi"), "no customer"),
        (sms("r", "cus_dana", "   "), "blank text"),
        (sms("r", "cus_dana", &long), "an SMS over 1600 characters"),
        (SendMessageRequest { subject: "Hi".into(), ..sms("r", "cus_dana", "hi") }, "a subject on SMS"),
        (SendMessageRequest { subject: String::new(), ..email.clone() }, "an email without subject"),
        (SendMessageRequest { subject: "a\r\nBcc: x@evil.example".into(), ..email.clone() }, "a header in the subject"),
        (SendMessageRequest { channel: 0, ..sms("r", "cus_dana", "hi") }, "no channel"),
    ] {
        assert_eq!(refused(&dashboard, request).await.0, tonic::Code::InvalidArgument, "{why}");
    }
    assert_eq!(refused(&dashboard, sms("r", "cus_nobody", "hi")).await.0, tonic::Code::NotFound);

    // A long text is whole in the thread and in GetMessage, and only its preview in the feed.
    let long = (0..40).map(|i| format!("Step {i} done.")).collect::<Vec<_>>().join(" ");
    let long_id = send(&dashboard, sms("req-long", "cus_sam", &long)).await?;
    let listed = dashboard.clone().all().await;
    let row = listed.iter().find(|m| m.message_id == long_id).expect("listed");
    assert_eq!(row.preview.chars().count(), 160);
    assert!(row.body.is_empty(), "the feed lists previews only");
    let whole = dashboard.clone().thread("cus_sam").await?;
    let shown = whole.iter().find(|m| m.message_id == long_id).expect("in the thread");
    assert!(shown.body.starts_with(&long), "{} characters of {}", shown.body.chars().count(), long.chars().count());
    assert!(whole.iter().all(|m| !m.body.is_empty()), "every message in a thread carries its text");
    let got = dashboard
        .grpc()
        .get_message(dashboard.authed(GetMessageRequest { message_id: long_id.clone() }))
        .await?
        .into_inner();
    assert!(got.message.expect("message").body.starts_with(&long));
    stack.quiesce().await?;
    let sent = bodies_to(sim, "+15125550133").await?;
    let shown = dashboard.clone().thread("cus_sam").await?;
    let stored = &shown.iter().find(|m| m.message_id == long_id).expect("in the thread").body;
    assert!(sent.contains(stored), "the thread shows exactly what the provider was given");

    // Customers the message cannot reach, each with its reason.
    let no_email = SendMessageRequest { customer_id: "cus_sam".into(), request_id: "r-sam".into(), ..email.clone() };
    for (request, reason) in [
        (no_email, "no_email"),
        (sms("r-lana", "cus_lana", "hi"), "landline"),
        (sms("r-otto", "cus_otto", "hi"), "opted_out"),
        (sms("r-quiet", "cus_quiet", "hi"), "sms_off"),
    ] {
        let (status, message) = refused(&dashboard, request).await;
        assert_eq!(status, tonic::Code::FailedPrecondition, "{reason}: {message}");
        assert!(message.starts_with(reason), "{reason}: {message}");
    }
    stack.quiesce().await?;
    assert!(bodies_to(sim, OTTO).await?.is_empty(), "nothing to the opted-out number");
    assert_eq!(bodies_to(sim, LANA).await?.len(), 1, "only the automated attempt reached the provider");
    assert!(bodies_to(sim, "+15125550166").await?.is_empty());
    let all = dashboard.clone().all().await;
    let manual = all.iter().filter(|m| m.r#type == MessageType::Manual as i32).count();
    assert_eq!(manual, 4, "req-1, req-2, the email and the long one; refusals left nothing behind");

    // The thread says up front what a send would be refused for, with the same reasons.
    for (customer, sms_reason, email_reason) in [
        ("cus_dana", "", ""),
        ("cus_sam", "", "no_email"),
        ("cus_lana", "landline", "no_email"),
        ("cus_otto", "opted_out", "no_email"),
        ("cus_quiet", "sms_off", "no_email"),
    ] {
        let request = GetThreadRequest { customer_id: customer.into(), ..Default::default() };
        let reach = dashboard.grpc().get_thread(dashboard.authed(request)).await?.into_inner().reach;
        let of = |channel: Channel| reach.iter().find(|r| r.channel == channel as i32).expect("both channels");
        for (channel, reason) in [(Channel::Sms, sms_reason), (Channel::Email, email_reason)] {
            let r = of(channel);
            assert_eq!((r.reachable, r.reason.as_str()), (reason.is_empty(), reason), "{customer} {channel:?}");
            assert_eq!(r.detail.is_empty(), reason.is_empty());
        }
    }
    stack.stop().await;
    Ok(())
}
