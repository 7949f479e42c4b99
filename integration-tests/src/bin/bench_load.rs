//! `make bench`: the whole system under load on this machine. For each rate in `BENCH_RATES`
//! (job events/s, default 250,500,1000,2000) it publishes `job.scheduled` events for
//! `BENCH_SECONDS` (default 10) across `BENCH_ACCOUNTS` accounts (default 20), each for a new
//! customer with a phone, and reports: events and messages per second and whether the backlog
//! stayed flat, p50 / p99 from the event to its provider call and to WatchFeed showing it, CPU
//! seconds per 1,000 messages; then peak memory per service and the operations per event. The
//! floor is the least work the contracts need for the same events, done by one minimal program
//! (`floor.rs`); the ratio is the highest rate the system sustained over the floor's. The simulator
//! answers after `BENCH_PROVIDER_LATENCY_MS` (default 50). Postgres is durable as in production
//! unless `BENCH_DURABLE=0`; `MSG_NATS_SYNC` sets JetStream's `sync_interval` (`always`, say).
//! Then the realistic mix (`mix.rs`) runs at `BENCH_MIX_RATE` steps/s (default 200; 0 skips it)
//! for `BENCH_MIX_SECONDS` (default 30, longer if its reminders would fire after).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use chrono::{DateTime, Utc};
use messaging_integration_tests::client::{Publisher, sim_faults, sim_inbound, sim_requests};
use messaging_integration_tests::floor::{self, Counters, Ops};
use messaging_integration_tests::load::{FeedWatch, Load, Published, provider_requests, publish_paced};
use messaging_integration_tests::measure::{self, cpu_seconds, cpu_seconds_with_children, peak_rss_mib, percentile};
use messaging_integration_tests::mix::{Mix, Step};
use messaging_integration_tests::quiesce::backlog;
use messaging_integration_tests::stack::SERVICES;
use messaging_integration_tests::{Stack, nats_connect, setting};
use serde_json::json;

/// CPU seconds used so far by each service, nats-server and Postgres (all its backends).
fn cpu(stack: &Stack) -> BTreeMap<String, f64> {
    let mut used: BTreeMap<String, f64> =
        SERVICES.iter().map(|s| (s.to_string(), stack.pid(s).and_then(cpu_seconds).unwrap_or(0.0))).collect();
    used.insert("nats-server".into(), stack.infra.nats_pid().and_then(cpu_seconds).unwrap_or(0.0));
    used.insert("postgres".into(), stack.infra.postgres_pid().map(cpu_seconds_with_children).unwrap_or(0.0));
    used.insert("provider-sim".into(), stack.sim.pid().and_then(cpu_seconds).unwrap_or(0.0));
    used
}

/// CPU seconds used so far by Postgres backends, by the service they serve (their
/// application_name; backends of no service, such as autovacuum, are "other").
async fn postgres_cpu(pool: &sqlx::PgPool) -> BTreeMap<String, f64> {
    let backends: Vec<(i32, String)> =
        sqlx::query_as("SELECT pid, application_name FROM pg_stat_activity").fetch_all(pool).await.unwrap_or_default();
    let mut used = BTreeMap::new();
    for (pid, name) in backends {
        let service = if SERVICES.contains(&name.as_str()) { name } else { "other".to_owned() };
        *used.entry(service).or_insert(0.0) += u32::try_from(pid).ok().and_then(cpu_seconds).unwrap_or(0.0);
    }
    used
}

struct Phase {
    rate: f64,
    events: usize,
    acknowledged: usize,
    /// Provider calls per second while events were being published.
    delivered_rate: f64,
    backlog_mid: u64,
    backlog_end: u64,
    /// The consumers holding the backlog when publishing stopped, largest first.
    behind: Vec<(String, u64)>,
    /// From the last publish until the last provider call.
    drain: Duration,
    to_provider: Vec<Duration>,
    to_feed: Vec<Duration>,
    missing_provider: usize,
    missing_feed: usize,
    cpu: BTreeMap<String, f64>,
    /// Postgres's share of `cpu`, by the service its backends served.
    postgres: BTreeMap<String, f64>,
}

impl Phase {
    fn kept_up(&self) -> bool {
        self.missing_provider == 0
            && self.acknowledged == self.events
            && (self.backlog_end as f64) < self.rate
            && self.drain < Duration::from_secs(2)
    }
}

