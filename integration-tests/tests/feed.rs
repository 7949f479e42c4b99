//! The Messages page through FeedService: every filter alone and combined, search by name (any
//! case, any accents) and by phone number (any format, the last digits), keyset pages that stay
//! stable while messages arrive, threads both ways, a message's timeline with the provider's
//! error, unread counts and marking read, and malformed requests refused.

use std::collections::HashSet;

use chrono::Utc;
use messaging_integration_tests::client::{Dashboard, code, sim_inbound, start_with};
use messaging_integration_tests::events::{account, business_number, customer, event, job};
use messaging_proto::time::timestamp;
use messaging_proto::v1::{
    Channel, Direction, GetCountsRequest, GetMessageRequest, GetThreadRequest, ListMessagesRequest, MarkReadRequest,
    Message, MessageStatus, MessageType,
};
use serde_json::json;

const ACCOUNT: &str = "acc_page";
const JOSE: &str = "+15125550199";
const STRANGER: &str = "+15125550777";

fn ids(messages: &[Message]) -> Vec<String> {
    messages.iter().map(|m| m.message_id.clone()).collect()
}

async fn list(dashboard: &Dashboard, request: ListMessagesRequest) -> Result<Vec<Message>, tonic::Status> {
    dashboard.clone().list(ListMessagesRequest { page_size: 200, ..request }).await
}

async fn search(dashboard: &Dashboard, query: &str) -> Vec<String> {
    let found = list(dashboard, ListMessagesRequest { query: query.into(), ..Default::default() }).await;
    let mut customers: Vec<String> = found
        .unwrap_or_else(|e| panic!("search {query:?}: {e}"))
        .iter()
        .map(|m| m.customer.clone().unwrap_or_default())
        .map(|c| if c.customer_id.is_empty() { c.phone } else { c.customer_id })
        .collect();
    customers.dedup();
    customers
}

