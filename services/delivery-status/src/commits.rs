//! Group commit for the reports webhooks bring: the reports of concurrent requests are applied in
//! one transaction (as many as are waiting, up to `BATCH`) and each request is answered once it
//! committed, so a busy webhook server pays one BEGIN/COMMIT and one outbox insert per batch. A
//! batch that fails is redone report by report, each in its own transaction, so one report's error
//! is its own request's answer only. Reports are applied in message order (see
//! `TxHandler::lock_key`), so two transactions never lock two messages' rows in opposite orders.

use std::sync::Arc;

use messaging_platform::bus::{Relay, outbox};
use sqlx::PgPool;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::Instrument;

use crate::store::{self, Applied, Report};

/// The most reports one transaction takes.
const BATCH: usize = 100;

/// Transactions at once.
const IN_FLIGHT: usize = 2;

struct Pending {
    /// With the request's span: the report's events continue its trace.
    report: Report,
    reply: oneshot::Sender<sqlx::Result<Applied>>,
}

/// Where webhooks hand their reports.
#[derive(Clone)]
pub struct Commits {
    sender: mpsc::Sender<Pending>,
}

impl Commits {
    /// Starts committing, until every `Commits` is dropped. Nothing needs waiting for at shutdown:
    /// a request is answered only after its report committed, so once the server has stopped
    /// nothing is in flight.
    pub fn start(pool: PgPool, relay: Relay) -> Self {
        let (sender, receiver) = mpsc::channel(BATCH * IN_FLIGHT * 4);
        tokio::spawn(run(pool, relay, receiver));
        Self { sender }
    }

    /// Applies `report` (in its span) and answers once it is committed.
    pub async fn apply(&self, report: Report) -> sqlx::Result<Applied> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending { report, reply };
        self.sender.send(pending).await.map_err(|_| sqlx::Error::PoolClosed)?;
        answer.await.map_err(|_| sqlx::Error::PoolClosed)?
    }
}

async fn run(pool: PgPool, relay: Relay, mut receiver: mpsc::Receiver<Pending>) {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match receiver.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        let Ok(permit) = permits.clone().acquire_owned().await else { break };
        let (pool, relay) = (pool.clone(), relay.clone());
        tasks.spawn(async move {
            commit(&pool, &relay, batch).await;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

async fn commit(pool: &PgPool, relay: &Relay, mut batch: Vec<Pending>) {
    // Rows are locked in message order, as the attempts consumer locks them (one message's
    // reports keep their arrival order): concurrent transactions wait, never deadlock.
    batch.sort_by(|a, b| a.report.message_id.cmp(&b.report.message_id));
    if batch.len() > 1
        && let Some(results) = together(pool, &batch).await
    {
        if results.iter().any(|applied| *applied != Applied::Duplicate) {
            relay.wake();
        }
        for (pending, applied) in batch.into_iter().zip(results) {
            let _ = pending.reply.send(Ok(applied));
        }
        return;
    }
    for pending in batch {
        let result = store::apply(pool, &pending.report).instrument(pending.report.span.clone()).await;
        if matches!(result, Ok(applied) if applied != Applied::Duplicate) {
            relay.wake();
        }
        let _ = pending.reply.send(result);
    }
}

/// Applies every report in one transaction; `None` if anything failed (nothing is kept then).
async fn together(pool: &PgPool, batch: &[Pending]) -> Option<Vec<Applied>> {
    let mut tx = pool.begin().await.ok()?;
    let reports: Vec<&Report> = batch.iter().map(|pending| &pending.report).collect();
    let (results, rows) = outbox::collecting(store::apply_all(&mut tx, &reports)).await;
    let results = results.ok()?;
    outbox::write_and_commit(tx, rows).await.ok()?;
    Some(results)
}
