//! TemplateService through the feed's gRPC server, run in process on a real Postgres and NATS:
//! a manager publishes versions, once per request id, and resets to the built-in wording; the
//! current version goes to the directory stream for dispatch; invalid templates are refused with
//! the part, line and variable; another account sees none of it, and a token whose role does not
//! manage the account can read but not change. A preview can use a real job: the values one of
//! the account's own messages was worded from.

use std::time::Duration;

use messaging_feed::projector::Projector;
use messaging_integration_tests::database::delivery;
use messaging_integration_tests::{Database, eventually};
use messaging_platform::bus::streams;
use messaging_platform::bus::{Outcome, TxHandler};
use messaging_proto::BusMessage;
use messaging_proto::bus::{MessageQueued, TemplatePublished};
use messaging_proto::v1::template_service_client::TemplateServiceClient;
use messaging_proto::v1::{
    Channel, GetTemplateRequest, ListTemplatesRequest, MessageType, PreviewTemplateRequest, PublishTemplateRequest,
    ResetTemplateRequest, TemplateContent,
};
use tonic::transport::Channel as Transport;

const SECRET: &str = "templates-test-secret";

struct Service {
    database: Database,
    nats: String,
    client: TemplateServiceClient<Transport>,
    shutdown: messaging_platform::Shutdown,
}

async fn start(name: &str) -> anyhow::Result<Service> {
    let database = Database::start(name).await?;
    let mut config = messaging_feed::Config::default();
    config.common.nats.url = database.infra.nats_url();
    config.common.database.url = database.infra.database_url();
    config.common.health.listen = "127.0.0.1:0".into();
    config.listen = "127.0.0.1:0".into();
    config.web_listen = String::new();
    config.jwt_secret = SECRET.into();
    let shutdown = messaging_platform::Shutdown::new();
    let app = messaging_feed::build(config, &shutdown).await?;
    let address = app.local_addr()?;
    tokio::spawn(app.run(shutdown.clone()));
    let client = TemplateServiceClient::connect(format!("http://{address}")).await?;
    Ok(Service { nats: database.infra.nats_url(), database, client, shutdown })
}

fn token(account: &str, role: Option<&str>) -> String {
    let mut claims = serde_json::json!({"account_id": account, "exp": chrono::Utc::now().timestamp() + 600});
    if let Some(role) = role {
        claims["role"] = role.into();
    }
    if role == Some("technician") {
        claims["technician_id"] = "tech_1".into();
    }
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap_or_default()
}

fn call<T>(body: T, token: &str) -> tonic::Request<T> {
    messaging_integration_tests::client::with_bearer(body, token)
}

fn sms(body: &str) -> Option<TemplateContent> {
    Some(TemplateContent { sms_body: body.into(), ..Default::default() })
}

