//! The Twilio adapter's requests validate against Twilio's official OpenAPI description: every
//! create parameter it sends is declared for Messages create, with a value of the declared type,
//! and every required one is present; with `From` and with a Messaging Service, with and without
//! `ValidityPeriod`.

use std::path::PathBuf;

use chrono::Utc;
use messaging_provider_sim::Faults;
use messaging_sms_gateway::twilio::{SmsProvider, SmsRequest, Twilio, TwilioConfig};
use serde_json::Value;

mod sim;

use sim::{SID, TOKEN};
const MESSAGES: &str = "/2010-04-01/Accounts/{AccountSid}/Messages.json";

fn spec() -> Value {
    let path = std::env::var("TWILIO_OPENAPI").map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/twilio/twilio_api_v2010.json")
    });
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("Twilio OpenAPI description at {}: {e}", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

fn create_schema(spec: &Value) -> &Value {
    &spec["paths"][MESSAGES]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
}

/// What is wrong with one form parameter against its declared schema, if anything.
fn check_param(schema: &Value, name: &str, value: &str) -> Option<String> {
    let Some(declared) = schema["properties"].get(name) else {
        return Some(format!("{name} is not a Messages create parameter"));
    };
    match declared["type"].as_str() {
        Some("integer") if value.parse::<i64>().is_err() => Some(format!("{name}={value:?} is not an integer")),
        Some("boolean") if !matches!(value, "true" | "false") => Some(format!("{name}={value:?} is not a boolean")),
        Some("string") if declared["format"] == "uri" && !value.starts_with("http") => {
            Some(format!("{name}={value:?} is not a URI"))
        }
        _ => declared["enum"]
            .as_array()
            .filter(|options| !options.iter().any(|o| o == value))
            .map(|options| format!("{name}={value:?} not in {options:?}")),
    }
}

#[tokio::test]
async fn every_create_request_validates_against_the_description() {
    let spec = spec();
    let schema = create_schema(&spec);
    let base = sim::start(Faults { callback_delay_ms: 60_000, ..Default::default() }, None).await;

    let config = TwilioConfig {
        base_url: base.clone(),
        account_sid: SID.into(),
        auth_token: TOKEN.into(),
        ..Default::default()
    };
    let with_service =
        TwilioConfig { messaging_service_sid: "MG00000000000000000000000000000000".into(), ..config.clone() };
    for (config, validity_seconds) in [(config.clone(), 0), (config, 1800), (with_service, 1800)] {
        let twilio = Twilio::new(config, &Default::default()).expect("client");
        let request = SmsRequest {
            to: "+15125550199".into(),
            from: "+15125550100".into(),
            body: "Ace Plumbing: Luis is on the way. Reply STOP to opt out.".into(),
            status_callback: "http://127.0.0.1:8080/webhooks/twilio/status/token".into(),
            validity_seconds,
        };
        let sent = twilio.send(&request).await.expect("accepted");
        assert!(sent.sid.starts_with("SM"));
        let listed = twilio.list(&request.to, &request.from, Utc::now()).await;
        assert!(listed.is_ok(), "{listed:?}");
    }

    let recorded: Value =
        reqwest::get(format!("{base}/sim/requests")).await.expect("requests").json().await.expect("json");
    let requests = recorded["requests"].as_array().expect("requests");
    assert_eq!(requests.len(), 3);
    let mut problems = Vec::new();
    for request in requests {
        let params: Vec<(String, String)> = serde_json::from_value(request["params"].clone()).expect("pairs");
        for (name, value) in &params {
            problems.extend(check_param(schema, name, value));
        }
        for required in schema["required"].as_array().expect("required") {
            if !params.iter().any(|(name, _)| required.as_str() == Some(name)) {
                problems.push(format!("required {required} missing from {params:?}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let with_validity = requests.iter().filter(|r| r["params"].to_string().contains("ValidityPeriod")).count();
    assert_eq!(with_validity, 2, "on-my-way style requests carry ValidityPeriod");
    assert!(requests[2]["params"].to_string().contains("MessagingServiceSid"));
}

#[test]
fn the_checker_catches_undeclared_parameters_and_wrong_types() {
    let spec = spec();
    let schema = create_schema(&spec);
    assert!(check_param(schema, "Teleport", "yes").is_some());
    assert!(check_param(schema, "ValidityPeriod", "soon").is_some());
    assert!(check_param(schema, "To", "+15125550199").is_none());
}
