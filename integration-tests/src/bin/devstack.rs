//! `make run`: the whole system on this machine with a demo. Starts nats-server, Postgres, the
//! provider simulator, an SMTP server and every service; publishes a day of job events for a demo
//! account; prints the feed and how to query it; runs until Ctrl-C, then stops everything.

use std::process::Command;

use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};

use messaging_integration_tests::stack::JWT_SECRET;
use messaging_integration_tests::{Ports, Stack, bin_dir, repo_root};

fn port(name: &str, default: u16) -> anyhow::Result<u16> {
    match std::env::var(name) {
        Ok(value) => value.parse().map_err(|_| anyhow::anyhow!("{name}={value:?} is not a port")),
        Err(_) => Ok(default),
    }
}

fn msgctl(args: &[&str], grpc_port: u16) -> anyhow::Result<String> {
    let output = Command::new(bin_dir().join("msgctl"))
        .args(args)
        .env("GRPC_PORT", grpc_port.to_string())
        .env("MSG_JWT_SECRET", JWT_SECRET)
        .output()?;
    anyhow::ensure!(output.status.success(), "msgctl {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let ports = Ports {
        nats: port("NATS_PORT", 14222)?,
        postgres: port("POSTGRES_PORT", 15432)?,
        grpc: port("GRPC_PORT", 50051)?,
        web: port("WEB_PORT", 18090)?,
        webhook: port("WEBHOOK_PORT", 18080)?,
        sim: port("SIM_PORT", 14010)?,
        smtp: port("SMTP_PORT", 12525)?,
    };
    let data = std::env::var("DATA_DIR").map(std::path::PathBuf::from).unwrap_or_else(|_| repo_root().join(".data"));
    std::fs::create_dir_all(&data)?;
    let data = data.canonicalize()?;
    println!(
        "starting nats-server, Postgres, the provider simulator, an SMTP server and six services (data in {})",
        data.display()
    );
    // Signals are ours from the first moment: a Ctrl-C or SIGTERM during start-up drops the
    // half-started stack, which stops whatever it had started (Postgres too).
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let stop = async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    };
    tokio::pin!(stop);
    let mut stack = tokio::select! {
        started = Stack::start(&data, ports, true) => started?,
        _ = &mut stop => {
            println!("\nstopped during start-up");
            return Ok(());
        }
    };
    tokio::select! {
        shown = demo(&stack, ports) => shown?,
        _ = &mut stop => {
            println!("\nstopping…");
            stack.stop().await;
            println!("stopped");
            return Ok(());
        }
    }
    stop.await;
    println!("\nstopping…");
    stack.stop().await;
    println!("stopped");
    Ok(())
}

/// Publishes the demo day (unless `DEMO=0`), prints the feed, how to query it, and READY.
async fn demo(stack: &Stack, ports: Ports) -> anyhow::Result<()> {
    let data = stack.infra.dir.clone();
    let account = std::env::var("ACCOUNT").unwrap_or_else(|_| "acc_demo".to_owned());
    let nats = stack.infra.nats_url();
    if std::env::var("DEMO").as_deref() != Ok("0") {
        println!("{}", msgctl(&["demo", "--account", &account, "--nats", &nats], ports.grpc)?.trim());
        tokio::time::sleep(Duration::from_secs(6)).await;
        println!("\nThe Messages feed of {account}:\n");
        println!("{}", msgctl(&["feed", "--account", &account], ports.grpc)?);
    }
    let token = msgctl(&["token", "--account", &account, "--hours", "12"], ports.grpc)?;
    println!(
        "The Messages page of {account} (signed in for 12 hours; the token stays in the URL's fragment,
which the browser never sends):
  http://localhost:{web}/#token={token}

Query it yourself:
  token:  make token ACCOUNT={account}
  feed:   target/debug/msgctl feed --account {account}     (GRPC_PORT={grpc})
  gRPC:   localhost:{grpc}  messaging.v1.FeedService/ListMessages  with  authorization: Bearer <token>
  more events: target/debug/msgctl demo --account {account} --nats {nats}
Logs: {logs}
Ports: NATS {np}, Postgres {pp}, gRPC {grpc}, gRPC-Web and the page {web}, webhooks {wp}, simulator {sp}, SMTP {mp}.
Press Ctrl-C to stop everything.
READY",
        grpc = ports.grpc,
        web = ports.web,
        token = token.trim(),
        logs = data.join("logs").display(),
        np = stack.ports.nats,
        pp = stack.ports.postgres,
        wp = stack.ports.webhook,
        sp = stack.ports.sim,
        mp = stack.ports.smtp,
    );
    Ok(())
}
