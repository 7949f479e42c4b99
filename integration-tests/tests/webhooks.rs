//! Garbage at every webhook: oversized bodies, bytes that are not UTF-8, repeated keys, ten
//! thousand parameters, forged tokens, malformed JSON, then random bytes as a property. Every
//! answer is a 4xx (never a 5xx), nothing is stored, and the server keeps serving.

use messaging_integration_tests::client::start_with;
use messaging_integration_tests::events::account;
use messaging_integration_tests::stack::INBOUND_EMAIL_SECRET;
use proptest::strategy::{Strategy, ValueTree};

/// The answer's status; `None` when the server hung up on an oversized body before reading it all
/// (its 413 can race the client still sending), which is a refusal too.
fn refused(answer: reqwest::Result<reqwest::Response>, what: &str) -> anyhow::Result<Option<u16>> {
    match answer {
        Ok(answer) => Ok(Some(answer.status().as_u16())),
        Err(error) if what == "oversized" && error.is_request() => Ok(None),
        Err(error) => Err(error.into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_webhook_answers_garbage_with_a_4xx_and_changes_nothing() -> anyhow::Result<()> {
    let setup = account("evt_acc", "acc_ace", "America/Chicago", ("00:00", "00:00"));
    let (mut stack, _publisher, dashboard) = start_with("garbage", &setup).await?;
    stack.quiesce().await?;
    let base = format!("http://127.0.0.1:{}", stack.ports.webhook);
    let token = "acc_ace.msg_0123456789abcdef0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAA";
    let form_routes = [format!("{base}/webhooks/twilio/status/{token}"), format!("{base}/webhooks/twilio/inbound")];
    let many: String = (0..10_000).map(|i| format!("k{i}=v&")).collect();
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("oversized", vec![b'a'; 10 * 1024 * 1024]),
        ("not UTF-8", vec![0xff, 0xfe, 0x00, 0x80, b'=', 0xc3, 0x28]),
        ("repeated keys", b"To=%2B15125550100&To=%2B15125550199&From=%2B15125550199&Body=STOP&MessageSid=SM1".to_vec()),
        ("ten thousand parameters", many.into_bytes()),
        ("empty", Vec::new()),
    ];
    // No connection reuse: the server closes the connection after refusing an oversized body.
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build()?;
    for url in &form_routes {
        for (what, body) in &bodies {
            for signature in ["", "bm90IGEgc2lnbmF0dXJl"] {
                let answer = http
                    .post(url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("X-Twilio-Signature", signature)
                    .body(body.clone())
                    .send()
                    .await;
                let Some(status) = refused(answer, what)? else { continue };
                assert!((400..500).contains(&status), "{url} with {what}: {status}");
            }
        }
    }
    let sendgrid = format!("{base}/webhooks/sendgrid/events");
    let events: String = format!("[{}]", vec![r#"{"event":"open"}"#; 10_001].join(","));
    let json_bodies: Vec<(&str, Vec<u8>)> = vec![
        ("oversized", vec![b'['; 10 * 1024 * 1024]),
        ("not JSON", b"{{{{".to_vec()),
        ("an object", br#"{"event":"bounce"}"#.to_vec()),
        ("not UTF-8", vec![b'[', 0xff, 0xfe, b']']),
        ("too many events", events.into_bytes()),
        ("forged tokens", br#"[{"event":"bounce","sg_event_id":"x","message_token":"acc_ace.msg_1.forged"}]"#.to_vec()),
    ];
    for (what, body) in json_bodies {
        let answer = http.post(&sendgrid).header("content-type", "application/json").body(body).send().await;
        let Some(status) = refused(answer, what)? else { continue };
        // A well-formed batch whose events cannot be attributed is accepted and ignored.
        assert!((400..500).contains(&status) || (what == "forged tokens" && status == 200), "{what}: {status}");
    }
    for url in [format!("{base}/o/{token}.gif"), format!("{base}/o/%ff%fe.gif"), format!("{base}/unsubscribe/{token}")]
    {
        let status = http.get(&url).send().await?.status().as_u16();
        assert!((400..500).contains(&status), "GET {url}: {status}");
        let status = http.post(&url).send().await?.status().as_u16();
        assert!((400..500).contains(&status), "POST {url}: {status}");
    }

    // Then random bytes at every route, as a property: never a 2xx for a form route, never a 5xx anywhere.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096);
    let inbound_email = format!("{base}/webhooks/sendgrid/inbound/{INBOUND_EMAIL_SECRET}");
    let routes = [
        form_routes[0].clone(),
        form_routes[1].clone(),
        sendgrid.clone(),
        inbound_email,
        format!("{base}/unsubscribe/{token}"),
    ];
    for _ in 0..64 {
        let body = strategy.new_tree(&mut runner).map_err(|e| anyhow::anyhow!("{e}"))?.current();
        for url in &routes {
            let status = http.post(url).body(body.clone()).send().await?.status().as_u16();
            assert!(status < 500, "{url} answered {status} to random bytes");
            if url.contains("/twilio/") || url.contains("/inbound/") {
                assert!((400..500).contains(&status), "{url} answered {status} to random bytes");
            }
        }
    }

    assert_eq!(http.get(format!("{base}/livez")).send().await?.status().as_u16(), 200, "still serving");
    stack.quiesce().await?;
    assert!(dashboard.clone().all().await.is_empty(), "nothing was stored");
    let pool = sqlx::PgPool::connect(&stack.infra.database_url()).await?;
    let kept: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM delivery_status.timeline) + (SELECT count(*) FROM delivery_status.inbound)",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(kept, 0, "no timeline entry, no inbound message");
    stack.stop().await;
    Ok(())
}
