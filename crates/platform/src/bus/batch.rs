//! Batched consumers: the messages already waiting are handled in one database transaction and
//! acked together once it commits, so a busy consumer pays one BEGIN/COMMIT, one outbox insert per
//! schema (the rows the handlers enqueue are collected and written together), one outbox wake and
//! one NOTIFY per channel and payload per batch instead of per message. If any message of the
//! batch is not a clean `Ack`, or the commit fails, the batch is rolled back and every message is
//! handled again in a transaction of its own, so outcomes (retry, dead letter) stay per message.
//! A handler may write the whole batch set-based ([`TxHandler::handle_batch`], in [`in_rounds`]).

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use async_nats::jetstream;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tracing::Instrument;

use crate::bus::consumer::{self, ConsumerSpec, Delivery, Outcome, consume_span, settle};
use crate::bus::outbox::{self, Relay};
use crate::metrics::{self, HistogramFamily};
use crate::shutdown::Shutdown;

static BATCHES: LazyLock<HistogramFamily> = LazyLock::new(|| {
    metrics::sizes(
        "bus_batch_messages",
        "Messages handled in one transaction by a batched consumer, by service and consumer",
    )
});

static SPLIT: LazyLock<metrics::CounterFamily> = LazyLock::new(|| {
    metrics::counter(
        "bus_batches_split",
        "Batches rolled back and handled one message at a time (a message not acked, or the commit failed)",
    )
});

/// Handles one message inside a transaction the loop owns (and commits); must be idempotent, and
/// must leave any decision that is not `Ack` to the outcome, never half-applied: a batch holding it
/// is rolled back and the message handled again alone.
pub trait TxHandler: Send + Sync + 'static {
    fn handle(&self, tx: &mut PgConnection, delivery: &Delivery) -> impl Future<Output = Outcome> + Send;

    /// Handles a whole batch (in lock-key order) in the transaction, one outcome per delivery:
    /// a handler overrides it to write the batch with a few statements over arrays instead of
    /// one per message. Anything but all `Ack` rolls the batch back, and each delivery is then
    /// handled alone by [`TxHandler::handle`]. The default handles each in turn.
    fn handle_batch(
        &self,
        tx: &mut PgConnection,
        deliveries: &[Delivery],
        service: &'static str,
    ) -> impl Future<Output = Vec<Outcome>> + Send {
        one_by_one(self, tx, deliveries, service)
    }

    /// Runs after a transaction holding this handler's work has committed (wake an outbox relay);
    /// for a handler that publishes after commit, only when the transaction wrote outbox rows.
    fn committed(&self) {}

    /// Runs between a commit and the publishing of its events, for a handler that publishes after
    /// commit: the moment a crash leaves state committed and events unpublished (fault-injection
    /// tests abort the process here).
    fn publishing(&self) {}

    /// The relay through which this handler's events are published straight after its
    /// transaction commits, before the input is acked ([`crate::bus::direct`]), instead of being
    /// left to the outbox. A handler that names one must enqueue the same events again, from the
    /// state it finds, when its input is redelivered. `None` (the default) keeps the outbox.
    fn publishes_after_commit(&self) -> Option<&Relay> {
        None
    }

    /// The key of the rows `delivery` writes (a message's id, say). A batch's transaction handles
    /// its deliveries in key order — one key's deliveries keep their stream order — so
    /// transactions that write the same rows lock them in one order and never deadlock. `None`
    /// (the default) keeps stream order.
    fn lock_key(&self, _delivery: &Delivery) -> Option<String> {
        None
    }
}

/// Handles each delivery of a batch in turn with [`TxHandler::handle`], in its consume span, up
/// to the first that is not acked: [`TxHandler::handle_batch`]'s default, and a handler's own
/// for the batches it cannot write set-based.
pub async fn one_by_one<H: TxHandler + ?Sized>(
    handler: &H,
    tx: &mut PgConnection,
    deliveries: &[Delivery],
    service: &'static str,
) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let outcome = handler.handle(tx, delivery).instrument(consume_span(service, delivery)).await;
        let acked = outcome == Outcome::Ack;
        outcomes.push(outcome);
        if !acked {
            break;
        }
    }
    outcomes
}

/// The round of each item of a batch written set-based: an item's round is how many items before
/// it share its key, so each round holds at most one item per key (one statement may then upsert
/// all of a round's rows), and one key's items stay in their order, a round apart.
fn rounds<K: Eq + std::hash::Hash>(keys: impl IntoIterator<Item = K>) -> Vec<usize> {
    let mut seen: std::collections::HashMap<K, usize> = std::collections::HashMap::new();
    keys.into_iter()
        .map(|key| {
            let count = seen.entry(key).or_insert(0);
            *count += 1;
            *count - 1
        })
        .collect()
}

