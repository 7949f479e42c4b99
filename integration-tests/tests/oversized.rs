//! Oversized input wedges nothing: a 200 KB job event is dead-lettered with a reason while another
//! account's confirmations still go out and are delivered, and a 1.2 MB inbound email is kept cut
//! to size (it used to outgrow the broker and stop delivery-status's relay for every account).

use messaging_integration_tests::client::{Dashboard, account_updated, dead_letter_reasons, job_scheduled, start_with};
use std::time::Duration;

use messaging_integration_tests::events::send_address;
use messaging_integration_tests::eventually;
use messaging_integration_tests::stack::INBOUND_EMAIL_SECRET;
use messaging_proto::v1::{Channel, Direction, MessageStatus};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_input_is_refused_or_cut_while_other_accounts_go_on() -> anyhow::Result<()> {
    let (mut stack, publisher, big) = start_with("oversized", &account_updated("evt_big", "acc_big")).await?;
    let mut other = account_updated("evt_other", "acc_other");
    other["account"]["sms_number"] = "+15125550111".into();
    other["account"]["email_from"] = "office@other.example".into();
    publisher.event(&other).await?;

    let mut huge = job_scheduled("evt_huge", "acc_big", "cus_huge", "", "huge@example.com");
    huge["job"]["title"] = "'".repeat(200_000).into();
    publisher.event(&huge).await?;
    for n in 0..3 {
        let phone = format!("+1512555{:04}", 4000 + n);
        publisher.event(&job_scheduled(&format!("evt_ok_{n}"), "acc_other", &format!("cus_{n}"), &phone, "")).await?;
    }
    let others = Dashboard::connect(stack.ports.grpc, "acc_other").await?.settled(3).await?;
    assert!(others.iter().all(|m| m.status == MessageStatus::Delivered as i32), "{others:#?}");

    // Posted again (the same Message-ID, so kept once) until delivery-status has acc_big's listing:
    // an email for an address it does not know yet is ignored.
    let inbound = format!("http://127.0.0.1:{}/webhooks/sendgrid/inbound/{INBOUND_EMAIL_SECRET}", stack.ports.webhook);
    let letter = "A very long letter.\n".repeat(60_000);
    let received = eventually(Duration::from_secs(60), "the huge email in the feed", || {
        let (inbound, letter, mut big) = (inbound.clone(), letter.clone(), big.clone());
        async move {
            let form = reqwest::multipart::Form::new()
                .text("from", "pat@elsewhere.example")
                .text("to", send_address("acc_big"))
                .text("subject", "s".repeat(5_000))
                .text("text", letter)
                .text("headers", "Message-ID: <huge@mail.example>\n");
            let answer = reqwest::Client::new().post(inbound).multipart(form).send().await.ok()?;
            assert_eq!(answer.status().as_u16(), 200);
            let all = big.all().await;
            (!all.is_empty()).then_some(all)
        }
    })
    .await?;
    // delivery-status's relay is not held up behind it: the next status still reaches the feed.
    publisher.event(&job_scheduled("evt_ok_3", "acc_other", "cus_3", "+15125554003", "")).await?;
    let others = Dashboard::connect(stack.ports.grpc, "acc_other").await?.settled(4).await?;
    assert!(others.iter().all(|m| m.status == MessageStatus::Delivered as i32), "{others:#?}");
    stack.quiesce().await?;
    let all = big.clone().all().await;
    assert_eq!(all.len(), 1, "no message for the oversized event: {all:#?}");
    let email = &received[0];
    assert_eq!((email.direction, email.channel), (Direction::Inbound as i32, Channel::Email as i32));

    let pool = sqlx::PgPool::connect(&stack.infra.database_url()).await?;
    let (body_chars, rejected): (i32, i64) = sqlx::query_as(
        "SELECT (SELECT max(length(body)) FROM delivery_status.inbound),
                (SELECT count(*) FROM delivery_status.outbox_rejected)",
    )
    .fetch_one(&pool)
    .await?;
    assert!(body_chars <= 20_100, "kept cut to size: {body_chars} characters");
    assert_eq!(rejected, 0, "nothing had to be moved aside");
    let dead = dead_letter_reasons(&stack.infra.nats_url(), "dlq.ingest.>").await?;
    assert!(
        dead.iter().any(|reason| reason.contains("at most 65536 are accepted")),
        "the oversized event is dead-lettered with its reason: {dead:?}"
    );
    stack.stop().await;
    Ok(())
}
