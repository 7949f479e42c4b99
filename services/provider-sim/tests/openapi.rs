//! The simulator speaks Twilio's Messages API as Twilio's official OpenAPI description defines it:
//! the parameters it accepts exist there, and every response field it returns is declared there
//! with a matching type.

use std::path::PathBuf;

use messaging_provider_sim::{Faults, SimConfig};
use serde_json::Value;

const SID: &str = "AC00000000000000000000000000000000";
const TOKEN: &str = "secret-token";
const MESSAGES: &str = "/2010-04-01/Accounts/{AccountSid}/Messages.json";

fn spec() -> Value {
    let path = std::env::var("TWILIO_OPENAPI").map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/twilio/twilio_api_v2010.json")
    });
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("Twilio OpenAPI description at {}: {e}", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            resolve(spec, &spec["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// Checks `value` against `schema`; returns the violations as paths.
fn check(spec: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    let schema = resolve(spec, schema);
    if value.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) && schema.get("type").is_some() {
            problems.push(format!("{at}: null but not nullable"));
        }
        return;
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        problems.push(format!("{at}: {value} not in {options:?}"));
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("string") if !value.is_string() => problems.push(format!("{at}: expected a string, got {value}")),
        Some("integer") if !value.is_i64() && !value.is_u64() => {
            problems.push(format!("{at}: expected an integer, got {value}"))
        }
        Some("array") => match value.as_array() {
            Some(items) => items
                .iter()
                .enumerate()
                .for_each(|(i, item)| check(spec, &schema["items"], item, &format!("{at}[{i}]"), problems)),
            None => problems.push(format!("{at}: expected an array")),
        },
        Some("object") | None if schema.get("properties").is_some() => match value.as_object() {
            Some(object) => {
                for (key, field) in object {
                    match schema["properties"].get(key) {
                        Some(field_schema) => check(spec, field_schema, field, &format!("{at}.{key}"), problems),
                        None => problems.push(format!("{at}.{key}: not declared by the schema")),
                    }
                }
            }
            None => problems.push(format!("{at}: expected an object")),
        },
        _ => {}
    }
}

async fn simulator() -> String {
    let config = SimConfig {
        listen: "127.0.0.1:0".into(),
        account_sid: SID.into(),
        auth_token: TOKEN.into(),
        inbound_url: String::new(),
        faults: Faults { callback_delay_ms: 10, ..Default::default() },
        tls_cert_file: String::new(),
        tls_key_file: String::new(),
    };
    let simulator = messaging_provider_sim::build(config).await.expect("binds");
    let address = simulator.local_addr().expect("address");
    tokio::spawn(simulator.run(tokio_util::sync::CancellationToken::new()));
    format!("http://{address}/2010-04-01/Accounts/{SID}/Messages.json")
}

#[tokio::test]
async fn create_fetch_and_list_match_the_description() {
    let spec = spec();
    let url = simulator().await;
    let http = reqwest::Client::new();

    let request_schema =
        &spec["paths"][MESSAGES]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"];
    let form = [
        ("To", "+15125550199"),
        ("From", "+15125550100"),
        ("Body", "Hi Dana"),
        ("StatusCallback", "http://127.0.0.1:9/cb"),
        ("ValidityPeriod", "1800"),
    ];
    for (name, _) in &form {
        assert!(request_schema["properties"].get(*name).is_some(), "{name} is not a Messages create parameter");
    }
    for required in request_schema["required"].as_array().expect("required") {
        assert!(form.iter().any(|(name, _)| required.as_str() == Some(*name)), "missing required {required}");
    }

    let created = http.post(&url).basic_auth(SID, Some(TOKEN)).form(&form).send().await.expect("create");
    assert_eq!(created.status().as_u16(), 201);
    let created: Value = created.json().await.expect("json");
    let message_schema = &spec["paths"][MESSAGES]["post"]["responses"]["201"]["content"]["application/json"]["schema"];
    let mut problems = Vec::new();
    check(&spec, message_schema, &created, "create", &mut problems);
    let declared = resolve(&spec, message_schema)["properties"].as_object().expect("properties");
    for key in declared.keys() {
        assert!(created.get(key).is_some(), "create response lacks {key}");
    }

    let sid = created["sid"].as_str().expect("sid");
    let fetched: Value = http
        .get(url.replace("Messages.json", &format!("Messages/{sid}.json")))
        .basic_auth(SID, Some(TOKEN))
        .send()
        .await
        .expect("fetch")
        .json()
        .await
        .expect("json");
    check(&spec, message_schema, &fetched, "fetch", &mut problems);

    let list_schema = &spec["paths"][MESSAGES]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    let list_params: Vec<&str> = spec["paths"][MESSAGES]["get"]["parameters"]
        .as_array()
        .expect("params")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    let list = |query: Vec<(&'static str, &'static str)>| {
        for (name, _) in &query {
            assert!(list_params.contains(name), "{name} is not a list parameter");
        }
        http.get(&url).basic_auth(SID, Some(TOKEN)).query(&query).send()
    };
    let listed: Value =
        list(vec![("To", "+15125550199"), ("PageSize", "20")]).await.expect("list").json().await.expect("json");
    check(&spec, list_schema, &listed, "list", &mut problems);
    assert_eq!(listed["messages"].as_array().map(Vec::len), Some(1));
    // As Twilio's, the date filters read date_sent, which the still-queued message does not have.
    let by_date: Value = list(vec![("To", "+15125550199"), ("DateSent>", "2020-01-01")])
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    check(&spec, list_schema, &by_date, "list by date", &mut problems);
    assert_eq!(by_date["messages"].as_array().map(Vec::len), Some(0), "{by_date}");
    assert!(problems.is_empty(), "responses do not match the description:\n{}", problems.join("\n"));
}

#[tokio::test]
async fn refuses_what_twilio_refuses_with_twilio_errors() {
    let url = simulator().await;
    let http = reqwest::Client::new();
    let post = |form: Vec<(&'static str, &'static str)>, password: &'static str| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let response = http.post(&url).basic_auth(SID, Some(password)).form(&form).send().await.expect("send");
            let status = response.status().as_u16();
            let body: Value = response.json().await.expect("json");
            (status, body)
        }
    };
    let cases = [
        (vec![("To", "+15125550199"), ("From", "+15125550100"), ("Body", "x")], "wrong", 401, 20003),
        (vec![("From", "+15125550100"), ("Body", "x")], TOKEN, 400, 21604),
        (vec![("To", "+15125550199"), ("Body", "x")], TOKEN, 400, 21603),
        (vec![("To", "+15125550199"), ("From", "+15125550100")], TOKEN, 400, 21602),
        (vec![("To", "512-555-0199"), ("From", "+15125550100"), ("Body", "x")], TOKEN, 400, 21211),
        (vec![("To", "+15005550001"), ("From", "+15125550100"), ("Body", "x")], TOKEN, 400, 21211),
        (vec![("To", "+15005550004"), ("From", "+15125550100"), ("Body", "x")], TOKEN, 400, 21610),
        (vec![("To", "+15005550009"), ("From", "+15125550100"), ("Body", "x")], TOKEN, 400, 21614),
    ];
    for (form, password, status, code) in cases {
        let (got_status, body) = post(form.clone(), password).await;
        assert_eq!((got_status, body["code"].as_i64()), (status, Some(code)), "{form:?}: {body}");
        assert_eq!(body["status"].as_u64(), Some(u64::from(status)));
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(body["more_info"].as_str(), Some(format!("https://www.twilio.com/docs/errors/{code}").as_str()));
    }
}

#[test]
fn the_checker_catches_undeclared_fields_and_wrong_types() {
    let spec = spec();
    let schema = serde_json::json!({"$ref": "#/components/schemas/api.v2010.account.message"});
    let mut problems = Vec::new();
    check(&spec, &schema, &serde_json::json!({"sid": 5, "status": "teleported", "surprise": true}), "m", &mut problems);
    assert_eq!(problems.len(), 3, "{problems:?}");
}
