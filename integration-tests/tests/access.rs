//! Who may call FeedService: every RPC refuses a missing, malformed, forged, expired, `alg: none`
//! or wrongly keyed token with UNAUTHENTICATED; an RS256 token from the configured key pair works
//! beside HS256; and a token for one account finds none of another account's messages, threads
//! or customers (NOT_FOUND, zero rows, nothing marked, nothing sent).

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use messaging_integration_tests::client::{Dashboard, Publisher, code, token, with_bearer};
use messaging_integration_tests::events::{account, customer, event, job};
use messaging_integration_tests::stack::JWT_SECRET;
use messaging_integration_tests::{Scratch, Stack};
use messaging_proto::v1::feed_service_client::FeedServiceClient;
use messaging_proto::v1::{
    AttachThreadRequest, Channel, GetAccountRequest, GetCountsRequest, GetMessageRequest, GetThreadRequest,
    ListMessagesRequest, MarkReadRequest, ReplyToSenderRequest, ResendMessageRequest, SendMessageRequest,
    WatchFeedRequest,
};
use serde_json::{Value, json};

const ACME: &str = "acc_acme";
const RIVAL: &str = "acc_rival";

fn sign(claims: &Value, algorithm: jsonwebtoken::Algorithm, key: &jsonwebtoken::EncodingKey) -> String {
    jsonwebtoken::encode(&jsonwebtoken::Header::new(algorithm), claims, key).unwrap_or_default()
}

fn claims(account: &str, exp_offset_secs: i64) -> Value {
    json!({"account_id": account, "exp": Utc::now().timestamp() + exp_offset_secs})
}

fn unsigned(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    format!("{header}.{}.", URL_SAFE_NO_PAD.encode(claims.to_string()))
}

fn rsa_pair(dir: &Path, name: &str) -> anyhow::Result<(Vec<u8>, std::path::PathBuf)> {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    let generated = Command::new("openssl").args(["genrsa", "-out"]).arg(&private).arg("2048").output()?;
    anyhow::ensure!(generated.status.success(), "openssl genrsa: {generated:?}");
    let exported =
        Command::new("openssl").args(["rsa", "-pubout", "-in"]).arg(&private).arg("-out").arg(&public).output()?;
    anyhow::ensure!(exported.status.success(), "openssl rsa: {exported:?}");
    Ok((std::fs::read(private)?, public))
}

