//! msgctl: developer commands for the local system: mint a dashboard token, publish a demo day of
//! job events or one event by hand, print an account's feed over gRPC.

mod demo;
mod feed;

use std::collections::HashMap;

/// Parses `--name value` pairs after the subcommand.
fn flags(args: &[String]) -> anyhow::Result<HashMap<String, String>> {
    let mut map = HashMap::new();
    let mut iter = args.iter();
    while let Some(name) = iter.next() {
        let key = name.strip_prefix("--").ok_or_else(|| anyhow::anyhow!("unexpected argument {name:?}"))?;
        let value = iter.next().ok_or_else(|| anyhow::anyhow!("--{key} needs a value"))?;
        map.insert(key.to_owned(), value.clone());
    }
    Ok(map)
}

const USAGE: &str = "usage:
  msgctl token --account ID [--role owner|office|technician] [--technician ID] [--secret S] [--hours H]
  msgctl demo  --account ID [--nats URL]
  msgctl event --account ID --type TYPE --json '{\"customer\": {…}}' [--nats URL]
  msgctl feed  --account ID [--grpc URL] [--secret S] [--limit N]

The secret defaults to $MSG_JWT_SECRET, NATS to $MSG_NATS__URL, gRPC to http://127.0.0.1:$GRPC_PORT.";

fn nats(flags: &HashMap<String, String>) -> String {
    flags
        .get("nats")
        .cloned()
        .or_else(|| std::env::var("MSG_NATS__URL").ok())
        .unwrap_or_else(|| "nats://127.0.0.1:4222".into())
}

fn secret(flags: &HashMap<String, String>) -> String {
    flags
        .get("secret")
        .cloned()
        .or_else(|| std::env::var("MSG_JWT_SECRET").ok())
        .unwrap_or_else(|| "dev-jwt-secret-change-me".to_owned())
}

/// A dashboard token for `account` with `role` (owner and office may change templates), valid for
/// `hours`; a technician's names `technician` (they see only their jobs' customers).
pub fn mint(account: &str, role: &str, technician: Option<&str>, secret: &str, hours: i64) -> anyhow::Result<String> {
    messaging_domain::AccountId::parse(account)?;
    anyhow::ensure!(["owner", "office", "technician"].contains(&role), "--role must be owner, office or technician");
    anyhow::ensure!(
        (role == "technician") == technician.is_some(),
        "--technician ID goes with --role technician, and only with it"
    );
    if let Some(id) = technician {
        messaging_domain::TechnicianId::parse(id)?;
    }
    let mut claims = serde_json::json!({
        "account_id": account,
        "role": role,
        "sub": format!("dev:{account}"),
        "iat": chrono::Utc::now().timestamp(),
        "exp": (chrono::Utc::now() + chrono::Duration::hours(hours)).timestamp(),
    });
    if let Some(id) = technician {
        claims["technician_id"] = id.into();
    }
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        eprintln!("{USAGE}");
        std::process::exit(64);
    };
    let flags = flags(&args[1..])?;
    let account = flags.get("account").cloned().ok_or_else(|| anyhow::anyhow!("--account is required\n{USAGE}"))?;
    match command.as_str() {
        "token" => {
            let hours = flags.get("hours").map(|h| h.parse()).transpose()?.unwrap_or(24);
            let role = flags.get("role").map_or("owner", String::as_str);
            let technician = flags.get("technician").map(String::as_str);
            println!("{}", mint(&account, role, technician, &secret(&flags), hours)?);
        }
        "demo" => {
            let published = demo::publish_day(&nats(&flags), &account).await?;
            println!("published {published} job events for {account}");
        }
        "event" => {
            let kind = flags.get("type").ok_or_else(|| anyhow::anyhow!("--type is required\n{USAGE}"))?;
            let body: serde_json::Value = serde_json::from_str(flags.get("json").map_or("{}", String::as_str))?;
            let id = demo::publish_event(&nats(&flags), &account, kind, &body).await?;
            println!("published {kind} {id} for {account}");
        }
        "feed" => {
            let port = std::env::var("GRPC_PORT").unwrap_or_else(|_| "50051".into());
            let url = flags.get("grpc").cloned().unwrap_or_else(|| format!("http://127.0.0.1:{port}"));
            let limit = flags.get("limit").map(|l| l.parse()).transpose()?.unwrap_or(50);
            let token = mint(&account, "owner", None, &secret(&flags), 1)?;
            feed::print(&url, &token, limit).await?;
        }
        other => {
            eprintln!("unknown command {other:?}\n{USAGE}");
            std::process::exit(64);
        }
    }
    Ok(())
}
