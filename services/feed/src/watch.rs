//! WatchFeed's streams: each sends every change of its account after its cursor, woken by the
//! projector's notifications and polling besides; a technician's stream re-resolves their scope
//! before every read, so it follows reassignments and never sends another customer's change.

use std::time::Duration;

use messaging_domain::{AccountId, TechnicianId};
use messaging_platform::Shutdown;
use messaging_proto::v1 as api;
use sqlx::PgPool;
use tokio::sync::{broadcast, mpsc};
use tonic::Status;

use crate::changes::{self, WatchCursor};
use crate::convert::{self, internal};
use crate::limits::StreamSlot;
use crate::scope::{self, Scope};

/// Changes a watcher reads per query.
const WATCH_BATCH: i64 = 100;
/// How often a watcher looks for changes without a notification (one may have been missed, or the
/// change's transaction was not yet older than every running one).
const WATCH_POLL: Duration = Duration::from_secs(1);
/// How long a quiet stream waits before sending a fresh cursor without a message, so a client
/// resuming after a quiet day still holds a cursor within the retention.
const WATCH_HEARTBEAT: Duration = Duration::from_secs(30);
/// The least time between two reads of one watcher: under load changes come in bursts (every
/// projector commit notifies), and one read a little later takes the whole burst. A change after
/// a quiet spell is read at once.
const WATCH_MIN_GAP: Duration = Duration::from_millis(50);

/// One WatchFeed stream.
pub struct Watcher {
    pub pool: PgPool,
    pub account: AccountId,
    /// A technician's stream: whose scope, and how long a finished job keeps its customer in it.
    pub technician: Option<(TechnicianId, Duration)>,
    pub signals: broadcast::Receiver<String>,
    pub shutdown: Shutdown,
    /// Held while the stream is open.
    pub _slot: StreamSlot,
}

impl Watcher {
    /// What this stream may send now.
    async fn scope(&self) -> sqlx::Result<Scope> {
        let Some((technician, recent)) = &self.technician else { return Ok(Scope::Account) };
        scope::resolve(&self.pool, &self.account, Some(technician), *recent).await
    }

    /// Sends every change after `cursor` until the client goes away or the service stops.
    pub async fn run(mut self, mut cursor: WatchCursor, sender: mpsc::Sender<Result<api::WatchFeedResponse, Status>>) {
        // The stream's position first: a client cut off before anything changes resumes from
        // here, not from a later "now" that would skip what happened in between.
        if sender.send(Ok(api::WatchFeedResponse { message: None, cursor: cursor.encode() })).await.is_err() {
            return;
        }
        let mut quiet_since = tokio::time::Instant::now();
        loop {
            let read_at = tokio::time::Instant::now();
            let batch = match changes::after(&self.pool, self.account.as_str(), &cursor, WATCH_BATCH).await {
                Ok(batch) => batch,
                Err(error) => {
                    let _ = sender.send(Err(internal(error))).await;
                    return;
                }
            };
            let scope = match self.scope().await {
                Ok(scope) => scope,
                Err(error) => {
                    let _ = sender.send(Err(internal(error))).await;
                    return;
                }
            };
            let full = batch.len() as i64 == WATCH_BATCH;
            for (next, row) in batch {
                cursor = WatchCursor { at: chrono::Utc::now(), ..next };
                let Some(row) = row.filter(|row| scope.allows(&row.customer_id)) else { continue };
                let change = api::WatchFeedResponse { message: Some(convert::message(&row)), cursor: cursor.encode() };
                if sender.send(Ok(change)).await.is_err() {
                    return;
                }
                quiet_since = tokio::time::Instant::now();
            }
            if quiet_since.elapsed() >= WATCH_HEARTBEAT {
                cursor.at = chrono::Utc::now();
                if sender.send(Ok(api::WatchFeedResponse { message: None, cursor: cursor.encode() })).await.is_err() {
                    return;
                }
                quiet_since = tokio::time::Instant::now();
            }
            if full {
                continue;
            }
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = sender.closed() => return,
                () = tokio::time::sleep(WATCH_POLL) => {}
                () = signalled(&mut self.signals, self.account.as_str()) => {}
            }
            let gap = WATCH_MIN_GAP.saturating_sub(read_at.elapsed());
            if !gap.is_zero() {
                tokio::select! {
                    () = self.shutdown.cancelled() => return,
                    () = tokio::time::sleep(gap) => {}
                }
                // The read about to happen covers whatever was signalled meanwhile.
                drain(&mut self.signals);
            }
        }
    }
}

/// Takes every signal already queued.
fn drain(signals: &mut broadcast::Receiver<String>) {
    while !matches!(
        signals.try_recv(),
        Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed)
    ) {}
}

/// Returns once a change for `account` is signalled (or signals were missed), having taken every
/// signal already queued: one read of the log covers them all.
async fn signalled(signals: &mut broadcast::Receiver<String>, account: &str) {
    loop {
        match signals.recv().await {
            Ok(changed) if changed == account => {
                drain(signals);
                return;
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}