/// Time from each event's publish to its number being seen, sorted; and how many were never seen.
fn latencies(published: &Published, seen: &HashMap<String, DateTime<Utc>>) -> (Vec<Duration>, usize) {
    let mut found = Vec::with_capacity(published.at.len());
    let mut missing = 0;
    for (n, at) in &published.at {
        match seen.get(&Load::phone(*n)) {
            Some(seen_at) => found.push((*seen_at - *at).to_std().unwrap_or_default()),
            None => missing += 1,
        }
    }
    found.sort();
    (found, missing)
}

#[allow(clippy::too_many_arguments)]
async fn run_phase(
    stack: &Stack,
    jetstream: &jetstream::Context,
    pool: &sqlx::PgPool,
    load: &Load,
    feed: &FeedWatch,
    first: usize,
    rate: f64,
    seconds: f64,
) -> anyhow::Result<Phase> {
    let events = (rate * seconds) as usize;
    let cpu_before = cpu(stack);
    let postgres_before = postgres_cpu(pool).await;
    let sampler = {
        let jetstream = jetstream.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs_f64(seconds / 2.0)).await;
            backlog(&jetstream).await.iter().map(|(_, n)| n).sum::<u64>()
        })
    };
    let started = Utc::now();
    let published = publish_paced(jetstream, load, first, first + events, rate).await?;
    let ended = Utc::now();
    let mut behind = backlog(jetstream).await;
    let backlog_end = behind.iter().map(|(_, n)| n).sum();
    behind.retain(|(_, n)| *n > 0);
    behind.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    let backlog_mid = sampler.await.unwrap_or(0);

    // Wait for the stragglers: every number at the provider and in the feed, or three minutes.
    let wanted: Vec<String> = (first..first + events).map(Load::phone).collect();
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut provider = HashMap::new();
    loop {
        for (to, at) in provider_requests(stack.ports.sim).await? {
            provider.entry(to).or_insert(at);
        }
        let seen = feed.seen();
        let done = wanted.iter().all(|p| provider.contains_key(p) && seen.contains_key(p));
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The next rate starts from an idle system (a backlog still draining is reported, not fatal).
    let mut idle = false;
    for _ in 0..3 {
        if stack.quiesce().await.is_ok() {
            idle = true;
            break;
        }
    }
    if !idle {
        println!("        (the system was still busy three minutes after the stragglers' deadline)");
    }
    let cpu_after = cpu(stack);
    let postgres_after = postgres_cpu(pool).await;

    let (to_provider, missing_provider) = latencies(&published, &provider);
    let (to_feed, missing_feed) = latencies(&published, &feed.seen());
    let in_window = wanted.iter().filter_map(|p| provider.get(p)).filter(|at| **at <= ended).count();
    let last = wanted.iter().filter_map(|p| provider.get(p)).max().copied().unwrap_or(ended);
    Ok(Phase {
        rate,
        events,
        acknowledged: published.acknowledged,
        delivered_rate: in_window as f64 / (ended - started).to_std().unwrap_or_default().as_secs_f64().max(0.001),
        backlog_mid,
        backlog_end,
        behind,
        drain: (last - ended).to_std().unwrap_or_default(),
        to_provider,
        to_feed,
        missing_provider,
        missing_feed,
        cpu: cpu_after.iter().map(|(k, v)| (k.clone(), v - cpu_before.get(k).copied().unwrap_or(0.0))).collect(),
        postgres: postgres_after
            .iter()
            .map(|(k, v)| (k.clone(), (v - postgres_before.get(k).copied().unwrap_or(0.0)).max(0.0)))
            .collect(),
    })
}

fn print_phase(phase: &Phase) {
    let messages = (phase.events - phase.missing_provider).max(1) as f64;
    let total_cpu: f64 = phase.cpu.values().sum();
    println!(
        "{:>7.0} {:>7} {:>9.0} {:>8} {:>8} {:>7.2} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>9.2} {:>7}",
        phase.rate,
        phase.events,
        phase.delivered_rate,
        phase.backlog_mid,
        phase.backlog_end,
        phase.drain.as_secs_f64(),
        percentile(&phase.to_provider, 0.5),
        percentile(&phase.to_provider, 0.99),
        percentile(&phase.to_feed, 0.5),
        percentile(&phase.to_feed, 0.99),
        total_cpu / messages * 1000.0,
        if phase.kept_up() { "yes" } else { "no" },
    );
    if !phase.kept_up() {
        let behind: Vec<String> = phase.behind.iter().map(|(c, n)| format!("{c} {n}")).collect();
        println!("        backlog when publishing stopped: {}", behind.join(", "));
    }
    if phase.missing_provider + phase.missing_feed + (phase.events - phase.acknowledged) > 0 {
        println!(
            "        not acknowledged {}, never at the provider {}, never in the feed {}",
            phase.events - phase.acknowledged,
            phase.missing_provider,
            phase.missing_feed
        );
    }
}