fn publish(kind: MessageType, channel: Channel, content: Option<TemplateContent>, id: &str) -> PublishTemplateRequest {
    PublishTemplateRequest { r#type: kind as i32, channel: channel as i32, content, request_id: id.into() }
}

const CONFIRMATION: MessageType = MessageType::AppointmentConfirmation;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_publishes_versions_once_per_request_and_no_other_account_sees_them() -> anyhow::Result<()> {
    let mut service = start("feed-templates").await?;
    let (owner, office) = (token("acc_a", Some("owner")), token("acc_a", Some("office")));
    let listed = service.client.list_templates(call(ListTemplatesRequest {}, &owner)).await?.into_inner();
    assert_eq!(listed.templates.len(), 11, "six automatic types by SMS, all but on-my-way by email");
    assert!(listed.templates.iter().all(|t| t.built_in && t.version == 0));
    assert!(listed.variables.iter().any(|v| v.name == "job_window" && v.kind == "window"));
    // The built-in wording comes as a template to start from.
    let built_in =
        listed.templates.iter().find(|t| t.r#type == CONFIRMATION as i32 && t.channel == Channel::Sms as i32);
    let built_in = built_in.and_then(|t| t.content.clone()).unwrap_or_default().sms_body;
    assert!(built_in.starts_with("{{ business_name }}: Hi {{ customer_first_name }}"), "{built_in}");

    let first = "{{ business_name }}: see you {{ job_window }}, {{ customer_first_name }}!";
    let made =
        service.client.publish_template(call(publish(CONFIRMATION, Channel::Sms, sms(first), "r1"), &owner)).await?;
    let made = made.into_inner().template.unwrap_or_default();
    assert_eq!((made.version, made.built_in, made.content), (1, false, sms(first)));
    let again =
        service.client.publish_template(call(publish(CONFIRMATION, Channel::Sms, sms(first), "r1"), &owner)).await?;
    assert_eq!(again.into_inner().template.map(|t| t.version), Some(1), "a retry answers the same version");
    let reused =
        service.client.publish_template(call(publish(CONFIRMATION, Channel::Sms, sms("Hi"), "r1"), &owner)).await;
    assert_eq!(reused.map_err(|s| s.code()).err(), Some(tonic::Code::AlreadyExists));

    let second = "{{ business_name }}: booked for {{ job_date }} at {{ job_time }}.";
    service.client.publish_template(call(publish(CONFIRMATION, Channel::Sms, sms(second), "r2"), &office)).await?;
    let get = |version: u32| GetTemplateRequest { r#type: CONFIRMATION as i32, channel: Channel::Sms as i32, version };
    let current = service.client.get_template(call(get(0), &owner)).await?.into_inner().template.unwrap_or_default();
    assert_eq!((current.version, current.content), (2, sms(second)));
    let old = service.client.get_template(call(get(1), &owner)).await?.into_inner().template.unwrap_or_default();
    assert_eq!(old.content, sms(first), "versions are kept as published");

    let reset =
        ResetTemplateRequest { r#type: CONFIRMATION as i32, channel: Channel::Sms as i32, request_id: "r3".into() };
    let reset = service.client.reset_template(call(reset, &owner)).await?.into_inner().template.unwrap_or_default();
    let reset_to = reset.content.map(|c| c.sms_body).unwrap_or_default();
    assert_eq!((reset.version, reset.built_in, reset_to), (3, true, built_in));

    // The current version reaches the directory stream, where dispatch reads it.
    let stream = async_nats::jetstream::new(async_nats::connect(&service.nats).await?)
        .get_stream(streams::DIRECTORY.name)
        .await?;
    let subject = "directory.acc_a.template.appointment_confirmation.sms";
    let published = eventually(Duration::from_secs(5), "version 3 on the directory stream", || {
        let stream = stream.clone();
        async move {
            let last = stream.get_last_raw_message_by_subject(subject).await.ok()?;
            TemplatePublished::from_bytes(&last.payload).ok().filter(|t| t.version == 3)
        }
    })
    .await?;
    assert_eq!((published.account_id.as_str(), published.built_in), ("acc_a", true));

    // Another account: nothing of acc_a's, not even by version number.
    let other = token("acc_b", Some("owner"));
    let theirs = service.client.list_templates(call(ListTemplatesRequest {}, &other)).await?.into_inner();
    assert!(theirs.templates.iter().all(|t| t.built_in && t.version == 0), "{theirs:?}");
    let probe = service.client.get_template(call(get(1), &other)).await.map_err(|s| s.code()).err();
    assert_eq!(probe, Some(tonic::Code::NotFound));

    // Readers without a managing role read but do not change.
    for role in [Some("technician"), None] {
        let reader = token("acc_a", role);
        assert!(service.client.list_templates(call(ListTemplatesRequest {}, &reader)).await.is_ok());
        let denied =
            service.client.publish_template(call(publish(CONFIRMATION, Channel::Sms, sms(first), "r9"), &reader)).await;
        assert_eq!(denied.map_err(|s| s.code()).err(), Some(tonic::Code::PermissionDenied), "{role:?}");
    }
    let current = service.client.get_template(call(get(0), &owner)).await?.into_inner().template.unwrap_or_default();
    assert_eq!(current.version, 3, "nothing changed");
    service.shutdown.cancel();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_templates_are_refused_with_their_part_line_and_variable() -> anyhow::Result<()> {
    let mut service = start("feed-templates-invalid").await?;
    let owner = token("acc_a", Some("owner"));
    let preview = |kind: MessageType, channel: Channel, content: Option<TemplateContent>| PreviewTemplateRequest {
        r#type: kind as i32,
        channel: channel as i32,
        content,
        ..Default::default()
    };

    let reminder =
        preview(MessageType::Reminder, Channel::Sms, sms("Hi {{ customer_first_name }}\n{{ invoice_number }}"));
    let found = service.client.preview_template(call(reminder, &owner)).await?.into_inner();
    let problem = found.problems.first().cloned().unwrap_or_default();
    assert_eq!((problem.part.as_str(), problem.line, problem.variable.as_str()), ("sms_body", 2, "invoice_number"));
    assert!(found.rendered.is_none());

    let email = TemplateContent {
        subject: "{{ business_name }}: see you {{ job_date }}".into(),
        text: "Hi {{ customer_first_name }},\nsee you {{ job_window }}.".into(),
        ..Default::default()
    };
    let good =
        service.client.preview_template(call(preview(CONFIRMATION, Channel::Email, Some(email)), &owner)).await?;
    let rendered = good.into_inner().rendered.unwrap_or_default();
    assert_eq!(rendered.subject, "Ace Plumbing: see you Sat, Nov 28");
    assert!(rendered.text.starts_with("Hi Dana,"), "{rendered:?}");

    let costly = format!("{{{{ customer_first_name }}}} {}", "Thank you for your business. ".repeat(20));
    for (content, channel, says) in [
        (sms("Hi {% for x in customer_first_name %}{% endfor %}"), Channel::Sms, "sms_body line 1: `{% for %}`"),
        (sms(&costly), Channel::Sms, "segments"),
        (sms("Hi"), Channel::Email, "sms_body: sms_body is not a part of email templates"),
        (
            Some(TemplateContent { subject: "A\n{{ job_date }}".into(), text: "x".into(), ..Default::default() }),
            Channel::Email,
            "a subject is one line",
        ),
    ] {
        let refused =
            service.client.publish_template(call(publish(CONFIRMATION, channel, content, "bad"), &owner)).await;
        let status = refused.err().unwrap_or_else(|| tonic::Status::ok(""));
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{says}");
        assert!(status.message().contains(says), "{says}: {}", status.message());
    }
    // On-my-way messages go by SMS only: there is no email template to read or write.
    let content = Some(TemplateContent { subject: "On the way".into(), text: "Soon".into(), ..Default::default() });
    let email = publish(MessageType::OnMyWay, Channel::Email, content, "omw");
    let refused = service.client.publish_template(call(email, &owner)).await.err();
    assert!(refused.is_some_and(|s| s.code() == tonic::Code::InvalidArgument && s.message().contains("SMS only")));
    let get = GetTemplateRequest { r#type: MessageType::OnMyWay as i32, channel: Channel::Email as i32, version: 0 };
    let refused = service.client.get_template(call(get, &owner)).await.err();
    assert_eq!(refused.map(|s| s.code()), Some(tonic::Code::InvalidArgument));
    let listed = service.client.list_templates(call(ListTemplatesRequest {}, &owner)).await?.into_inner();
    assert!(listed.templates.iter().all(|t| t.version == 0), "nothing was published");
    service.shutdown.cancel();
    Ok(())
}

/// Projects a `queued` event of `account`'s message `id`, of type `kind`, carrying `values`.
async fn queued(service: &Service, account: &str, id: &str, kind: MessageType, values: &[(&str, &str)]) {
    let event = MessageQueued {
        message_id: id.into(),
        account_id: account.into(),
        direction: messaging_proto::v1::Direction::Outbound as i32,
        channel: Channel::Sms as i32,
        r#type: kind as i32,
        preview: "Hi".into(),
        queued_at: Some(messaging_proto::time::now()),
        values: values.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..Default::default()
    };
    let mut tx = service.database.pool.begin().await.expect("begin");
    assert_eq!(Projector.handle(&mut tx, &delivery(&event)).await, Outcome::Ack);
    tx.commit().await.expect("commit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_uses_a_real_job_of_the_account_and_only_of_that_account() -> anyhow::Result<()> {
    let mut service = start("feed-templates-job").await?;
    let owner = token("acc_a", Some("owner"));
    let job = [
        ("business_name", "Reyes & Sons"),
        ("customer_first_name", "{{ business_name }}"),
        ("job_window", "Tue, Dec 8 between 1:00 PM and 3:00 PM"),
    ];
    queued(&service, "acc_a", "msg_job", CONFIRMATION, &job).await;
    queued(&service, "acc_a", "msg_reminder", MessageType::Reminder, &job).await;
    queued(&service, "acc_a", "msg_sparse", CONFIRMATION, &[("business_name", "Reyes & Sons")]).await;
    queued(&service, "acc_a", "msg_manual", MessageType::Manual, &[]).await;
    queued(&service, "acc_b", "msg_other", CONFIRMATION, &job).await;
    let source = "{{ business_name }}: Hi {{ customer_first_name }}, see you {{ job_window }}.";
    let with = |message_id: &str| PreviewTemplateRequest {
        r#type: CONFIRMATION as i32,
        channel: Channel::Sms as i32,
        content: sms(source),
        message_id: message_id.into(),
    };

    let real = service.client.preview_template(call(with("msg_job"), &owner)).await?.into_inner();
    let rendered = real.rendered.unwrap_or_default().sms_body;
    // The customer's name looks like template syntax and stays text.
    assert_eq!(rendered, "Reyes & Sons: Hi {{ business_name }}, see you Tue, Dec 8 between 1:00 PM and 3:00 PM.");
    let sample = service.client.preview_template(call(with(""), &owner)).await?.into_inner();
    assert!(sample.rendered.unwrap_or_default().sms_body.starts_with("Ace Plumbing: Hi Dana"));

    // A job without a value the template uses: the preview says the built-in wording would go.
    let sparse = service.client.preview_template(call(with("msg_sparse"), &owner)).await?.into_inner();
    let problem = sparse.problems.first().cloned().unwrap_or_default();
    assert!(problem.message.starts_with("with this message's job data"), "{problem:?}");
    assert!(problem.message.contains("built-in wording"), "{problem:?}");
    assert!(sparse.rendered.is_none());

    for (id, code) in [
        ("msg_other", tonic::Code::NotFound),
        ("msg_nowhere", tonic::Code::NotFound),
        ("msg_reminder", tonic::Code::InvalidArgument),
        ("msg_manual", tonic::Code::InvalidArgument),
    ] {
        let refused = service.client.preview_template(call(with(id), &owner)).await.err();
        assert_eq!(refused.map(|s| s.code()), Some(code), "{id}");
    }
    // A message projected before messages kept their values has none to preview with.
    sqlx::query("UPDATE feed.messages SET template_values = NULL WHERE message_id = 'msg_job'")
        .execute(&service.database.pool)
        .await?;
    let old = service.client.preview_template(call(with("msg_job"), &owner)).await.err();
    assert_eq!(old.map(|s| s.code()), Some(tonic::Code::FailedPrecondition));
    service.shutdown.cancel();
    Ok(())
}
