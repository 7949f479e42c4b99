//! `make chaos`: thousands of job events (`CHAOS_EVENTS`, default 3000, at `CHAOS_RATE`/s, default
//! 100; see `chaos/plan.rs` for what they ask for: SMS and email, reminders, STOPs, republished
//! events) while `kill -9` hits every service in random order, nats-server restarts, Postgres
//! restarts (`fast`) or crashes (`durable`: fsync on, kill -9 of the postmaster), the provider
//! answers some creates with 500s, 429s, a 500 after accepting, or not in time, and the SMTP server
//! defers some mail and drops the connection after DATA for some. Faults go on until the
//! reminders have fired. Then the system settles and every expected message is checked at the
//! provider and in the feed (`chaos/verdict.rs`). Both durability modes run unless `CHAOS_MODES`
//! names one; exits non-zero when any invariant broke in any.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use messaging_integration_tests::chaos::plan::{Again, Plan};
use messaging_integration_tests::chaos::verdict;
use messaging_integration_tests::client::{Publisher, sim_faults, sim_inbound};
use messaging_integration_tests::load::Load;
use messaging_integration_tests::stack::SERVICES;
use messaging_integration_tests::{Stack, setting};
use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};
use serde_json::json;

/// Faults done while the events went in.
#[derive(Default)]
struct Injected {
    /// Services still to be killed in this round: every service is hit once per round, in random order.
    deck: Vec<&'static str>,
    kills: BTreeMap<&'static str, usize>,
    nats_restarts: usize,
    postgres_restarts: usize,
}

/// Publishes every event (retrying each until the broker acknowledges it) and its republications;
/// returns how many were acknowledged.
async fn publish_all(url: String, plan: Plan, rate: f64) -> anyhow::Result<usize> {
    let publisher = Arc::new(Publisher::connect(&url).await?);
    let accepted = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(tokio::sync::Semaphore::new(64));
    let started = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..plan.events {
        tokio::time::sleep_until(started + Duration::from_secs_f64(n as f64 / rate)).await;
        let permit = in_flight.clone().acquire_owned().await?;
        let (publisher, accepted, plan) = (publisher.clone(), accepted.clone(), plan.clone());
        tasks.spawn(async move {
            let (subject, id, payload) = plan.message(n);
            if publisher.raw(&subject, &id, payload.clone()).await.is_err() {
                eprintln!("event {n} was never acknowledged");
                return;
            }
            accepted.fetch_add(1, Ordering::Relaxed);
            let again = match Plan::again(n) {
                Again::No => None,
                Again::SameId => Some(id),
                Again::NewId => Some(format!("{id}-again")),
            };
            if let Some(again) = again {
                let _ = publisher.raw(&subject, &again, payload).await;
            }
            drop(permit);
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(accepted.load(Ordering::Relaxed))
}

/// Customer `n` texts STOP until delivery-status acknowledges it (200), as a carrier would retry.
async fn text_stop(sim: u16, plan: Plan, n: usize, acknowledged: Arc<Mutex<HashSet<usize>>>) {
    loop {
        let answer = sim_inbound(sim, &Load::phone(n), &plan.number_of(n), "STOP").await;
        if answer.is_ok_and(|a| a["webhook_status"] == 200) {
            acknowledged.lock().map(|mut done| done.insert(n)).unwrap_or_default();
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One fault, chosen at random: mostly a service killed and started again, sometimes a restart
/// of nats-server (kill -9) or of Postgres (a fast shutdown, or kill -9 when durable).
async fn inject(
    stack: &mut Stack,
    rng: &mut rand::rngs::StdRng,
    injected: &mut Injected,
    durable: bool,
) -> anyhow::Result<()> {
    let roll: f64 = rng.random();
    if roll < 0.75 {
        if injected.deck.is_empty() {
            injected.deck = SERVICES.to_vec();
            injected.deck.shuffle(rng);
        }
        let service = injected.deck.pop().unwrap_or(SERVICES[0]);
        stack.kill9(service).await?;
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..2000))).await;
        stack.restart(service)?;
        *injected.kills.entry(service).or_default() += 1;
    } else if roll < 0.88 {
        stack.infra.restart_nats().await?;
        injected.nats_restarts += 1;
    } else if durable {
        stack.infra.crash_postgres().await?;
        injected.postgres_restarts += 1;
    } else {
        stack.infra.stop_postgres()?;
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..3000))).await;
        stack.infra.start_postgres().await?;
        injected.postgres_restarts += 1;
    }
    Ok(())
}