/// The realistic mix ([`Mix`]) at `rate` steps per second for `seconds` (longer if the reminders
/// would fire after it): what it delivered, whether the system kept up, and the CPU it took.
async fn run_mix(
    stack: &Stack,
    jetstream: &jetstream::Context,
    rate: f64,
    seconds: f64,
    accounts: usize,
) -> anyhow::Result<()> {
    let mix = Mix::new(&format!("bench-{}", std::process::id()), accounts, 300);
    let reminders_at =
        mix.set_up_accounts(&Publisher::connect(&stack.infra.nats_url()).await?, chrono::Duration::seconds(20)).await?;
    stack.quiesce().await?;
    let until_reminders = (reminders_at - Utc::now()).num_seconds() as f64;
    let seconds = seconds.max(until_reminders + 15.0);
    let (sms_before, mails_before, cpu_before) =
        (sim_requests(stack.ports.sim).await?.len(), stack.mail_count(), cpu(stack));
    let steps = (rate * seconds) as usize;
    let started = tokio::time::Instant::now();
    let (mut acks, mut texts) = (tokio::task::JoinSet::new(), tokio::task::JoinSet::new());
    let (mut events, mut stops) = (0, 0);
    for n in 0..steps {
        tokio::time::sleep_until(started + Duration::from_secs_f64(n as f64 / rate)).await;
        match mix.step(n) {
            Step::Event(subject, id, payload) => {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", id.as_str());
                let ack = jetstream.publish_with_headers(subject, headers, payload.into()).await?;
                acks.spawn(async move { ack.await.is_ok() });
                events += 1;
            }
            Step::Text { from, to, body } => {
                stops += usize::from(body == "STOP");
                let sim = stack.ports.sim;
                texts.spawn(async move {
                    sim_inbound(sim, &from, &to, &body).await.is_ok_and(|a| a["webhook_status"] == 200)
                });
            }
        }
    }
    let published = started.elapsed();
    let backlog_end: u64 = backlog(jetstream).await.iter().map(|(_, n)| n).sum();
    let acknowledged = acks.join_all().await.into_iter().filter(|ok| *ok).count();
    let answered = texts.join_all().await;
    let idle = stack.quiesce().await.is_ok();
    let drain = started.elapsed().saturating_sub(published);
    let sms = sim_requests(stack.ports.sim).await?.len() - sms_before;
    let mails = stack.mail_count() - mails_before;
    let cpu_after = cpu(stack);
    let used: f64 = cpu_after.iter().map(|(k, v)| v - cpu_before.get(k).copied().unwrap_or(0.0)).sum();
    let messages = (sms + mails).max(1) as f64;
    println!(
        "mix: {rate:.0} steps/s for {seconds:.0} s over {accounts} accounts of 300 customers (a third with email): \
         {events} job events ({acknowledged} acknowledged) of every kind, {} customer texts ({stops} STOP, {} answered 200), \
         day-before reminders due {}s in",
        answered.len(),
        answered.iter().filter(|ok| **ok).count(),
        until_reminders as i64
    );
    println!(
        "     delivered {sms} SMS and {mails} emails = {:.0} msgs/s over the run; backlog {backlog_end} when the \
         steps stopped, {} {:.1} s later; CPU {:.2} s per 1,000 messages",
        messages / (published + drain).as_secs_f64().max(0.001),
        if idle { "idle" } else { "still busy" },
        drain.as_secs_f64(),
        used / messages * 1000.0
    );
    Ok(())
}

