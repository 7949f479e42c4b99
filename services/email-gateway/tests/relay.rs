//! The SMTP relay client against a real SMTP server (aiosmtpd): STARTTLS and implicit TLS with a
//! test CA and a login; an untrusted certificate or refused login is a configuration fault that
//! sends nothing; a relay that keeps the message and drops the connection before its verdict is
//! `Ambiguous` (never retried), while a 4xx is retried and a 5xx fails.

use std::path::{Path, PathBuf};

use messaging_email_gateway::relay::Smtp;
use messaging_email_gateway::smtp::{Email, MailError, Mailer, SmtpConfig};
use messaging_integration_tests::process::Managed;
use messaging_integration_tests::tls::TestCa;
use messaging_integration_tests::{Scratch, free_port, stack::python, wait_for_port};
use messaging_platform::tls::TlsConfig;

struct Sink {
    _process: Managed,
    port: u16,
    mail_dir: PathBuf,
}

impl Sink {
    async fn start(dir: &Path, options: &[String]) -> Sink {
        let mail_dir = dir.join(format!("mail-{}", uuid::Uuid::new_v4()));
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(mail_dir.join(sub)).expect("maildir");
        }
        let port = free_port();
        let mut args = vec![
            messaging_integration_tests::repo_root()
                .join("integration-tests/python/smtp_sink.py")
                .display()
                .to_string(),
            "127.0.0.1".to_owned(),
            port.to_string(),
            mail_dir.display().to_string(),
        ];
        args.extend(options.iter().cloned());
        let process = Managed::start(&format!("smtp-{port}"), &python(), &args, &[], dir).expect("starts");
        wait_for_port(port, "the SMTP server").await.expect("listening");
        Sink { _process: process, port, mail_dir }
    }

    fn stored(&self) -> Vec<String> {
        std::fs::read_dir(self.mail_dir.join("new"))
            .expect("maildir")
            .map(|entry| std::fs::read_to_string(entry.expect("entry").path()).expect("mail"))
            .collect()
    }
}

fn workdir(name: &str) -> Scratch {
    let dir = Scratch::new(name);
    std::fs::create_dir_all(&*dir).expect("dir");
    dir
}

fn email(to: &str) -> Email {
    Email {
        message_id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
        from_name: "Ace Plumbing".into(),
        from: "office@ace.example".into(),
        to: to.into(),
        reply_to: String::new(),
        subject: "Your appointment".into(),
        text: "See you tomorrow at 9.".into(),
        html: "<p>See you tomorrow at 9.</p>".into(),
        unsubscribe_url: String::new(),
        open_pixel_url: String::new(),
        tracking_token: String::new(),
    }
}

fn relay(port: u16, tls: &str, login: Option<(&str, &str)>, trust: &TlsConfig) -> Smtp {
    let (username, password) = login.unwrap_or_default();
    let config = SmtpConfig {
        host: "localhost".into(),
        port,
        tls: tls.into(),
        username: username.into(),
        password: password.into(),
        timeout_ms: 5_000,
        ..Default::default()
    };
    Smtp::new(&config, trust, "ace.example").expect("relay client")
}

fn secure_options(ca: &TestCa, implicit: bool) -> Vec<String> {
    let mut options = vec![
        "--cert".to_owned(),
        ca.cert_file.display().to_string(),
        "--key".to_owned(),
        ca.key_file.display().to_string(),
        "--auth".to_owned(),
        "ace:s3cret".to_owned(),
    ];
    if implicit {
        options.push("--implicit-tls".to_owned());
    }
    options
}

#[tokio::test]
async fn starttls_and_implicit_tls_with_a_login_deliver_over_pooled_sessions() {
    let dir = workdir("relay-tls");
    let ca = TestCa::new(&dir, "relay").expect("test CA");
    let trust = TlsConfig { ca_file: ca.ca_file.display().to_string() };
    for (mode, implicit) in [("starttls", false), ("tls", true)] {
        let sink = Sink::start(&dir, &secure_options(&ca, implicit)).await;
        let smtp = relay(sink.port, mode, Some(("ace", "s3cret")), &trust);
        for _ in 0..3 {
            smtp.send(&email("dana@example.com")).await.unwrap_or_else(|e| panic!("{mode}: {e}"));
        }
        let stored = sink.stored();
        assert_eq!(stored.len(), 3, "{mode}");
        assert!(stored.iter().all(|mail| mail.contains("Subject: Your appointment")), "{mode}");
    }
}

#[tokio::test]
async fn an_untrusted_certificate_or_a_refused_login_sends_nothing_and_says_why() {
    let dir = workdir("relay-refused");
    let ca = TestCa::new(&dir, "relay").expect("test CA");
    let sink = Sink::start(&dir, &secure_options(&ca, false)).await;
    let trust = TlsConfig { ca_file: ca.ca_file.display().to_string() };

    let untrusted = relay(sink.port, "starttls", Some(("ace", "s3cret")), &TlsConfig::default());
    match untrusted.send(&email("dana@example.com")).await {
        Err(MailError::Misconfigured(detail)) => assert!(detail.contains("not trusted"), "{detail}"),
        other => panic!("expected a configuration fault, got {other:?}"),
    }
    let wrong_login = relay(sink.port, "starttls", Some(("ace", "guess")), &trust);
    match wrong_login.send(&email("dana@example.com")).await {
        Err(MailError::Misconfigured(detail)) => assert!(detail.contains("credentials"), "{detail}"),
        other => panic!("expected a configuration fault, got {other:?}"),
    }
    assert!(sink.stored().is_empty());
}

#[tokio::test]
async fn a_relay_that_drops_the_connection_after_the_message_is_ambiguous_not_retried() {
    let dir = workdir("relay-dropped");
    let sink = Sink::start(&dir, &[]).await;
    let smtp = relay(sink.port, "none", None, &TlsConfig::default());

    match smtp.send(&email("drop-after-data@example.com")).await {
        Err(MailError::Ambiguous(detail)) => assert!(detail.contains("no verdict"), "{detail}"),
        other => panic!("expected an unknown outcome, got {other:?}"),
    }
    assert_eq!(sink.stored().len(), 1, "the relay kept it: a resend would deliver it twice");

    assert!(matches!(smtp.send(&email("fail550@example.com")).await, Err(MailError::Permanent(_))));
    assert!(matches!(smtp.send(&email("defer451@example.com")).await, Err(MailError::Transient(_))));
    smtp.send(&email("dana@example.com")).await.expect("the pool recovers after a dropped session");
    assert_eq!(sink.stored().len(), 2);
}
