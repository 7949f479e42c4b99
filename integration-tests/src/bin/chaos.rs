//! `make chaos`: thousands of job events (`CHAOS_EVENTS`, default 3000, at `CHAOS_RATE`/s, default
//! 100) while `kill -9` hits every service in random order, round after round, nats-server and
//! Postgres restart, and the provider answers some creates with 500s, 429s, a 500 after
//! accepting, or not in time. Every tenth event is published twice. Then faults stop, the system
//! settles, and every message is checked at the provider (the simulator's record) and in the feed
//! (gRPC), with Jepsen-style counts. Exits non-zero when an event was not accepted, or a message
//! was lost, sent twice outside `unknown`, shown twice in the feed, or never settled.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use messaging_integration_tests::client::{Dashboard, Publisher, sim_faults, sim_messages, sim_requests};
use messaging_integration_tests::load::Load;
use messaging_integration_tests::stack::SERVICES;
use messaging_integration_tests::{Stack, setting};
use messaging_proto::v1::{Direction, ListMessagesRequest, Message, MessageStatus};
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

/// Publishes every event (retrying each until the broker acknowledges it), every tenth twice.
/// Returns how many were acknowledged, and how many duplicates.
async fn publish_all(url: String, load: Load, events: usize, rate: f64) -> anyhow::Result<(usize, usize)> {
    let publisher = Arc::new(Publisher::connect(&url).await?);
    let accepted = Arc::new(AtomicUsize::new(0));
    let duplicates = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(tokio::sync::Semaphore::new(64));
    let started = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..events {
        tokio::time::sleep_until(started + Duration::from_secs_f64(n as f64 / rate)).await;
        let permit = in_flight.clone().acquire_owned().await?;
        let (publisher, accepted, duplicates, load) =
            (publisher.clone(), accepted.clone(), duplicates.clone(), load.clone());
        tasks.spawn(async move {
            let (subject, id, payload) = load.message(n);
            if publisher.raw(&subject, &id, payload.clone()).await.is_ok() {
                accepted.fetch_add(1, Ordering::Relaxed);
                if n % 10 == 0 && publisher.raw(&subject, &id, payload).await.is_ok() {
                    duplicates.fetch_add(1, Ordering::Relaxed);
                }
            } else {
                eprintln!("event {n} was never acknowledged");
            }
            drop(permit);
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok((accepted.load(Ordering::Relaxed), duplicates.load(Ordering::Relaxed)))
}

/// One fault, chosen at random: mostly a service killed and started again, sometimes a restart
/// of nats-server (kill -9) or of Postgres (fast shutdown).
async fn inject(stack: &mut Stack, rng: &mut rand::rngs::StdRng, injected: &mut Injected) -> anyhow::Result<()> {
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
    } else {
        stack.infra.stop_postgres()?;
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..3000))).await;
        stack.infra.start_postgres().await?;
        injected.postgres_restarts += 1;
    }
    Ok(())
}

/// Every outbound message of every account, through ListMessages pages.
async fn feed(grpc_port: u16, accounts: &[String]) -> anyhow::Result<Vec<Message>> {
    let mut all = Vec::new();
    for account in accounts {
        let dashboard = Dashboard::connect(grpc_port, account).await?;
        let mut page_token = String::new();
        loop {
            let request = ListMessagesRequest {
                page_size: 200,
                page_token: page_token.clone(),
                directions: vec![Direction::Outbound as i32],
                ..Default::default()
            };
            let page = dashboard.grpc().list_messages(dashboard.authed(request)).await?.into_inner();
            all.extend(page.messages);
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
    }
    Ok(all)
}

/// What happened to one event's message.
#[derive(Default)]
struct Fate {
    /// A request for it was answered 500-after-accepting or not at all.
    ambiguous: bool,
    /// Any fault touched a request for it.
    faulted: bool,
    created: usize,
    in_feed: Vec<Message>,
}

impl Fate {
    fn statuses(&self) -> impl Iterator<Item = MessageStatus> + '_ {
        self.in_feed.iter().map(|m| MessageStatus::try_from(m.status).unwrap_or_default())
    }

    fn unknown(&self) -> bool {
        self.statuses().any(|s| s == MessageStatus::Unknown) || self.in_feed.iter().any(|m| m.delivery_unknown)
    }

    fn failed(&self) -> bool {
        self.statuses().any(|s| s == MessageStatus::Failed)
    }

    fn delivered(&self) -> bool {
        self.statuses().any(|s| s == MessageStatus::Delivered)
    }

    /// Sent once, yet the feed shows it neither delivered, failed nor unknown.
    fn unsettled(&self) -> bool {
        self.created == 1 && !self.delivered() && !self.failed() && !self.unknown()
    }
}

/// Every event's message as the provider and the feed show it, and the faults the provider injected.
struct Observed {
    fates: HashMap<String, Fate>,
    provider_500: usize,
    provider_429: usize,
    ambiguous: usize,
}