/// `items` (in stream order) in [`rounds`] by `key`: each round holds a key once, in stream order.
pub fn in_rounds<T, K: Eq + std::hash::Hash>(items: Vec<T>, key: impl Fn(&T) -> K) -> Vec<Vec<T>> {
    let round_of = rounds(items.iter().map(key));
    let mut by_round: Vec<Vec<T>> = Vec::new();
    for (item, round) in items.into_iter().zip(round_of) {
        if by_round.len() <= round {
            by_round.resize_with(round + 1, Vec::new);
        }
        by_round[round].push(item);
    }
    by_round
}

/// Decodes every delivery of a batch for [`TxHandler::handle_batch`]; at the first that cannot be,
/// the outcomes to return instead (those before it acked, then its own), which roll the batch back
/// so that each message is handled alone.
pub fn decode_all<'a, T>(
    deliveries: &'a [Delivery],
    mut decode: impl FnMut(&'a Delivery) -> Result<T, Outcome>,
) -> Result<Vec<T>, Vec<Outcome>> {
    let mut decoded = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        match decode(delivery) {
            Ok(item) => decoded.push(item),
            Err(outcome) => {
                let mut outcomes = vec![Outcome::Ack; decoded.len()];
                outcomes.push(outcome);
                return Err(outcomes);
            }
        }
    }
    Ok(decoded)
}

/// [`TxHandler::handle_batch`] for a handler that writes a whole batch in one go: each delivery
/// decoded ([`decode_all`]), its consume span open (in its publisher's trace) while `write` runs,
/// and every delivery's outcome that of the write.
pub async fn write_all<'a, T, W: Future<Output = sqlx::Result<()>>>(
    deliveries: &'a [Delivery],
    service: &'static str,
    decode: impl FnMut(&'a Delivery) -> Result<T, Outcome>,
    write: impl FnOnce(Vec<T>) -> W,
) -> Vec<Outcome> {
    let _spans: Vec<tracing::Span> = deliveries.iter().map(|d| consume_span(service, d)).collect();
    match decode_all(deliveries, decode) {
        Ok(items) => vec![Outcome::of_writes(write(items).await); deliveries.len()],
        Err(outcomes) => outcomes,
    }
}

/// Runs `handler` over the consumer in batches of up to `spec.batch`, `spec.concurrency` at once;
/// a batch is split into `spec.lanes` transactions by account, run side by side.
pub async fn run<H: TxHandler>(
    context: jetstream::Context,
    service: &'static str,
    spec: ConsumerSpec,
    pool: PgPool,
    handler: Arc<H>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let lanes = spec.lanes.max(1);
    let batch = Batch { context: context.clone(), service, max_deliver: spec.max_deliver, pool, handler };
    let batch = Arc::new(batch);
    let durable: Arc<str> = spec.durable.as_str().into();
    consumer::pump(context, spec, shutdown, move |messages| {
        let (batch, durable) = (batch.clone(), durable.clone());
        async move {
            let mut split: Vec<Vec<jetstream::Message>> = (0..lanes).map(|_| Vec::new()).collect();
            for message in messages {
                split[lane(&message.subject, lanes)].push(message);
            }
            let labels = [("service", service), ("consumer", &*durable)];
            let work = split.into_iter().filter(|lane| !lane.is_empty()).map(|lane| batch.handle(lane, &labels));
            futures::future::join_all(work).await;
        }
    })
    .await
}

/// The lane of a subject: by its second token, the account on every subject a batched consumer
/// reads, so no two lanes' transactions write one account's rows (a message's events always
/// share a lane, and their order in it).
fn lane(subject: &str, lanes: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    subject.split('.').nth(1).unwrap_or("").hash(&mut hasher);
    (hasher.finish() % lanes as u64) as usize
}

/// What handling a batch needs.
struct Batch<H> {
    context: jetstream::Context,
    service: &'static str,
    max_deliver: i64,
    pool: PgPool,
    handler: Arc<H>,
}

impl<H: TxHandler> Batch<H> {
    /// Handles `messages` in one transaction, or one by one if that fails, and settles each.
    async fn handle(&self, messages: Vec<jetstream::Message>, labels: &[(&str, &str)]) {
        let (context, service, max_deliver) = (&self.context, self.service, self.max_deliver);
        let handler = self.handler.as_ref();
        let started = Instant::now();
        let mut pairs: Vec<(Delivery, jetstream::Message)> =
            messages.into_iter().map(|message| (Delivery::of(&message), message)).collect();
        pairs.sort_by_cached_key(|(delivery, _)| handler.lock_key(delivery));
        let (deliveries, messages): (Vec<Delivery>, Vec<jetstream::Message>) = pairs.into_iter().unzip();
        metrics::observe(&BATCHES, labels, deliveries.len() as f64);
        let single = deliveries.len() == 1;
        if !single && let Some(outcome) = together(&self.pool, handler, service, &deliveries).await {
            for (delivery, message) in deliveries.iter().zip(&messages) {
                settle(context, service, max_deliver, delivery, message, outcome.clone(), started).await;
            }
            return;
        }
        if !single {
            metrics::inc(&SPLIT, labels);
        }
        for (delivery, message) in deliveries.iter().zip(&messages) {
            let span = consume_span(service, delivery);
            let started = Instant::now();
            let outcome = alone(&self.pool, handler, delivery).instrument(span.clone()).await;
            settle(context, service, max_deliver, delivery, message, outcome, started).instrument(span).await;
        }
    }
}