/// One run in one durability mode; true when every invariant held.
async fn run(durable: bool, events: usize, rate: f64, seed: u64) -> anyhow::Result<bool> {
    let mode = if durable { "durable" } else { "fast" };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Unknown sends are settled within the run: found at the provider, or failed after 30 s.
    let gateway = [("MSG_TWILIO__TIMEOUT_MS", "2000".to_owned()), ("MSG_UNKNOWN_DEADLINE_SECS", "30".to_owned())];
    let overrides: [(&'static str, &[(&str, String)]); 1] = [("sms-gateway", &gateway)];
    let name = format!("chaos-{mode}");
    let mut stack = if durable {
        Stack::start_fresh_durable(&name, &overrides).await?
    } else {
        Stack::start_fresh_with(&name, &overrides).await?
    };
    let plan = Plan::new(
        &format!("chaos-{}-{mode}", std::process::id()),
        events,
        Duration::from_secs_f64(events as f64 / rate),
    );
    let publisher = Publisher::connect(&stack.infra.nats_url()).await?;
    for a in 0..plan.accounts {
        publisher.event(&plan.account_event(a)).await?;
    }
    stack.quiesce().await?;
    let faults = json!({"latency_ms": 20, "callback_delay_ms": 100, "callback_retries": 8, "error_500_rate": 0.04,
                        "error_429_rate": 0.04, "accept_then_500_rate": 0.02, "timeout_rate": 0.02});
    sim_faults(stack.ports.sim, faults.clone()).await?;
    println!(
        "chaos ({mode}): {events} job events at {rate}/s over {} accounts, reminders at {}, seed {seed}; provider faults {faults}",
        plan.accounts, plan.reminders_at
    );

    let publishing = tokio::spawn(publish_all(stack.infra.nats_url(), plan.clone(), rate));
    let stopped = Arc::new(Mutex::new(HashSet::new()));
    let stops: Vec<_> = (0..events)
        .filter(|n| Plan::stops(*n))
        .map(|n| tokio::spawn(text_stop(stack.ports.sim, plan.clone(), n, stopped.clone())))
        .collect();
    // Faults go on until the reminders have fired and been handed on.
    let faults_until = plan.reminders_at + chrono::Duration::seconds(20);
    let mut injected = Injected::default();
    while !publishing.is_finished() || chrono::Utc::now() < faults_until {
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..2500))).await;
        inject(&mut stack, &mut rng, &mut injected, durable).await?;
    }
    let accepted = publishing.await??;
    for stop in stops {
        stop.await?;
    }

    // Faults stop; the system settles (retries back off, leases expire, unknown sends are looked up).
    sim_faults(stack.ports.sim, json!({"latency_ms": 20, "callback_delay_ms": 100, "callback_retries": 8})).await?;
    for service in SERVICES {
        anyhow::ensure!(!stack.has_exited(service), "{service} exited by itself; see its log in {:?}", stack.infra.dir);
    }
    let mut settled = false;
    for _ in 0..5 {
        if stack.quiesce().await.is_ok() {
            settled = true;
            break;
        }
    }
    if !settled {
        println!("not idle five minutes after the last fault; the invariants below decide");
    }
    // A status callback the provider is still retrying arrives after the system looks idle.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let observed = loop {
        let observed = verdict::observe(&plan, stack.ports.sim, stack.ports.grpc, &stack.mails()).await?;
        if observed.unsettled() == 0 || tokio::time::Instant::now() > deadline {
            break observed;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let stops = stops_of(&stack, &plan, stopped.lock().map(|s| s.clone()).unwrap_or_default()).await?;
    let verdict = observed.verdict(&stops);

    let kills: Vec<String> = injected.kills.iter().map(|(s, n)| format!("{s} {n}")).collect();
    let provider: Vec<String> = observed.provider_faults.iter().map(|(f, n)| format!("{f} {n}")).collect();
    println!(
        "faults ({mode}): kill -9 {} ({}); nats-server restarts {}; Postgres {} {}; provider {}",
        injected.kills.values().sum::<usize>(),
        kills.join(", "),
        injected.nats_restarts,
        if durable { "crashes (kill -9)" } else { "restarts" },
        injected.postgres_restarts,
        provider.join(", ")
    );
    println!("{:>58}: {accepted} of {events}", "events accepted");
    for (what, count) in &verdict.rows {
        println!("{what:>58}: {count}");
    }
    let ok = accepted == events && verdict.broken.is_empty();
    if ok {
        stack.stop().await;
        println!("chaos ({mode}): every invariant held");
    } else {
        stack.keep_dir();
        stack.stop().await;
        println!("chaos ({mode}): broken: {}; logs kept in {}", verdict.broken.join("; "), stack.infra.dir.display());
    }
    Ok(ok)
}

/// Which STOPs dispatch recorded, and which before the reminders fired.
async fn stops_of(stack: &Stack, plan: &Plan, acknowledged: HashSet<usize>) -> anyhow::Result<verdict::Stops> {
    let pool = sqlx::PgPool::connect(&stack.infra.database_url()).await?;
    let rows: Vec<(String, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("SELECT address, created_at FROM dispatch.suppressions WHERE channel = 'sms'")
            .fetch_all(&pool)
            .await?;
    let mut stops = verdict::Stops { acknowledged, ..Default::default() };
    for (address, at) in rows {
        let Some(n) = Plan::customer_of(&address) else { continue };
        stops.suppressed.insert(n);
        if at < plan.reminders_at {
            stops.suppressed_early.insert(n);
        }
    }
    pool.close().await;
    Ok(stops)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events: usize = setting("CHAOS_EVENTS", 3000);
    let rate: f64 = setting("CHAOS_RATE", 100.0);
    let seed: u64 = setting("CHAOS_SEED", rand::random());
    let modes: String = setting("CHAOS_MODES", "fast,durable".to_owned());
    let mut all_held = true;
    for mode in modes.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        anyhow::ensure!(matches!(mode, "fast" | "durable"), "CHAOS_MODES takes fast and durable, not {mode:?}");
        all_held &= run(mode == "durable", events, rate, seed).await?;
    }
    if !all_held {
        std::process::exit(1);
    }
    Ok(())
}