async fn observe(stack: &Stack, load: &Load, events: usize) -> anyhow::Result<Observed> {
    let mut fates: HashMap<String, Fate> = (0..events).map(|n| (Load::phone(n), Fate::default())).collect();
    let (mut provider_500, mut provider_429, mut ambiguous) = (0, 0, 0);
    for request in sim_requests(stack.ports.sim).await? {
        let Some(fate) = request["to"].as_str().and_then(|to| fates.get_mut(to)) else { continue };
        match request["fault"].as_str() {
            Some("error_500") => provider_500 += 1,
            Some("error_429") => provider_429 += 1,
            Some(_) => {
                ambiguous += 1;
                fate.ambiguous = true;
            }
            None => {}
        }
        fate.faulted |= !request["fault"].is_null();
    }
    for message in sim_messages(stack.ports.sim).await? {
        if let Some(fate) = message["to"].as_str().and_then(|to| fates.get_mut(to)) {
            fate.created += 1;
        }
    }
    for message in feed(stack.ports.grpc, &load.account_ids()).await? {
        let phone = message.customer.as_ref().map(|c| c.phone.clone()).unwrap_or_default();
        if let Some(fate) = fates.get_mut(&phone) {
            fate.in_feed.push(message);
        }
    }
    Ok(Observed { fates, provider_500, provider_429, ambiguous })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events: usize = setting("CHAOS_EVENTS", 3000);
    let rate: f64 = setting("CHAOS_RATE", 100.0);
    let seed: u64 = setting("CHAOS_SEED", rand::random());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let gateway = [("MSG_TWILIO__TIMEOUT_MS", "2000".to_owned())];
    let mut stack = Stack::start_fresh_with("chaos", &[("sms-gateway", &gateway)]).await?;
    let load = Load::new(&format!("chaos-{}", std::process::id()), 10);
    load.set_up_accounts(&Publisher::connect(&stack.infra.nats_url()).await?).await?;
    stack.quiesce().await?;
    let faults = json!({"latency_ms": 20, "callback_delay_ms": 100, "callback_retries": 8, "error_500_rate": 0.04,
                        "error_429_rate": 0.04, "accept_then_500_rate": 0.02, "timeout_rate": 0.02});
    sim_faults(stack.ports.sim, faults.clone()).await?;
    println!("chaos: {events} job events at {rate}/s over 10 accounts, seed {seed}; provider faults {faults}");

    let publishing = tokio::spawn(publish_all(stack.infra.nats_url(), load.clone(), events, rate));
    let mut injected = Injected::default();
    while !publishing.is_finished() {
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..2500))).await;
        inject(&mut stack, &mut rng, &mut injected).await?;
    }
    let (accepted, duplicates) = publishing.await??;

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
        // The invariants below decide: a message really left undone shows there as lost or
        // unsettled. nats-server 2.9 can keep, after a kill -9, work-queue messages it no longer
        // holds listed as unacknowledged ("error looking up message for consumer: deleted message"
        // in its log), which no service can ever acknowledge.
        let nats = messaging_integration_tests::nats_connect(&stack.infra.nats_url()).await?;
        let left: Vec<String> = messaging_integration_tests::quiesce::backlog(&async_nats::jetstream::new(nats))
            .await
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(consumer, n)| format!("{consumer} {n}"))
            .collect();
        println!("not idle five minutes after the last fault; still listed by JetStream: {}", left.join(", "));
    }

    // A status callback the provider is still retrying (delivery-status was down at its first try)
    // arrives after the system looks idle: wait for those, up to a minute.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let observed = loop {
        let observed = observe(&stack, &load, events).await?;
        if !observed.fates.values().any(Fate::unsettled) || tokio::time::Instant::now() > deadline {
            break observed;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let fates = &observed.fates;
    let count = |check: &dyn Fn(&Fate) -> bool| fates.values().filter(|f| check(f)).count();
    let lost = count(&|f| f.created == 0 && !f.failed() && !f.unknown());
    let twice_unknown = count(&|f| f.created > 1 && (f.ambiguous || f.unknown()));
    let twice_outside = count(&|f| f.created > 1) - twice_unknown;
    let feed_twice = count(&|f| f.in_feed.len() > 1);
    let stuck = count(&Fate::unsettled);

    let kills: Vec<String> = injected.kills.iter().map(|(s, n)| format!("{s} {n}")).collect();
    println!(
        "faults: kill -9 {} ({}); nats-server restarts {}; Postgres restarts {}; provider 500s {}, \
         429s {}, accepted-then-500 or timeout {}",
        injected.kills.values().sum::<usize>(),
        kills.join(", "),
        injected.nats_restarts,
        injected.postgres_restarts,
        observed.provider_500,
        observed.provider_429,
        observed.ambiguous
    );
    let rows = [
        ("events accepted", accepted),
        ("duplicate events published", duplicates),
        ("messages expected", accepted),
        ("sent to the provider once", count(&|f| f.created == 1)),
        ("delivered (feed)", count(&Fate::delivered)),
        ("failed and shown failed (feed)", count(&Fate::failed)),
        ("unknown (feed): the provider's answer was ambiguous", count(&Fate::unknown)),
        ("  of which the provider had in fact accepted", count(&|f| f.unknown() && f.created > 0)),
        (
            "recovered (a fault on the way, sent once, delivered)",
            count(&|f| f.faulted && f.created == 1 && f.delivered()),
        ),
        ("lost", lost),
        ("duplicate provider sends outside unknown", twice_outside),
        ("duplicate provider sends inside unknown", twice_unknown),
        ("events with two messages in the feed", feed_twice),
        ("sent but never settled in the feed", stuck),
    ];
    for (what, count) in rows {
        println!("{what:>54}: {count}");
    }
    let ok = accepted == events && lost == 0 && twice_outside == 0 && feed_twice == 0 && stuck == 0;
    if ok {
        stack.stop().await;
        println!("chaos: every invariant held");
        Ok(())
    } else {
        stack.keep_dir();
        stack.stop().await;
        println!("chaos: invariants broken; logs kept in {}", stack.infra.dir.display());
        std::process::exit(1);
    }
}
