//! Technician-scoped access, end to end: job events name technicians by id; a technician's token
//! sees only the customers of jobs they work, as lead or helper, now or recently (a job completed
//! past the window drops out), in every call — lists with filters and search, threads, messages,
//! counts, marking read, sending, resending, what waits, a template preview with a real job — and
//! in WatchFeed, which follows a reassignment; anything else answers exactly as another account's
//! would, and threads of senders no customer owns are the office's alone.

use std::time::Duration;

use chrono::Utc;
use messaging_integration_tests::client::{
    Dashboard, code, sim_inbound, start_with, technician_token, token_as, with_bearer,
};
use messaging_integration_tests::events::{account, business_number, customer, event, invoice, job};
use messaging_integration_tests::eventually;
use messaging_proto::v1::template_service_client::TemplateServiceClient;
use messaging_proto::v1::{
    AttachThreadRequest, Channel, GetCountsRequest, GetMessageRequest, ListMessagesRequest, ListWaitingRequest,
    MarkReadRequest, Message, MessageType, PreviewTemplateRequest, ReplyToSenderRequest, ResendMessageRequest,
    SendMessageRequest, WatchFeedRequest, WatchFeedResponse,
};
use serde_json::{Value, json};
use tonic::Streaming;

const ACCOUNT: &str = "acc_techs";
const STRANGER: &str = "+15125550299";

/// A job starting `starts_in` from now, worked by `lead` with `helpers`.
fn worked(id: &str, starts_in: chrono::Duration, lead: &str, helpers: &[&str]) -> Value {
    let mut job = job(id, Utc::now() + starts_in);
    job["technician"] = json!({"id": lead, "name": format!("Tech {lead}")});
    job["helpers"] = Value::Array(helpers.iter().map(|h| json!({"id": h, "name": format!("Tech {h}")})).collect());
    job
}

fn phone(n: u32) -> String {
    format!("+1512555{:04}", 200 + n)
}

/// Every customer id among `messages` ("" for a sender no customer owns).
fn customers(messages: &[Message]) -> std::collections::BTreeSet<String> {
    messages.iter().map(|m| m.customer.clone().unwrap_or_default().customer_id).collect()
}

fn set(ids: &[&str]) -> std::collections::BTreeSet<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