fn newest_first(messages: &[Message]) -> bool {
    messages.windows(2).all(|w| {
        let key = |m: &Message| (m.created_at.map(|t| (t.seconds, t.nanos)), m.message_id.clone());
        key(&w[0]) >= key(&w[1])
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_filters_searches_pages_and_counts() -> anyhow::Result<()> {
    let setup = account("evt_acc", ACCOUNT, "America/Chicago", ("00:00", "00:00"));
    let (mut stack, publisher, dashboard) = start_with("feed-page", &setup).await?;
    let people = [
        ("cus_jose", "José Núñez", JOSE, "jose@example.com"),
        ("cus_ann", "Ann Lee", "+15125550123", ""),
        ("cus_bad", "Bad Number", "+15005550001", ""),
        ("cus_lana", "Lana Landline", "+15005550009", ""),
    ];
    let start = Utc::now();
    for (i, (id, name, phone, email)) in people.iter().enumerate() {
        let body = json!({"customer": customer(id, name, phone, email),
                          "job": job(&format!("job_{i}"), Utc::now() + chrono::Duration::days(3))});
        publisher.event(&event(&format!("e{i}"), "job.scheduled", ACCOUNT, Utc::now(), body)).await?;
    }
    dashboard.settled(5).await?;
    sim_inbound(stack.ports.sim, JOSE, &business_number(ACCOUNT), "Running late?").await?;
    sim_inbound(stack.ports.sim, STRANGER, &business_number(ACCOUNT), "Who is this?").await?;
    let all = dashboard.settled(7).await?;
    stack.quiesce().await?;
    let all = if all.len() == 7 { all } else { dashboard.settled(7).await? };
    assert_eq!(all.len(), 7, "{all:#?}");
    assert!(newest_first(&all));

    // Each filter alone.
    let inbound =
        list(&dashboard, ListMessagesRequest { directions: vec![Direction::Inbound as i32], ..Default::default() })
            .await?;
    assert_eq!(inbound.len(), 2);
    assert!(inbound.iter().all(|m| m.r#type == MessageType::Reply as i32 && m.unread));
    let email =
        list(&dashboard, ListMessagesRequest { channels: vec![Channel::Email as i32], ..Default::default() }).await?;
    assert_eq!(email.len(), 1);
    let failed =
        list(&dashboard, ListMessagesRequest { statuses: vec![MessageStatus::Failed as i32], ..Default::default() })
            .await?;
    let mut reasons: Vec<&str> = failed.iter().map(|m| m.failure_reason.as_str()).collect();
    reasons.sort();
    assert_eq!(reasons, ["invalid_number", "not_sms_capable"]);
    let confirmations = list(
        &dashboard,
        ListMessagesRequest { types: vec![MessageType::AppointmentConfirmation as i32], ..Default::default() },
    )
    .await?;
    assert_eq!(confirmations.len(), 5);
    let future = list(
        &dashboard,
        ListMessagesRequest { since: Some(timestamp(Utc::now() + chrono::Duration::hours(1))), ..Default::default() },
    )
    .await?;
    assert!(future.is_empty());
    let before = list(
        &dashboard,
        ListMessagesRequest { until: Some(timestamp(start - chrono::Duration::minutes(1))), ..Default::default() },
    )
    .await?;
    assert!(before.is_empty());

    // Several values of one filter (merged branches), and filters combined.
    let failed_or_received = list(
        &dashboard,
        ListMessagesRequest {
            statuses: vec![MessageStatus::Failed as i32, MessageStatus::Received as i32],
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(failed_or_received.len(), 4);
    assert!(newest_first(&failed_or_received), "merged branches stay in feed order");
    let expected: Vec<String> =
        ids(&all).into_iter().filter(|id| ids(&failed).contains(id) || ids(&inbound).contains(id)).collect();
    assert_eq!(ids(&failed_or_received), expected, "the same order as the unfiltered feed");
    let delivered_sms = list(
        &dashboard,
        ListMessagesRequest {
            channels: vec![Channel::Sms as i32],
            statuses: vec![MessageStatus::Delivered as i32],
            directions: vec![Direction::Outbound as i32],
            since: Some(timestamp(start - chrono::Duration::minutes(1))),
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(delivered_sms.len(), 2, "José's and Ann's confirmations");

    // Search: names folded, phones in any format, unknown senders by number.
    for query in ["jose", "JOSÉ", "núñ", "Nunez", "josé núñez"] {
        assert_eq!(search(&dashboard, query).await, ["cus_jose"], "{query}");
    }
    for query in ["(512) 555-0199", "512.555.0199", "+15125550199", "0199", "555-0199"] {
        assert_eq!(search(&dashboard, query).await, ["cus_jose"], "{query}");
    }
    assert_eq!(search(&dashboard, "0777").await, [STRANGER], "an unknown sender by number");
    assert_eq!(search(&dashboard, "Lee").await, ["cus_ann"]);
    assert!(search(&dashboard, "nobody here").await.is_empty());
    for (query, why) in [("Jo", "too short a name"), ("019", "too few digits"), (&"x".repeat(101) as &str, "too long")]
    {
        let refused = list(&dashboard, ListMessagesRequest { query: query.into(), ..Default::default() }).await;
        assert_eq!(code(refused), tonic::Code::InvalidArgument, "{why}");
    }
    let jose_inbound = list(
        &dashboard,
        ListMessagesRequest { query: "jose".into(), directions: vec![Direction::Inbound as i32], ..Default::default() },
    )
    .await?;
    assert_eq!(jose_inbound.len(), 1);
    assert_eq!(jose_inbound[0].preview, "Running late?");

    // Keyset pages: walk two at a time while a new message arrives; no repeat, no gap.
    let mut grpc = dashboard.grpc();
    let mut walked = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = grpc
            .list_messages(dashboard.authed(ListMessagesRequest {
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            }))
            .await?
            .into_inner();
        walked.extend(ids(&page.messages));
        pages += 1;
        if pages == 1 {
            let body = json!({"customer": customer("cus_new", "Newt Late", "+15125550155", ""),
                              "job": job("job_new", Utc::now() + chrono::Duration::days(3))});
            publisher.event(&event("e_new", "job.scheduled", ACCOUNT, Utc::now(), body)).await?;
            dashboard.settled(8).await?;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(walked, ids(&all), "pages after the first are unaffected by the newer message");
    assert_eq!(pages, 4);
    let bad_token =
        list(&dashboard, ListMessagesRequest { page_token: "not-a-token".into(), ..Default::default() }).await;
    assert_eq!(code(bad_token), tonic::Code::InvalidArgument);
    let bad_enum = list(&dashboard, ListMessagesRequest { statuses: vec![99], ..Default::default() }).await;
    assert_eq!(code(bad_enum), tonic::Code::InvalidArgument);

    // A thread both ways, one message per page.
    let mut thread = Vec::new();
    let mut token = String::new();
    loop {
        let request =
            GetThreadRequest { customer_id: "cus_jose".into(), page_size: 1, page_token: token, oldest_first: true };
        let page = grpc.get_thread(dashboard.authed(request)).await?.into_inner();
        assert_eq!(page.customer.as_ref().map(|c| c.name.as_str()), Some("José Núñez"));
        thread.extend(ids(&page.messages));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let newest = grpc
        .get_thread(dashboard.authed(GetThreadRequest { customer_id: "cus_jose".into(), ..Default::default() }))
        .await?
        .into_inner();
    let mut reversed = ids(&newest.messages);
    reversed.reverse();
    assert_eq!(thread.len(), 3, "confirmation by SMS and email, and the reply");
    assert_eq!(thread, reversed);
    let missing = grpc
        .get_thread(dashboard.authed(GetThreadRequest { customer_id: "cus_nobody".into(), ..Default::default() }))
        .await;
    assert_eq!(code(missing), tonic::Code::NotFound);

    // A failed message's timeline carries the provider's code and text.
    let bad = failed.iter().find(|m| m.failure_reason == "invalid_number").expect("the invalid number's SMS");
    let detail = grpc
        .get_message(dashboard.authed(GetMessageRequest { message_id: bad.message_id.clone() }))
        .await?
        .into_inner();
    assert_eq!(detail.provider_error_code, "21211");
    assert!(detail.provider_error_text.contains("not a valid phone number"), "{}", detail.provider_error_text);
    let statuses: Vec<i32> = detail.timeline.iter().map(|e| e.status).collect();
    assert_eq!(statuses, [MessageStatus::Queued as i32, MessageStatus::Failed as i32]);
    assert_eq!(detail.timeline[1].source, "gateway");
    let none = grpc.get_message(dashboard.authed(GetMessageRequest { message_id: "msg_nothing".into() })).await;
    assert_eq!(code(none), tonic::Code::NotFound);

    // Unread replies per thread and in total; failed in a range; marking read.
    let range = GetCountsRequest {
        since: Some(timestamp(start - chrono::Duration::minutes(1))),
        until: Some(timestamp(Utc::now() + chrono::Duration::minutes(1))),
    };
    let counts = grpc.get_counts(dashboard.authed(range)).await?.into_inner();
    assert_eq!((counts.unread_total, counts.failed), (2, 2));
    let mut threads: Vec<(String, String, i64)> =
        counts.threads.iter().map(|t| (t.customer_id.clone(), t.sender.clone(), t.unread)).collect();
    threads.sort();
    assert_eq!(threads, [(String::new(), STRANGER.to_owned(), 1), ("cus_jose".to_owned(), String::new(), 1)]);
    let earlier = GetCountsRequest { since: None, until: Some(timestamp(start - chrono::Duration::minutes(1))) };
    assert_eq!(grpc.get_counts(dashboard.authed(earlier)).await?.into_inner().failed, 0);
    let marked = grpc
        .mark_read(dashboard.authed(MarkReadRequest { customer_id: "cus_jose".into(), ..Default::default() }))
        .await?;
    assert_eq!(marked.into_inner().marked, 1);
    let stranger =
        inbound.iter().find(|m| m.customer.as_ref().is_some_and(|c| c.customer_id.is_empty())).expect("stranger");
    // An unknown sender's thread is opened and marked read by their number (GetCounts' `sender`).
    let theirs = GetThreadRequest { customer_id: STRANGER.into(), ..Default::default() };
    let theirs = grpc.get_thread(dashboard.authed(theirs)).await?.into_inner();
    assert_eq!(ids(&theirs.messages), std::slice::from_ref(&stranger.message_id));
    assert_eq!(theirs.customer.map(|c| (c.customer_id, c.phone)), Some((String::new(), STRANGER.to_owned())));
    let nobody = GetThreadRequest { customer_id: "+15125550000".into(), ..Default::default() };
    assert_eq!(code(grpc.get_thread(dashboard.authed(nobody)).await), tonic::Code::NotFound);
    let by_sender = MarkReadRequest { customer_id: STRANGER.into(), ..Default::default() };
    assert_eq!(grpc.mark_read(dashboard.authed(by_sender)).await?.into_inner().marked, 1);
    let by_id = MarkReadRequest { message_ids: vec![stranger.message_id.clone()], ..Default::default() };
    assert_eq!(grpc.mark_read(dashboard.authed(by_id)).await?.into_inner().marked, 0, "already read");
    let counts = grpc.get_counts(dashboard.authed(GetCountsRequest::default())).await?.into_inner();
    assert_eq!((counts.unread_total, counts.threads.len()), (0, 0));
    let inbound =
        list(&dashboard, ListMessagesRequest { directions: vec![Direction::Inbound as i32], ..Default::default() })
            .await?;
    assert!(inbound.iter().all(|m| !m.unread));
    let empty = grpc.mark_read(dashboard.authed(MarkReadRequest::default())).await;
    assert_eq!(code(empty), tonic::Code::InvalidArgument);

    let seen: HashSet<String> = walked.into_iter().collect();
    assert_eq!(seen.len(), 7);
    stack.stop().await;
    Ok(())
}