/// The status code of every RPC called with `authorization` (none when `None`).
async fn every_rpc(
    client: &FeedServiceClient<tonic::transport::Channel>,
    authorization: Option<&str>,
) -> Vec<(&'static str, tonic::Code)> {
    fn request<T>(body: T, authorization: Option<&str>) -> tonic::Request<T> {
        let mut request = tonic::Request::new(body);
        if let Some(value) = authorization
            && let Ok(value) = value.parse()
        {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }
    let a = authorization;
    let mut c = client.clone();
    vec![
        ("ListMessages", code(c.list_messages(request(ListMessagesRequest::default(), a)).await)),
        (
            "GetThread",
            code(
                c.get_thread(request(GetThreadRequest { customer_id: "cus_a".into(), ..Default::default() }, a)).await,
            ),
        ),
        ("GetMessage", code(c.get_message(request(GetMessageRequest { message_id: "msg_x".into() }, a)).await)),
        (
            "SendMessage",
            code(
                c.send_message(request(
                    SendMessageRequest {
                        request_id: "auth-probe".into(),
                        customer_id: "cus_a".into(),
                        channel: Channel::Sms as i32,
                        text: "probe".into(),
                        subject: String::new(),
                    },
                    a,
                ))
                .await,
            ),
        ),
        ("WatchFeed", code(c.watch_feed(request(WatchFeedRequest::default(), a)).await)),
        ("GetCounts", code(c.get_counts(request(GetCountsRequest::default(), a)).await)),
        (
            "MarkRead",
            code(c.mark_read(request(MarkReadRequest { customer_id: "cus_a".into(), ..Default::default() }, a)).await),
        ),
        (
            "ReplyToSender",
            code(
                c.reply_to_sender(request(
                    ReplyToSenderRequest {
                        request_id: "auth-probe".into(),
                        sender: "+15125550177".into(),
                        text: "probe".into(),
                    },
                    a,
                ))
                .await,
            ),
        ),
        (
            "AttachThread",
            code(
                c.attach_thread(request(
                    AttachThreadRequest { sender: "+15125550177".into(), customer_id: "cus_a".into() },
                    a,
                ))
                .await,
            ),
        ),
        ("GetAccount", code(c.get_account(request(GetAccountRequest {}, a)).await)),
        (
            "ResendMessage",
            code(
                c.resend_message(request(
                    ResendMessageRequest {
                        request_id: "auth-probe".into(),
                        message_id: "msg_x".into(),
                        ..Default::default()
                    },
                    a,
                ))
                .await,
            ),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_checks_the_token_and_no_account_sees_another() -> anyhow::Result<()> {
    let keys = Scratch::new("e2e-keys");
    std::fs::create_dir_all(&*keys)?;
    let (private_pem, public_file) = rsa_pair(&keys, "dashboard")?;
    let (other_private_pem, _) = rsa_pair(&keys, "stranger")?;
    let feed_env = [("MSG_JWT_PUBLIC_KEY_FILE", public_file.display().to_string())];
    let overrides: [(&str, &[(&str, String)]); 1] = [("feed", &feed_env)];
    let mut stack = Stack::start_fresh_with("access", &overrides).await?;
    let publisher = Publisher::connect(&stack.infra.nats_url()).await?;
    for (id, acc) in [("a1", ACME), ("a2", RIVAL)] {
        publisher.event(&account(id, acc, "America/Chicago", ("00:00", "00:00"))).await?;
    }
    let body = json!({"customer": customer("cus_a", "Alma Acme", "+15125550161", ""),
                      "job": job("job_a", Utc::now() + chrono::Duration::days(3))});
    publisher.event(&event("e_a", "job.scheduled", ACME, Utc::now(), body)).await?;
    let acme = Dashboard::connect(stack.ports.grpc, ACME).await?;
    let acme_messages = acme.settled(1).await?;
    let acme_message = acme_messages[0].message_id.clone();

    let client = FeedServiceClient::connect(format!("http://127.0.0.1:{}", stack.ports.grpc)).await?;
    let hs = jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes());
    let rs = jsonwebtoken::EncodingKey::from_rsa_pem(&private_pem)?;
    let other_rs = jsonwebtoken::EncodingKey::from_rsa_pem(&other_private_pem)?;
    let public_pem = std::fs::read(&public_file)?;
    let confused = jsonwebtoken::EncodingKey::from_secret(&public_pem);
    let wrong_secret = jsonwebtoken::EncodingKey::from_secret(b"not-the-configured-secret-at-all");
    let hs256 = jsonwebtoken::Algorithm::HS256;
    let rs256 = jsonwebtoken::Algorithm::RS256;
    let bad: Vec<(&str, Option<String>)> = vec![
        ("no authorization", None),
        ("not a bearer", Some(format!("Basic {}", token(ACME)))),
        ("not a JWT", Some("Bearer not-a-jwt".into())),
        ("signed with another secret", Some(format!("Bearer {}", sign(&claims(ACME, 3600), hs256, &wrong_secret)))),
        ("expired", Some(format!("Bearer {}", sign(&claims(ACME, -3600), hs256, &hs)))),
        ("without exp", Some(format!("Bearer {}", sign(&json!({"account_id": ACME}), hs256, &hs)))),
        ("alg none", Some(format!("Bearer {}", unsigned(&claims(ACME, 3600))))),
        ("RS256 from another key", Some(format!("Bearer {}", sign(&claims(ACME, 3600), rs256, &other_rs)))),
        ("HS256 keyed with the public key", Some(format!("Bearer {}", sign(&claims(ACME, 3600), hs256, &confused)))),
        ("a malformed account id", Some(format!("Bearer {}", sign(&claims("acc bad!", 3600), hs256, &hs)))),
        ("no account id", Some(format!("Bearer {}", sign(&json!({"exp": Utc::now().timestamp() + 60}), hs256, &hs)))),
    ];
    for (case, authorization) in &bad {
        for (rpc, status) in every_rpc(&client, authorization.as_deref()).await {
            assert_eq!(status, tonic::Code::Unauthenticated, "{rpc} with {case}");
        }
    }
    // Both algorithms work on every RPC (the probes name things that do not exist, or are refused
    // on their merits, but they get past authentication).
    for (case, authorization) in [
        ("HS256", format!("Bearer {}", token(ACME))),
        ("RS256", format!("Bearer {}", sign(&claims(ACME, 3600), rs256, &rs))),
    ] {
        for (rpc, status) in every_rpc(&client, Some(&authorization)).await {
            assert_ne!(status, tonic::Code::Unauthenticated, "{rpc} with {case}");
        }
    }

    // The rival account sees nothing of Acme's.
    let rival = Dashboard::connect(stack.ports.grpc, RIVAL).await?;
    let mut grpc = rival.grpc();
    assert!(rival.clone().all().await.is_empty());
    let search = rival.clone().list(ListMessagesRequest { query: "Alma".into(), ..Default::default() }).await?;
    assert!(search.is_empty());
    let thread =
        grpc.get_thread(rival.authed(GetThreadRequest { customer_id: "cus_a".into(), ..Default::default() })).await;
    assert_eq!(code(thread), tonic::Code::NotFound);
    let message = grpc.get_message(rival.authed(GetMessageRequest { message_id: acme_message.clone() })).await;
    assert_eq!(code(message), tonic::Code::NotFound);
    let send = SendMessageRequest {
        request_id: "rival-1".into(),
        customer_id: "cus_a".into(),
        channel: Channel::Sms as i32,
        text: "Switch to us".into(),
        subject: String::new(),
    };
    assert_eq!(code(grpc.send_message(rival.authed(send)).await), tonic::Code::NotFound);
    let resend =
        ResendMessageRequest { request_id: "rival-2".into(), message_id: acme_message.clone(), ..Default::default() };
    assert_eq!(code(grpc.resend_message(rival.authed(resend)).await), tonic::Code::NotFound);
    let mark = MarkReadRequest { message_ids: vec![acme_message.clone()], customer_id: "cus_a".into() };
    assert_eq!(grpc.mark_read(rival.authed(mark)).await?.into_inner().marked, 0);
    let counts = grpc.get_counts(rival.authed(GetCountsRequest::default())).await?.into_inner();
    assert_eq!((counts.unread_total, counts.failed), (0, 0));
    // Acme still sees its message, and only it.
    let mut acme_grpc = acme.grpc();
    let own = acme_grpc.get_message(acme.authed(GetMessageRequest { message_id: acme_message })).await?;
    assert_eq!(own.into_inner().message.map(|m| m.customer.unwrap_or_default().customer_id), Some("cus_a".into()));
    stack.quiesce().await?;
    let previews: Vec<String> = acme.clone().all().await.iter().map(|m| m.preview.clone()).collect();
    assert_eq!(
        previews.len(),
        2,
        "the confirmation and one probe (sent with HS256, repeated with RS256): {previews:?}"
    );
    assert!(previews[0].starts_with("probe"), "the refused rival send left nothing: {previews:?}");
    let in_rival = with_bearer(ListMessagesRequest::default(), &token(RIVAL));
    assert!(acme_grpc.list_messages(in_rival).await?.into_inner().messages.is_empty());
    stack.stop().await;
    Ok(())
}
