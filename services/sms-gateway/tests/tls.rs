//! The Twilio adapter over real TLS: the simulator serves HTTPS with a certificate from a test CA.
//! Trusting that CA (`tls.ca_file`) the adapter sends and lists; trusting only the built-in roots it
//! refuses the server with a configuration fault (never "maybe sent", never a plain retry).

use chrono::Utc;
use messaging_integration_tests::Scratch;
use messaging_integration_tests::tls::TestCa;
use messaging_platform::tls::TlsConfig;
use messaging_provider_sim::Faults;
use messaging_sms_gateway::twilio::{SendError, SmsProvider, SmsRequest, Twilio, TwilioConfig};

mod sim;

use sim::{SID, TOKEN};

async fn https_simulator(ca: &TestCa) -> String {
    sim::start(Faults { callback_delay_ms: 60_000, ..Default::default() }, Some(ca)).await
}

fn request() -> SmsRequest {
    SmsRequest {
        to: "+15125550199".into(),
        from: "+15125550100".into(),
        body: "Ace Plumbing: Luis is on the way.".into(),
        status_callback: String::new(),
        validity_seconds: 0,
    }
}

fn twilio(base_url: &str, tls: &TlsConfig) -> Twilio {
    let config = TwilioConfig {
        base_url: base_url.into(),
        account_sid: SID.into(),
        auth_token: TOKEN.into(),
        ..Default::default()
    };
    Twilio::new(config, tls).expect("client")
}

#[tokio::test]
async fn a_provider_with_a_trusted_certificate_is_reached_over_https() {
    let dir = Scratch::new("sms-tls-trusted");
    let ca = TestCa::new(&dir, "provider").expect("test CA");
    let base = https_simulator(&ca).await;
    let trusting = TlsConfig { ca_file: ca.ca_file.display().to_string() };

    let sent = twilio(&base, &trusting).send(&request()).await.expect("accepted over TLS");
    assert!(sent.sid.starts_with("SM"), "{sent:?}");
    let listed = twilio(&base, &trusting).list("+15125550199", "+15125550100", Utc::now()).await.expect("listed");
    assert!(listed.iter().any(|m| m.sid == sent.sid), "{listed:?}");
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_configuration_fault_and_nothing_is_sent() {
    let dir = Scratch::new("sms-tls-untrusted");
    let ca = TestCa::new(&dir, "provider").expect("test CA");
    let other = TestCa::new(&dir, "other").expect("another CA");
    let base = https_simulator(&ca).await;

    for tls in [TlsConfig::default(), TlsConfig { ca_file: other.ca_file.display().to_string() }] {
        let refused = twilio(&base, &tls).send(&request()).await.expect_err("untrusted server");
        match &refused {
            SendError::Misconfigured(detail) => assert!(detail.contains("not trusted"), "{detail}"),
            other => panic!("expected a configuration fault, got {other:?}"),
        }
        let lookup = twilio(&base, &tls).list("+15125550199", "+15125550100", Utc::now()).await;
        assert!(matches!(lookup, Err(SendError::Misconfigured(_))), "{lookup:?}");
    }
    let trusting = TlsConfig { ca_file: ca.ca_file.display().to_string() };
    let listed = twilio(&base, &trusting).list("+15125550199", "+15125550100", Utc::now()).await.expect("listed");
    assert!(listed.is_empty(), "an untrusted connection must send nothing: {listed:?}");
}

#[test]
fn a_ca_file_that_is_missing_or_not_pem_is_refused_naming_the_key() {
    let missing = TlsConfig { ca_file: "/nonexistent/ca.pem".into() }.client_config().expect_err("missing");
    assert!(missing.to_string().contains("tls.ca_file"), "{missing}");
    let dir = Scratch::new("sms-tls-ca-file");
    std::fs::create_dir_all(&dir).expect("dir");
    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "not a certificate").expect("write");
    let refused = TlsConfig { ca_file: junk.display().to_string() }.client_config().expect_err("junk");
    assert!(refused.to_string().contains("tls.ca_file"), "{refused}");
}