/// The statements Postgres spent the most time on over every rate, with their share.
async fn print_statements(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let rows: Vec<(String, i64, f64, f64)> = sqlx::query_as(
        "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 160), calls, total_exec_time, total_plan_time \
         FROM pg_stat_statements ORDER BY total_exec_time + total_plan_time DESC LIMIT 15",
    )
    .fetch_all(pool)
    .await?;
    let (total, planning, calls): (f64, f64, i64) = sqlx::query_as(
        "SELECT sum(total_exec_time + total_plan_time), sum(total_plan_time), sum(calls)::int8 FROM pg_stat_statements",
    )
    .fetch_one(pool)
    .await?;
    println!(
        "Postgres time by statement, planning included (all rates and the floor; {calls} statements, {total:.0} ms in \
         all, {planning:.0} ms planning; waits for locks and the WAL count as time):"
    );
    for (query, calls, ms, plan_ms) in rows {
        println!(
            "  {:>5.1}% {calls:>8} calls {:>6.3} ms/call (plan {:>5.3})  {query}",
            (ms + plan_ms) / total * 100.0,
            (ms + plan_ms) / calls.max(1) as f64,
            plan_ms / calls.max(1) as f64
        );
    }
    Ok(())
}

/// The rows each table was written over the whole run so far, how many of its updates were HOT,
/// and the outboxes' share of every row written.
async fn print_table_writes(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let tables = measure::table_writes(pool).await?;
    let written = |t: &measure::TableWrites| t.inserts + t.updates + t.deletes;
    let all: i64 = tables.iter().map(written).sum();
    let outboxes: i64 = tables.iter().filter(|t| t.table.ends_with(".outbox")).map(written).sum();
    println!(
        "rows written (rates and mix, as Postgres has counted them): {all}, {:.0}% of them outbox rows; by table \
         (inserts / updates, HOT / deletes, indexes):",
        outboxes as f64 / all.max(1) as f64 * 100.0
    );
    for t in tables.iter().take(12) {
        let hot = if t.updates == 0 {
            "-".to_owned()
        } else {
            format!("{:.0}%", t.hot_updates as f64 / t.updates as f64 * 100.0)
        };
        println!(
            "  {:<28} {:>8} / {:>7}, {hot:>4} HOT / {:>7}  {} indexes",
            t.table, t.inserts, t.updates, t.deletes, t.indexes
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rates: Vec<f64> = std::env::var("BENCH_RATES")
        .unwrap_or_else(|_| "250,500,1000,2000".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let seconds: f64 = setting("BENCH_SECONDS", 10.0);
    let accounts: usize = setting("BENCH_ACCOUNTS", 20);
    let latency_ms: u64 = setting("BENCH_PROVIDER_LATENCY_MS", 50);
    let floor_events: usize = setting("BENCH_FLOOR_EVENTS", 20_000);
    let gateway_concurrency: usize = setting("BENCH_GATEWAY_CONCURRENCY", 256);

    let durable = setting("BENCH_DURABLE", 1) != 0;
    let nats_sync = std::env::var("MSG_NATS_SYNC").unwrap_or_else(|_| "the server's default (2 min)".into());

    let concurrency = [("MSG_CONCURRENCY", gateway_concurrency.to_string())];
    let overrides: [(&'static str, &[(&str, String)]); 1] = [("sms-gateway", &concurrency)];
    let mut stack = if durable {
        Stack::start_fresh_durable("bench-load", &overrides).await?
    } else {
        Stack::start_fresh_with("bench-load", &overrides).await?
    };
    sim_faults(stack.ports.sim, json!({"latency_ms": latency_ms, "callback_delay_ms": 100, "callback_retries": 8}))
        .await?;
    let client = nats_connect(&stack.infra.nats_url()).await?;
    let jetstream = jetstream::new(client);
    let pool = sqlx::PgPool::connect(&stack.infra.database_url()).await?;
    // BENCH_STATEMENTS=1: Postgres's time by statement (needs MSG_POSTGRES_OPTIONS to preload
    // pg_stat_statements, which `make bench-statements` sets).
    let statements = setting("BENCH_STATEMENTS", 0) != 0;
    if statements {
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").execute(&pool).await?;
    }
    let load = Load::new(&format!("bench-{}", std::process::id()), accounts);
    load.set_up_accounts(&Publisher::connect(&stack.infra.nats_url()).await?).await?;
    stack.quiesce().await?;
    let feed = FeedWatch::start(stack.ports.grpc, &load.account_ids()).await?;

    println!(
        "load: job.scheduled for {accounts} accounts, {seconds} s per rate, one SMS per event; provider latency \
         {latency_ms} ms, status callbacks 100 ms later; sms-gateway concurrency {gateway_concurrency}; one process \
         per service; Postgres {}; JetStream syncs {nats_sync}",
        if durable { "durable (fsync, synchronous_commit on)" } else { "without fsync (BENCH_DURABLE=0)" }
    );
    println!(
        "{:>7} {:>7} {:>9} {:>8} {:>8} {:>7} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7}",
        "ev/s", "events", "msgs/s", "backlog", "backlog", "drain", "→prov", "→prov", "→feed", "→feed", "CPU s", "kept"
    );
    println!(
        "{:>7} {:>7} {:>9} {:>8} {:>8} {:>7} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7}",
        "offered", "", "delivered", "mid", "end", "s", "p50 ms", "p99 ms", "p50 ms", "p99 ms", "/1000 msg", "up"
    );

    // Warm-up: connections, prepared statements, the consumers' first pulls.
    let warm = publish_paced(&jetstream, &load, 0, 200, 200.0).await?;
    anyhow::ensure!(warm.acknowledged == 200, "the broker refused warm-up events");
    stack.quiesce().await?;
    let mut first = 200;
    let mut ops: Option<Ops> = None;
    let mut phases = Vec::new();
    for rate in &rates {
        let counters_before = if ops.is_none() {
            tokio::time::sleep(floor::STATS_SETTLE).await;
            Some(Counters::read(&jetstream, &pool).await?)
        } else {
            None
        };
        let phase = run_phase(&stack, &jetstream, &pool, &load, &feed, first, *rate, seconds).await?;
        print_phase(&phase);
        if let Some(before) = counters_before {
            tokio::time::sleep(floor::STATS_SETTLE).await;
            ops = Some(Counters::read(&jetstream, &pool).await?.per_event(&before, phase.events));
        }
        first += phase.events;
        phases.push(phase);
    }
    feed.stop();
    let mix_rate: f64 = setting("BENCH_MIX_RATE", 200.0);
    if mix_rate > 0.0 {
        run_mix(&stack, &jetstream, mix_rate, setting("BENCH_MIX_SECONDS", 30.0), accounts).await?;
    }
    if statements {
        print_statements(&pool).await?;
    }

    println!("CPU seconds per 1,000 messages, by process:");
    for phase in &phases {
        let messages = (phase.events - phase.missing_provider).max(1) as f64;
        let parts: Vec<String> =
            phase.cpu.iter().map(|(name, s)| format!("{name} {:.2}", s / messages * 1000.0)).collect();
        println!("  {:>5.0} ev/s: {}", phase.rate, parts.join(", "));
        let parts: Vec<String> =
            phase.postgres.iter().map(|(name, s)| format!("{name} {:.2}", s / messages * 1000.0)).collect();
        println!("             postgres by the service its backends served: {}", parts.join(", "));
    }
    let memory: Vec<String> = SERVICES
        .iter()
        .map(|s| format!("{s} {:.0}", stack.pid(s).and_then(peak_rss_mib).unwrap_or(0.0)))
        .chain(std::iter::once(format!(
            "nats-server {:.0}",
            stack.infra.nats_pid().and_then(peak_rss_mib).unwrap_or(0.0)
        )))
        .collect();
    println!("peak resident memory, MiB: {}", memory.join(", "));

    if let Some(ops) = ops {
        println!("per job event the system did (first rate): {ops}");
    }
    print_table_writes(&pool).await?;
    let floor_before = Counters::read(&jetstream, &pool).await?;
    let floor_rate = floor::run(&jetstream, &pool, stack.ports.sim, &load, first, floor_events).await?;
    tokio::time::sleep(floor::STATS_SETTLE).await;
    let floor_ops = Counters::read(&jetstream, &pool).await?.per_event(&floor_before, floor_events);
    // Its stream and consumer are gone by now: one pull and ack per event, by construction.
    println!(
        "per job event the floor did: 1.00 deliveries, {:.2} commits, {:.2} inserts, {:.2} updates, {:.2} deletes",
        floor_ops.commits, floor_ops.inserts, floor_ops.updates, floor_ops.deletes
    );
    let sustained = phases.iter().filter(|p| p.kept_up()).map(|p| p.rate).fold(0.0, f64::max);
    let best = phases.iter().map(|p| p.delivered_rate).fold(0.0, f64::max);
    println!(
        "floor (the least work the contracts need, batched, one program, {floor_events} events): {floor_rate:.0} \
         events/s; sustained {sustained:.0} events/s = {:.2} of the floor; highest delivered {best:.0} msgs/s = {:.2} \
         of the floor",
        sustained / floor_rate,
        best / floor_rate
    );
    pool.close().await;
    stack.stop().await;
    Ok(())
}
