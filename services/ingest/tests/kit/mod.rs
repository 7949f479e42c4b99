//! What ingest's tests share: Postgres and NATS with the migrations run, the event handler and the
//! scheduler on one clock the test sets, and job events built from JSON.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use messaging_domain::event::{self, JobEvent};
use messaging_ingest::{EventHandler, IngestError, Scheduler};
use messaging_integration_tests::{Infra, Scratch};
use messaging_platform::bus::Relay;
use messaging_platform::clock::Clock;
use serde_json::{Value, json};
use sqlx::PgPool;

/// A clock the test moves.
pub struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().expect("clock") = at;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock")
    }
}

pub struct Kit {
    pub infra: Infra,
    pub pool: PgPool,
    pub handler: Arc<EventHandler>,
    pub scheduler: Scheduler,
    pub clock: Arc<TestClock>,
    /// Last, so that it is removed after Postgres and nats-server stop.
    dir: Scratch,
}

impl Kit {
    pub async fn start(name: &str) -> anyhow::Result<Self> {
        let dir = Scratch::new(&format!("ingest-{name}"));
        let infra = Infra::start(&dir, 0, 0, false).await?;
        let pool = PgPool::connect(&infra.database_url()).await?;
        messaging_platform::db::migrator().run(&pool).await?;
        let jetstream = async_nats::jetstream::new(async_nats::connect(infra.nats_url()).await?);
        let relay = Relay::new(pool.clone(), jetstream, messaging_ingest::SCHEMA, 1 << 20);
        let clock = Arc::new(TestClock(Mutex::new(Utc::now())));
        let handler = Arc::new(EventHandler::new(relay.clone(), clock.clone()));
        let scheduler = Scheduler::new(pool.clone(), relay, clock.clone(), Duration::from_secs(1), 100);
        Ok(Self { infra, pool, handler, scheduler, clock, dir })
    }

    /// Applies `event` in a transaction of its own, committed only when it applied.
    pub async fn apply(&self, event: &JobEvent) -> Result<bool, IngestError> {
        let mut tx = self.pool.begin().await.expect("begin");
        let applied = self.handler.apply(&mut tx, event).await?;
        tx.commit().await.expect("commit");
        Ok(applied)
    }
}

/// A job event of `kind` for `account`, at `at`, with `body` merged in.
pub fn event(event_id: &str, kind: &str, account: &str, at: DateTime<Utc>, body: Value) -> JobEvent {
    let mut payload = json!({"event_id": event_id, "type": kind, "occurred_at": at, "account_id": account});
    if let (Some(payload), Value::Object(body)) = (payload.as_object_mut(), body) {
        payload.extend(body);
    }
    let subject = format!("jobs.{account}.{kind}");
    event::parse_job_event(&subject, payload.to_string().as_bytes(), at).expect("a valid event")
}

/// `account.updated` with a Chicago zone and the given number, address and quiet hours.
pub fn account(event_id: &str, account: &str, at: DateTime<Utc>, number: &str, quiet: (&str, &str)) -> JobEvent {
    let email = format!("office@{}.example", account.replace('_', "-"));
    let settings = json!({"name": "Ace Plumbing", "timezone": "America/Chicago", "sms_number": number,
                          "email_from": email, "quiet_hours": {"start": quiet.0, "end": quiet.1}});
    event(event_id, "account.updated", account, at, json!({ "account": settings }))
}
