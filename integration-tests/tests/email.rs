//! The email gateway against a real SMTP server (aiosmtpd): exact messages, recipients and
//! headers; a header-injection attempt that reaches only the intended recipient; a relay's 4xx
//! retried and its 5xx recorded with the server's reply.

use std::time::Duration;

use chrono::Utc;
use messaging_integration_tests::client::{Dashboard, start_with};
use messaging_integration_tests::events::{account, customer, event, invoice, job, send_address};
use messaging_integration_tests::eventually;
use messaging_proto::v1::{Channel, Message, MessageStatus};
use serde_json::json;

const ACCOUNT: &str = "acc_ace";

/// Waits until the email to `customer` has left `queued`, and returns it.
async fn email_of(dashboard: &Dashboard, customer: &str) -> anyhow::Result<Message> {
    eventually(Duration::from_secs(60), &format!("{customer}'s email settled"), || {
        let mut dashboard = dashboard.clone();
        async move {
            dashboard.all().await.into_iter().find(|m| {
                m.channel == Channel::Email as i32
                    && m.customer.as_ref().is_some_and(|c| c.customer_id == customer)
                    && m.status != MessageStatus::Queued as i32
            })
        }
    })
    .await
}

fn header<'a>(mail: &'a str, name: &str) -> Vec<&'a str> {
    let prefix = format!("{}:", name.to_ascii_lowercase());
    mail.lines().take_while(|l| !l.is_empty()).filter(|l| l.to_ascii_lowercase().starts_with(&prefix)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emails_reach_a_real_smtp_server_with_their_headers_and_nothing_more() -> anyhow::Result<()> {
    let setup = account("evt_acc", ACCOUNT, "America/Chicago", ("00:00", "00:00"));
    let (mut stack, publisher, dashboard) = start_with("email", &setup).await?;
    // Line breaks in customer- and job-provided text try to smuggle in a Bcc header.
    let dana = customer("cus_dana", "Dana\r\nBcc: evil@example.com", "", "dana@example.com");
    let mut sneaky = job("job_1", Utc::now() + chrono::Duration::days(2));
    sneaky["title"] = "Sink\r\nBcc: evil@example.com\r\n\r\nfake body".into();
    let completed = json!({"customer": dana, "job": sneaky, "invoice": invoice("inv_1")});
    publisher.event(&event("e1", "job.completed", ACCOUNT, Utc::now(), completed)).await?;
    let sent = email_of(&dashboard, "cus_dana").await?;
    assert_eq!(sent.status, MessageStatus::Sent as i32, "{sent:#?}");

    let mails = stack.mails();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    let mail = &mails[0];
    assert_eq!(header(mail, "X-RcptTo"), ["X-RcptTo: dana@example.com"], "the envelope names Dana only");
    assert!(header(mail, "Bcc").is_empty(), "no Bcc header was smuggled in:\n{mail}");
    assert_eq!(header(mail, "To"), ["To: dana@example.com"]);
    assert!(header(mail, "Message-ID")[0].contains(&format!("<{}@", sent.message_id)), "{mail}");
    assert!(header(mail, "Reply-To")[0].starts_with("Reply-To: reply+"), "{mail}");
    assert!(header(mail, "List-Unsubscribe")[0].contains("/unsubscribe/"), "{mail}");
    assert_eq!(header(mail, "List-Unsubscribe-Post"), ["List-Unsubscribe-Post: List-Unsubscribe=One-Click"]);
    assert!(mail.contains("multipart/alternative"), "{mail}");
    assert!(mail.contains("text/plain") && mail.contains("text/html"), "{mail}");
    let unfolded = mail.replace("=\r\n", "").replace("=\n", "");
    assert!(unfolded.contains("/o/") && unfolded.contains(".gif"), "the HTML carries the open pixel:\n{mail}");

    // A relay answering 451 twice: retried with backoff, then sent once.
    let busy = customer("cus_busy", "Bo Busy", "", "defer451@example.com");
    let body = json!({"customer": busy, "job": job("job_2", Utc::now() + chrono::Duration::days(2))});
    publisher.event(&event("e2", "job.scheduled", ACCOUNT, Utc::now(), body)).await?;
    assert_eq!(email_of(&dashboard, "cus_busy").await?.status, MessageStatus::Sent as i32);
    // A relay answering 550: failed for good, with the reason shown.
    let gone = customer("cus_gone", "Gil Gone", "", "fail550@example.com");
    let body = json!({"customer": gone, "job": job("job_3", Utc::now() + chrono::Duration::days(2))});
    publisher.event(&event("e3", "job.scheduled", ACCOUNT, Utc::now(), body)).await?;
    let refused = email_of(&dashboard, "cus_gone").await?;
    assert_eq!(refused.status, MessageStatus::Failed as i32);
    assert_eq!(refused.failure_reason, "rejected");
    stack.quiesce().await?;
    let mails = stack.mails();
    assert_eq!(mails.len(), 2, "Dana's and, after two deferrals, Bo's");
    assert_eq!(mails.iter().filter(|m| m.contains("X-RcptTo: defer451@example.com")).count(), 1);
    stack.stop().await;
    Ok(())
}

/// The URL in `mail` that starts with `from` and ends before `until`, quoted-printable undone.
fn url_in(mail: &str, from: &str, until: char) -> Option<String> {
    let unfolded = mail.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=");
    let start = unfolded.find(from)?;
    let rest = &unfolded[start..];
    Some(rest[..rest.find(until)?].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_marks_the_email_opened_and_only_a_post_unsubscribes() -> anyhow::Result<()> {
    let setup = account("evt_acc", ACCOUNT, "America/Chicago", ("00:00", "00:00"));
    let (mut stack, publisher, dashboard) = start_with("engagement", &setup).await?;
    let dana = customer("cus_dana", "Dana Reyes", "", "dana@example.com");
    let body = json!({"customer": dana, "job": job("job_1", Utc::now() + chrono::Duration::days(2))});
    publisher.event(&event("e1", "job.scheduled", ACCOUNT, Utc::now(), body)).await?;
    assert_eq!(email_of(&dashboard, "cus_dana").await?.status, MessageStatus::Sent as i32);
    let mail = stack.mails().pop().unwrap_or_default();
    let base = format!("http://127.0.0.1:{}", stack.ports.webhook);
    let pixel = url_in(&mail, &format!("{base}/o/"), '"').expect("a pixel URL");
    let unsubscribe = url_in(&mail, &format!("{base}/unsubscribe/"), '>').expect("an unsubscribe URL");

    let image = reqwest::get(&pixel).await?;
    assert_eq!(image.headers()["content-type"], "image/gif");
    eventually(Duration::from_secs(30), "the email opened", || {
        let dashboard = dashboard.clone();
        async move { (email_of(&dashboard, "cus_dana").await.ok()?.status == MessageStatus::Opened as i32).then_some(()) }
    })
    .await?;
    let forged = pixel.replace(".gif", "x.gif");
    assert_eq!(reqwest::get(&forged).await?.status().as_u16(), 404);

    // The unsubscribe token is opaque: it names neither the account nor the message, and a made-up one is unknown.
    let token = unsubscribe.rsplit('/').next().unwrap_or_default().to_owned();
    assert!(!token.contains(ACCOUNT) && !token.contains("msg_"), "{token}");
    let made_up = unsubscribe.replace(&token, &"A".repeat(token.len()));
    assert_eq!(reqwest::Client::new().post(&made_up).send().await?.status().as_u16(), 404);
    // A link scanner's GET shows the page and changes nothing; the recipient's POST unsubscribes.
    let page = reqwest::get(&unsubscribe).await?.text().await?;
    assert!(page.contains("method=\"post\""), "{page}");
    let invoice_sent = |n: usize| {
        let body = json!({"customer": dana, "invoice": invoice(&format!("inv_{n}"))});
        event(&format!("i{n}"), "invoice.sent", ACCOUNT, Utc::now(), body)
    };
    stack.quiesce().await?;
    publisher.event(&invoice_sent(1)).await?;
    dashboard.settled(2).await?;
    let one_click = [("List-Unsubscribe", "One-Click")];
    let posted = reqwest::Client::new().post(&unsubscribe).form(&one_click).send().await?;
    assert_eq!(posted.status().as_u16(), 200);
    stack.quiesce().await?;
    publisher.event(&invoice_sent(2)).await?;
    let all = dashboard.settled(3).await?;
    let statuses: Vec<(i32, &str)> = all.iter().map(|m| (m.status, m.failure_reason.as_str())).collect();
    assert!(statuses.contains(&(MessageStatus::Failed as i32, "opted_out")), "{all:#?}");
    assert_eq!(stack.mails().len(), 2, "the confirmation and the first invoice; not the second");
    stack.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_sendgrid_events_mark_a_bounce_failed_and_forgeries_change_nothing() -> anyhow::Result<()> {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use p256::ecdsa::signature::Signer as _;
    use p256::ecdsa::{Signature, SigningKey};

    let signing = SigningKey::from_slice(&[11u8; 32])?;
    let mut der = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200")?;
    der.extend_from_slice(signing.verifying_key().to_encoded_point(false).as_bytes());
    let key = [("MSG_SENDGRID_PUBLIC_KEY", STANDARD.encode(&der))];
    let mut stack =
        messaging_integration_tests::Stack::start_fresh_with("sendgrid", &[("delivery-status", &key)]).await?;
    let publisher = messaging_integration_tests::client::Publisher::connect(&stack.infra.nats_url()).await?;
    publisher.event(&account("evt_acc", ACCOUNT, "America/Chicago", ("00:00", "00:00"))).await?;
    let dashboard = Dashboard::connect(stack.ports.grpc, ACCOUNT).await?;
    let dana = customer("cus_dana", "Dana Reyes", "", "dana@example.com");
    let body = json!({"customer": dana, "job": job("job_1", Utc::now() + chrono::Duration::days(2))});
    publisher.event(&event("e1", "job.scheduled", ACCOUNT, Utc::now(), body)).await?;
    email_of(&dashboard, "cus_dana").await?;
    let mail = stack.mails().pop().unwrap_or_default();
    let token = url_in(&mail, "\"message_token\":\"", '}')
        .map(|t| t.trim_start_matches("\"message_token\":\"").trim_end_matches('"').to_owned())
        .expect("the message token in X-SMTPAPI");

    let url = format!("http://127.0.0.1:{}/webhooks/sendgrid/events", stack.ports.webhook);
    let bounce = json!([
        {"email": "dana@example.com", "timestamp": 1_790_000_000, "event": "bounce", "sg_event_id": "ev_1",
         "message_token": token, "reason": "550 5.1.1 The email account does not exist", "status": "5.1.1"},
        {"email": "dana@example.com", "timestamp": 1_790_000_000, "event": "delivered", "sg_event_id": "ev_2",
         "message_token": format!("{token}x")}
    ])
    .to_string();
    let signed_at = "1790000001";
    let signature: Signature = signing.sign(&[signed_at.as_bytes(), bounce.as_bytes()].concat());
    let signature = STANDARD.encode(signature.to_der().as_bytes());
    let http = reqwest::Client::new();
    let post = |signature: &str, body: &str| {
        http.post(&url)
            .header("X-Twilio-Email-Event-Webhook-Signature", signature.to_owned())
            .header("X-Twilio-Email-Event-Webhook-Timestamp", signed_at)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
    };
    assert_eq!(post("", &bounce).await?.status().as_u16(), 403, "unsigned");
    assert_eq!(post(&signature, &bounce.replace("bounce", "open")).await?.status().as_u16(), 403, "altered");
    assert_eq!(post(&signature, "[").await?.status().as_u16(), 403, "a body it did not sign");
    for _ in 0..2 {
        assert_eq!(post(&signature, &bounce).await?.status().as_u16(), 200);
    }
    let failed = eventually(Duration::from_secs(30), "the bounce applied", || {
        let dashboard = dashboard.clone();
        async move {
            let email = email_of(&dashboard, "cus_dana").await.ok()?;
            (email.status == MessageStatus::Failed as i32).then_some(email)
        }
    })
    .await?;
    assert_eq!(failed.failure_reason, "bounced");

    // A spam report naming another address, dated in the year 3000: the opt-out is the message's
    // own recipient's, as of no later than now; the other address is untouched.
    let spam = json!([{"email": "someone-else@example.com", "timestamp": 32_503_680_000_i64, "event": "spamreport",
                       "sg_event_id": "ev_3", "message_token": token}])
    .to_string();
    let signature: Signature = signing.sign(&[signed_at.as_bytes(), spam.as_bytes()].concat());
    assert_eq!(post(&STANDARD.encode(signature.to_der().as_bytes()), &spam).await?.status().as_u16(), 200);
    stack.quiesce().await?;
    let pool = sqlx::PgPool::connect(&stack.infra.database_url()).await?;
    let suppressed: Vec<(String, bool, chrono::DateTime<Utc>)> =
        sqlx::query_as("SELECT address, opted_out, as_of FROM dispatch.suppressions WHERE account_id = $1")
            .bind(ACCOUNT)
            .fetch_all(&pool)
            .await?;
    assert_eq!(suppressed.len(), 1, "{suppressed:?}");
    assert_eq!((suppressed[0].0.as_str(), suppressed[0].1), ("dana@example.com", true));
    assert!(suppressed[0].2 <= Utc::now(), "an event time from the future is clamped: {suppressed:?}");
    assert_eq!(dashboard.clone().all().await.len(), 1);
    stack.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_sendgrid_events_are_refused_when_no_key_is_set() -> anyhow::Result<()> {
    let setup = account("evt_acc", ACCOUNT, "America/Chicago", ("00:00", "00:00"));
    let (mut stack, publisher, dashboard) = start_with("sendgrid-unsigned", &setup).await?;
    let dana = customer("cus_dana", "Dana Reyes", "", "dana@example.com");
    let body = json!({"customer": dana, "job": job("job_1", Utc::now() + chrono::Duration::days(2))});
    publisher.event(&event("e1", "job.scheduled", ACCOUNT, Utc::now(), body)).await?;
    email_of(&dashboard, "cus_dana").await?;
    let mail = stack.mails().pop().unwrap_or_default();
    let base = format!("http://127.0.0.1:{}", stack.ports.webhook);
    let pixel = url_in(&mail, &format!("{base}/o/"), '"').expect("a pixel URL");
    let pixel_token = pixel.trim_start_matches(&format!("{base}/o/")).trim_end_matches(".gif").to_owned();
    let token = url_in(&mail, "\"message_token\":\"", '}')
        .map(|t| t.trim_start_matches("\"message_token\":\"").trim_end_matches('"').to_owned())
        .expect("the message token in X-SMTPAPI");
    assert_ne!(pixel_token, token, "the pixel carries a token of its own");

    for attributed_by in [&token, &pixel_token] {
        let spam = json!([{"email": "someone-else@example.com", "timestamp": 32_503_680_000_i64,
                           "event": "spamreport", "sg_event_id": "ev_1", "message_token": attributed_by}]);
        let answer = reqwest::Client::new().post(format!("{base}/webhooks/sendgrid/events")).json(&spam).send().await?;
        assert_eq!(answer.status().as_u16(), 403, "unsigned, with no key configured");
    }
    stack.quiesce().await?;
    let pool = sqlx::PgPool::connect(&stack.infra.database_url()).await?;
    let suppressed: i64 = sqlx::query_scalar("SELECT count(*) FROM dispatch.suppressions").fetch_one(&pool).await?;
    assert_eq!(suppressed, 0, "nobody was opted out");
    assert_eq!(reqwest::get(&pixel).await?.status().as_u16(), 200, "the pixel still counts the open");
    stack.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_joins_its_thread_by_token_a_stranger_gets_their_own_and_a_forgery_no_ones() -> anyhow::Result<()> {
    use messaging_integration_tests::stack::INBOUND_EMAIL_SECRET;
    use messaging_proto::v1::Direction;

    let setup = account("evt_acc", ACCOUNT, "America/Chicago", ("00:00", "00:00"));
    let (mut stack, publisher, dashboard) = start_with("inbound-email", &setup).await?;
    let dana = customer("cus_dana", "Dana Reyes", "", "dana@example.com");
    let body = json!({"customer": dana, "job": job("job_1", Utc::now() + chrono::Duration::days(2))});
    publisher.event(&event("e1", "job.scheduled", ACCOUNT, Utc::now(), body)).await?;
    email_of(&dashboard, "cus_dana").await?;
    stack.quiesce().await?;
    let mail = stack.mails().pop().unwrap_or_default();
    let reply_to = header(&mail, "Reply-To")[0].trim_start_matches("Reply-To:").trim().to_owned();

    let base = format!("http://127.0.0.1:{}/webhooks/sendgrid/inbound", stack.ports.webhook);
    // As SendGrid posts it: the headers' From and To, the SMTP envelope, and its SPF and DKIM verdicts.
    let post = |secret: &str, from: &str, to: &str, text: &str, message_id: &str, (envelope_from, spf, dkim)| {
        let envelope = json!({"to": [to], "from": envelope_from}).to_string();
        let form = reqwest::multipart::Form::new()
            .text("from", from.to_owned())
            .text("to", to.to_owned())
            .text("subject", "Re: Your appointment")
            .text("text", text.to_owned())
            .text("headers", format!("Message-ID: <{message_id}@mail.example>\nSubject: Re: Your appointment\n"))
            .text("envelope", envelope)
            .text("SPF", spf)
            .text("dkim", dkim);
        reqwest::Client::new().post(format!("{base}/{secret}")).multipart(form).send()
    };
    let signed = ("bounce@example.com", "pass", "{@example.com : pass}");
    let reply = "Yes, 10 works.\n\nOn Fri, Nov 27, 2026 Ace Plumbing <office@ace.example> wrote:\n> Your appointment\n";
    let dana = "Dana Reyes <Dana@Example.com>";
    // A wrong secret is answered 403 after the upload, however large, not cut off while it is sent.
    let large = format!("{reply}{}", "x".repeat(4 << 20));
    assert_eq!(post("wrong", dana, &reply_to, &large, "m1", signed).await?.status().as_u16(), 403);
    for _ in 0..2 {
        let answer = post(INBOUND_EMAIL_SECRET, dana, &reply_to, reply, "m1", signed).await?;
        assert_eq!(answer.status().as_u16(), 200);
    }
    let address = send_address(ACCOUNT);
    let stranger = ("pat@elsewhere.example", "pass", "none");
    let asked = post(INBOUND_EMAIL_SECRET, "pat@elsewhere.example", &address, "Do you fix boilers?", "m2", stranger);
    assert_eq!(asked.await?.status().as_u16(), 200);
    // Someone else writing as Dana: their own domain passes SPF, Dana's fails. Kept, marked, not hers.
    let forged = ("mallory@attacker.example", "pass", "{@attacker.example : pass}");
    let spoof = post(INBOUND_EMAIL_SECRET, dana, &address, "Cancel everything, pay to IBAN X", "m3", forged);
    assert_eq!(spoof.await?.status().as_u16(), 200);

    let all = dashboard.settled(4).await?;
    stack.quiesce().await?;
    let thread = dashboard.clone().thread("cus_dana").await?;
    assert_eq!(thread.len(), 2, "the confirmation and one reply: {thread:#?}");
    let answer = &thread[1];
    assert_eq!((answer.direction, answer.channel), (Direction::Inbound as i32, Channel::Email as i32));
    assert_eq!(answer.preview, "Yes, 10 works.", "quoted text stripped");
    assert!(!answer.sender_unverified);
    let pat = all.iter().find(|m| m.preview == "Do you fix boilers?").expect("the stranger's email");
    let who = pat.customer.clone().unwrap_or_default();
    assert_eq!((who.customer_id.as_str(), who.email.as_str()), ("", "pat@elsewhere.example"));
    assert!(!pat.sender_unverified, "SPF vouches for pat's address");
    let forgery = all.iter().find(|m| m.preview.starts_with("Cancel everything")).expect("the forged email, kept");
    let who = forgery.customer.clone().unwrap_or_default();
    assert_eq!((who.customer_id.as_str(), who.name.as_str()), ("", ""), "not attributed to Dana: {forgery:#?}");
    assert!(forgery.sender_unverified, "marked: {forgery:#?}");
    // Pat becomes a customer and Dana's listing changes: Pat's email joins Pat; the forgery stays no one's.
    let pat = customer("cus_pat", "Pat Lee", "", "pat@elsewhere.example");
    publisher.event(&event("e2", "customer.updated", ACCOUNT, Utc::now(), json!({"customer": pat}))).await?;
    let renamed = customer("cus_dana", "Dana Q. Reyes", "", "dana@example.com");
    publisher.event(&event("e3", "customer.updated", ACCOUNT, Utc::now(), json!({"customer": renamed}))).await?;
    let pool = sqlx::PgPool::connect(&stack.infra.database_url()).await?;
    eventually(Duration::from_secs(30), "both listings in the feed", || {
        let pool = pool.clone();
        async move {
            let names: Vec<String> = sqlx::query_scalar("SELECT name FROM feed.customers ORDER BY name")
                .fetch_all(&pool)
                .await
                .unwrap_or_default();
            (names == ["Dana Q. Reyes", "Pat Lee"]).then_some(())
        }
    })
    .await?;
    let now = dashboard.clone().all().await;
    let of = |text: &str| now.iter().find(|m| m.preview.starts_with(text)).and_then(|m| m.customer.clone());
    assert_eq!(of("Do you fix boilers?").unwrap_or_default().customer_id, "cus_pat");
    assert_eq!(of("Cancel everything").unwrap_or_default().customer_id, "", "the forgery is still no one's");
    assert_eq!(dashboard.clone().all().await.len(), 4);
    stack.stop().await;
    Ok(())
}