/// Handles every delivery in one transaction: the outcome of them all once it committed, `None`
/// when a delivery was not `Ack` or the commit failed (the batch is then handled one by one).
async fn together<H: TxHandler>(
    pool: &PgPool,
    handler: &H,
    service: &'static str,
    deliveries: &[Delivery],
) -> Option<Outcome> {
    let mut tx = pool.begin().await.ok()?;
    let (outcomes, rows) = outbox::collecting(handler.handle_batch(&mut tx, deliveries, service)).await;
    let acked = outcomes.len() == deliveries.len() && outcomes.iter().all(|outcome| *outcome == Outcome::Ack);
    if let Some((outcome, delivery)) = outcomes.iter().zip(deliveries).find(|(outcome, _)| **outcome != Outcome::Ack) {
        tracing::debug!(subject = %delivery.subject, ?outcome, batch = deliveries.len(), "batch rolled back; handling its messages one by one");
    }
    if !acked {
        return None;
    }
    match finish(handler, tx, rows).await {
        Ok(outcome) => Some(outcome),
        Err(error) => {
            tracing::debug!(%error, batch = deliveries.len(), "batch did not commit; handling its messages one by one");
            None
        }
    }
}

/// Handles one delivery in a transaction of its own, committed only on `Ack`.
async fn alone<H: TxHandler>(pool: &PgPool, handler: &H, delivery: &Delivery) -> Outcome {
    let mut tx = match pool.begin().await {
        Ok(tx) => tx,
        Err(error) => return Outcome::retry(format!("database: {error}")),
    };
    let (outcome, rows) = outbox::collecting(handler.handle(&mut tx, delivery)).await;
    if outcome != Outcome::Ack {
        return outcome;
    }
    finish(handler, tx, rows).await.unwrap_or_else(|error| Outcome::retry(format!("database: {error}")))
}

/// Ends a transaction whose deliveries were all `Ack`: writes the rows it enqueued to the outbox
/// and commits, or, for a handler that publishes after commit, commits and then publishes them.
/// `Err` when it did not commit; then `Ack`, or a retry when its events could be neither
/// published nor written to the outbox.
async fn finish<H: TxHandler>(
    handler: &H,
    mut tx: Transaction<'_, Postgres>,
    rows: Vec<outbox::Collected>,
) -> sqlx::Result<Outcome> {
    let Some(relay) = handler.publishes_after_commit() else {
        outbox::write_and_commit(tx, rows).await?;
        handler.committed();
        return Ok(Outcome::Ack);
    };
    let (rows, wrote) = relay.keep_publishable(&mut tx, rows).await?;
    tx.commit().await?;
    handler.publishing();
    // Nothing else is in the outbox for its relay to look for.
    if wrote {
        handler.committed();
    }
    Ok(match relay.publish_committed(rows).await {
        Ok(()) => Outcome::Ack,
        Err(error) => Outcome::retry(format!("publishing after commit, then the outbox: {error}")),
    })
}

#[cfg(test)]
mod tests {
    use super::{in_rounds, lane, rounds};

    #[test]
    fn each_round_holds_a_key_once_and_a_keys_items_keep_their_order() {
        assert_eq!(rounds(["a", "b", "a", "c", "a", "b"]), [0, 0, 1, 0, 2, 1]);
        assert_eq!(rounds(Vec::<&str>::new()), Vec::<usize>::new());
        assert_eq!(rounds(["x"]), [0]);
        let items = vec![("a", 1), ("b", 2), ("a", 3), ("c", 4), ("a", 5), ("b", 6)];
        let grouped = in_rounds(items, |(key, _)| *key);
        assert_eq!(grouped, [vec![("a", 1), ("b", 2), ("c", 4)], vec![("a", 3), ("b", 6)], vec![("a", 5)]]);
    }

    #[test]
    fn an_accounts_messages_share_a_lane_and_accounts_spread() {
        for account in ["acc_1", "acc_2", "acc_ace"] {
            let lanes: Vec<usize> = [
                format!("message.{account}.queued"),
                format!("message.{account}.status"),
                format!("directory.{account}.customer.cus_9"),
            ]
            .iter()
            .map(|subject| lane(subject, 4))
            .collect();
            assert!(lanes.iter().all(|l| *l == lanes[0] && *l < 4), "{account}: {lanes:?}");
        }
        let used: std::collections::BTreeSet<usize> =
            (0..64).map(|n| lane(&format!("message.acc_{n}.status"), 4)).collect();
        assert_eq!(used.len(), 4, "64 accounts use every lane");
        assert_eq!(lane("message.acc_1.status", 1), 0);
    }
}