/// Reads `stream` until a message whose preview is `text` arrives; returns every message read.
async fn until_text(stream: &mut Streaming<WatchFeedResponse>, text: &str) -> anyhow::Result<Vec<Message>> {
    let mut seen = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(30), stream.message()).await;
        let Some(change) = next.map_err(|_| anyhow::anyhow!("{text:?} never came"))?? else {
            anyhow::bail!("the stream ended before {text:?}");
        };
        if let Some(message) = change.message {
            let found = message.preview == text;
            seen.push(message);
            if found {
                return Ok(seen);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_technician_sees_only_the_customers_of_their_jobs_in_every_call() -> anyhow::Result<()> {
    let setup = account("evt_acc", ACCOUNT, "America/Chicago", ("00:00", "00:00"));
    let (mut stack, publisher, office) = start_with("technicians", &setup).await?;
    let days = chrono::Duration::days;
    let booked = [
        ("cus_dana", "Dana Reyes", worked("job_1", days(3), "tech_a", &["tech_b"])),
        ("cus_sam", "Sam Ortiz", worked("job_2", days(3), "tech_b", &[])),
        ("cus_pat", "Pat Quinn", worked("job_3", days(4), "tech_c", &[])),
    ];
    for (n, (id, name, job)) in booked.iter().enumerate() {
        let who = customer(id, name, &phone(n as u32), &format!("{id}@example.com"));
        let body = json!({"customer": who, "job": job});
        publisher.event(&event(&format!("e_{id}"), "job.scheduled", ACCOUNT, Utc::now(), body)).await?;
    }
    // Jobs tech_a finished: yesterday (still theirs) and 30 days ago (past the 14-day window).
    for (n, (id, name, ago)) in [("cus_rae", "Rae Lin", 1), ("cus_ola", "Ola Berg", 30)].into_iter().enumerate() {
        let who = customer(id, name, &phone(10 + n as u32), &format!("{id}@example.com"));
        let body = json!({"customer": who, "job": worked(&format!("job_{id}"), -days(ago), "tech_a", &[]),
                          "invoice": invoice(&format!("inv_{id}"))});
        publisher.event(&event(&format!("e_{id}"), "job.completed", ACCOUNT, Utc::now() - days(ago), body)).await?;
    }
    // Replies come once delivery-status knows the customers, so each joins its customer's thread.
    stack.quiesce().await?;
    let business = business_number(ACCOUNT);
    sim_inbound(stack.ports.sim, STRANGER, &business, "Who is this?").await?;
    sim_inbound(stack.ports.sim, &phone(0), &business, "See you then").await?;
    sim_inbound(stack.ports.sim, &phone(1), &business, "Thanks").await?;
    let all = office.settled(13).await?;
    stack.quiesce().await?;
    assert_eq!(customers(&all), set(&["", "cus_dana", "cus_sam", "cus_pat", "cus_rae", "cus_ola"]));

    let port = stack.ports.grpc;
    let mut tech_a = Dashboard::connect_with(port, technician_token(ACCOUNT, "tech_a")).await?;
    let mut tech_b = Dashboard::connect_with(port, technician_token(ACCOUNT, "tech_b")).await?;
    let rival = Dashboard::connect(port, "acc_rival").await?;
    let listed = tech_a.all().await;
    assert_eq!(customers(&listed), set(&["cus_dana", "cus_rae"]), "lead now, and a job finished yesterday");
    assert_eq!(customers(&tech_b.all().await), set(&["cus_dana", "cus_sam"]), "helper on one job, lead on another");

    // Filters and search stay inside the scope.
    let search = |query: &str| ListMessagesRequest { query: query.into(), page_size: 200, ..Default::default() };
    assert!(tech_a.list(search("Sam")).await?.is_empty(), "a name outside the scope finds nothing");
    assert!(tech_a.list(search(&phone(1)[5..])).await?.is_empty(), "nor a phone fragment");
    assert!(tech_a.list(search("5550299")).await?.is_empty(), "nor a stranger's number");
    assert_eq!(customers(&tech_a.list(search("Dana")).await?), set(&["cus_dana"]));
    let sms = ListMessagesRequest { channels: vec![Channel::Sms as i32], page_size: 200, ..Default::default() };
    let texts = tech_a.list(sms).await?;
    assert!(!texts.is_empty() && customers(&texts).is_subset(&set(&["cus_dana", "cus_rae"])));

    // Out of scope is not found, word for word as another account's.
    let sams = all.iter().find(|m| m.customer.as_ref().is_some_and(|c| c.customer_id == "cus_sam"));
    let sams = sams.map(|m| m.message_id.clone()).unwrap_or_default();
    let get = |d: &Dashboard, id: &str| {
        let (mut client, request) = (d.grpc(), d.authed(GetMessageRequest { message_id: id.to_owned() }));
        async move { client.get_message(request).await.err().map(|s| (s.code(), s.message().to_owned())) }
    };
    assert_eq!(get(&tech_a, &sams).await, get(&rival, &sams).await);
    assert_eq!(get(&tech_a, &sams).await.map(|(c, _)| c), Some(tonic::Code::NotFound));
    for thread in ["cus_sam", "cus_pat", "cus_ola", STRANGER] {
        assert_eq!(code(tech_a.thread(thread).await), tonic::Code::NotFound, "{thread}");
    }
    assert!(tech_a.thread("cus_rae").await.is_ok());

    // Counts and marking read: only the technician's threads.
    let counts = |d: &Dashboard| {
        let (mut client, request) = (d.grpc(), d.authed(GetCountsRequest::default()));
        async move { client.get_counts(request).await.map(|r| r.into_inner()) }
    };
    let theirs = counts(&tech_a).await?;
    assert_eq!(theirs.unread_total, 1, "Dana's reply only: {theirs:?}");
    assert_eq!(theirs.threads.iter().map(|t| t.customer_id.as_str()).collect::<Vec<_>>(), ["cus_dana"]);
    assert_eq!(counts(&office).await?.unread_total, 3);
    let mark = |d: &Dashboard, customer_id: &str| {
        let request = MarkReadRequest { customer_id: customer_id.to_owned(), ..Default::default() };
        let (mut client, request) = (d.grpc(), d.authed(request));
        async move { client.mark_read(request).await.map(|r| r.into_inner().marked) }
    };
    assert_eq!(mark(&tech_a, "cus_sam").await?, 0);
    assert_eq!(mark(&tech_a, STRANGER).await?, 0);
    let sams_reply = all.iter().find(|m| m.preview == "Thanks").map(|m| m.message_id.clone()).unwrap_or_default();
    let by_id = MarkReadRequest { message_ids: vec![sams_reply], ..Default::default() };
    assert_eq!(tech_a.grpc().mark_read(tech_a.authed(by_id)).await?.into_inner().marked, 0);
    assert_eq!(counts(&office).await?.unread_total, 3, "nothing of Sam's or the stranger's marked");
    assert_eq!(mark(&tech_a, "cus_dana").await?, 1);

    // Writing: to their customer, never past the scope, never to a stranger.
    let send = |customer_id: &str, id: &str| SendMessageRequest {
        request_id: id.into(),
        customer_id: customer_id.into(),
        channel: Channel::Sms as i32,
        text: "On my way shortly".into(),
        subject: String::new(),
    };
    assert!(tech_a.grpc().send_message(tech_a.authed(send("cus_dana", "s1"))).await.is_ok());
    assert_eq!(code(tech_a.grpc().send_message(tech_a.authed(send("cus_sam", "s2"))).await), tonic::Code::NotFound);
    let resend = ResendMessageRequest { request_id: "r1".into(), message_id: sams.clone(), ..Default::default() };
    assert_eq!(code(tech_a.grpc().resend_message(tech_a.authed(resend)).await), tonic::Code::NotFound);
    let reply = ReplyToSenderRequest { request_id: "x1".into(), sender: STRANGER.into(), text: "Hi".into() };
    assert_eq!(code(tech_a.grpc().reply_to_sender(tech_a.authed(reply)).await), tonic::Code::NotFound);
    let attach = AttachThreadRequest { sender: STRANGER.into(), customer_id: "cus_dana".into() };
    assert_eq!(code(tech_a.grpc().attach_thread(tech_a.authed(attach)).await), tonic::Code::NotFound);

    // What waits: the day-before reminders of their jobs only.
    let waiting = tech_a.grpc().list_waiting(tech_a.authed(ListWaitingRequest::default())).await?.into_inner();
    let waiting: Vec<String> =
        waiting.waiting.iter().map(|w| w.customer.clone().unwrap_or_default().customer_id).collect();
    assert_eq!(waiting, ["cus_dana"], "Sam's and Pat's reminders are not theirs");

    // Previewing a template with a job: their customers' only.
    let confirmation = |who: &str| {
        all.iter()
            .find(|m| {
                m.customer.as_ref().is_some_and(|c| c.customer_id == who)
                    && m.r#type == MessageType::AppointmentConfirmation as i32
                    && m.channel == Channel::Sms as i32
            })
            .map(|m| m.message_id.clone())
            .unwrap_or_default()
    };
    let mut templates = TemplateServiceClient::connect(format!("http://127.0.0.1:{port}")).await?;
    let preview = |message_id: String| PreviewTemplateRequest {
        r#type: MessageType::AppointmentConfirmation as i32,
        channel: Channel::Sms as i32,
        message_id,
        ..Default::default()
    };
    let tech_a_token = technician_token(ACCOUNT, "tech_a");
    let theirs = templates.preview_template(with_bearer(preview(confirmation("cus_dana")), &tech_a_token)).await;
    assert!(theirs.is_ok(), "{theirs:?}");
    let sams_job = templates.preview_template(with_bearer(preview(confirmation("cus_sam")), &tech_a_token)).await;
    assert_eq!(code(sams_job), tonic::Code::NotFound, "another customer's job data");
    let office_token = messaging_integration_tests::client::token(ACCOUNT);
    assert!(templates.preview_template(with_bearer(preview(confirmation("cus_sam")), &office_token)).await.is_ok());

    // A token that says technician without saying who is refused.
    let anonymous = Dashboard::connect_with(port, token_as(ACCOUNT, "technician")).await?;
    assert_eq!(code(anonymous.clone().thread("cus_dana").await), tonic::Code::Unauthenticated);

    // The stream: Sam's text is not theirs, Dana's is; then job 2 moves to tech_a, and Sam's next
    // text reaches tech_a's stream while tech_b loses Sam.
    let mut stream = tech_a.grpc().watch_feed(tech_a.authed(WatchFeedRequest::default())).await?.into_inner();
    sim_inbound(stack.ports.sim, &phone(1), &business, "Still on?").await?;
    sim_inbound(stack.ports.sim, &phone(0), &business, "Gate code 1234").await?;
    let mut seen = until_text(&mut stream, "Gate code 1234").await?;
    let sam = customer("cus_sam", "Sam Ortiz", &phone(1), "cus_sam@example.com");
    let moved = json!({"customer": sam, "job": worked("job_2", days(3), "tech_a", &[])});
    publisher.event(&event("e_move", "job.rescheduled", ACCOUNT, Utc::now(), moved)).await?;
    eventually(Duration::from_secs(30), "the reassignment to reach the feed", || {
        let mut tech_a = tech_a.clone();
        async move { tech_a.thread("cus_sam").await.ok() }
    })
    .await?;
    assert_eq!(code(tech_b.thread("cus_sam").await), tonic::Code::NotFound, "tech_b no longer works Sam's job");
    assert!(tech_b.thread("cus_dana").await.is_ok());
    sim_inbound(stack.ports.sim, &phone(1), &business, "Running late?").await?;
    seen.extend(until_text(&mut stream, "Running late?").await?);
    assert!(seen.iter().all(|m| m.preview != "Still on?"), "a change from before the reassignment: {seen:#?}");
    let streamed = customers(&seen);
    assert!(streamed.is_subset(&set(&["cus_dana", "cus_rae", "cus_sam"])), "{streamed:?}");
    stack.stop().await;
    Ok(())
}
