//! The consumer loop: a durable pull consumer, bounded concurrency, and one mapping from a
//! handler's [`Outcome`] to JetStream: ack after the work is committed, nak with a delay to retry,
//! terminate after dead-lettering to `dlq.<service>.<subject>` with the reason.

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use tokio::sync::Semaphore;
use tracing::Instrument;

pub(crate) use crate::bus::settle::settle;
use crate::bus::trace;
use crate::metrics::{self, GaugeFamily};
use crate::shutdown::{GRACE_PERIOD, Shutdown};

/// A batched consumer's default linger ([`ConsumerSpec::linger`]).
pub const BATCH_LINGER: Duration = Duration::from_millis(2);

/// What to do with a message after handling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done (or already done before): acknowledge.
    Ack,
    /// A transient failure: redeliver after `delay`, up to the consumer's delivery limit.
    Retry { delay: Duration, reason: String },
    /// Never processable: publish to the dead-letter subject with this reason and terminate.
    DeadLetter(String),
}

impl Outcome {
    /// `Ack` once database writes succeeded, a retry naming the database otherwise.
    pub fn of_writes(result: sqlx::Result<()>) -> Self {
        match result {
            Ok(()) => Self::Ack,
            Err(error) => Self::retry(format!("database: {error}")),
        }
    }

    pub fn retry(reason: impl std::fmt::Display) -> Self {
        Outcome::Retry { delay: Duration::from_secs(1), reason: reason.to_string() }
    }

    /// Retry after exponential backoff for the `delivered`-th delivery (0.5 s doubling, at most
    /// 60 s), never sooner than `floor` (a provider's Retry-After), with ±20 % jitter so retries
    /// from many workers do not arrive together.
    pub fn backoff(delivered: i64, floor: Duration, reason: impl std::fmt::Display) -> Self {
        Outcome::Retry { delay: backoff_delay(delivered, floor, rand::random::<f64>()), reason: reason.to_string() }
    }
}

/// The delay [`Outcome::backoff`] uses; `unit` in [0, 1) picks the jitter.
pub fn backoff_delay(delivered: i64, floor: Duration, unit: f64) -> Duration {
    let exponent = u32::try_from(delivered.clamp(1, 8) - 1).unwrap_or(0);
    let base = (Duration::from_millis(500) * 2u32.pow(exponent)).min(Duration::from_secs(60));
    let jittered = base.mul_f64(0.8 + 0.4 * unit.clamp(0.0, 1.0));
    jittered.max(floor)
}

/// One received message, as handlers see it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub subject: String,
    pub payload: Bytes,
    pub headers: Option<async_nats::HeaderMap>,
    /// 1 on first delivery.
    pub delivered: i64,
    pub stream_sequence: u64,
}

/// Handles one message; must be idempotent (JetStream is at-least-once).
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, delivery: &Delivery) -> impl Future<Output = Outcome> + Send;
}

/// A durable pull consumer and how hard to drive it.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    pub stream: &'static str,
    pub durable: String,
    /// The subjects it takes (one or more; JetStream's `filter_subjects` when several).
    pub filters: Vec<String>,
    /// Must exceed the longest piece of work (a provider call).
    pub ack_wait: Duration,
    /// After this many deliveries a retrying message is dead-lettered.
    pub max_deliver: i64,
    /// Messages handled at once by this process ([`run`]); batches at once ([`super::batch::run`]).
    pub concurrency: usize,
    /// The most messages one batch takes ([`super::batch::run`] only).
    pub batch: usize,
    /// Transactions a batch is split into by account, run side by side ([`super::batch::run`] only).
    pub lanes: usize,
    /// How long a batch that already holds more than one message waits for more to fill it: under
    /// load batches grow, while a lone message (an idle system) goes at once.
    pub linger: Duration,
}

impl ConsumerSpec {
    pub fn new(stream: &'static str, durable: &str, filter_subject: &str) -> Self {
        Self::subjects(stream, durable, &[filter_subject])
    }

    /// The catalog's consumer `def` ([`super::consumers`]).
    pub fn of(def: &super::consumers::ConsumerDef) -> Self {
        Self::subjects(def.stream.name, def.durable, def.subjects)
    }

    /// A consumer of several subjects of one stream (only what its handler uses is delivered).
    pub fn subjects(stream: &'static str, durable: &str, filters: &[&str]) -> Self {
        Self {
            stream,
            durable: durable.to_owned(),
            filters: filters.iter().map(|f| (*f).to_owned()).collect(),
            ack_wait: Duration::from_secs(30),
            max_deliver: 10,
            concurrency: 16,
            batch: 1,
            lanes: 1,
            linger: Duration::ZERO,
        }
    }

    /// For [`super::batch::run`]: `in_flight` batches at once, each of up to `size` messages.
    pub fn batched(self, in_flight: usize, size: usize) -> Self {
        Self { concurrency: in_flight.max(1), batch: size.max(1), linger: BATCH_LINGER, ..self }
    }

    /// For [`super::batch::run`]: each batch split into `lanes` transactions by account.
    pub fn lanes(self, lanes: usize) -> Self {
        Self { lanes: lanes.max(1), ..self }
    }

    pub(crate) fn config(&self) -> pull::Config {
        pull::Config {
            durable_name: Some(self.durable.clone()),
            filter_subject: match self.filters.as_slice() {
                [one] => one.clone(),
                _ => String::new(),
            },
            filter_subjects: if self.filters.len() > 1 { self.filters.clone() } else { Vec::new() },
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            // One more than ours so the loop, not the server, decides when to dead-letter.
            max_deliver: self.max_deliver + 1,
            max_ack_pending: (self.concurrency as i64 * self.batch as i64 * 4).max(64),
            ..Default::default()
        }
    }
}

/// Runs `handler` over the consumer until shutdown, then waits (bounded) for in-flight messages.
pub async fn run<H: Handler>(
    context: jetstream::Context,
    service: &'static str,
    spec: ConsumerSpec,
    handler: Arc<H>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let max_deliver = spec.max_deliver;
    let spec = ConsumerSpec { batch: 1, ..spec };
    let work_context = context.clone();
    pump(context, spec, shutdown, move |messages| {
        let (context, handler) = (work_context.clone(), handler.clone());
        async move {
            for message in messages {
                process(&context, service, max_deliver, handler.as_ref(), message).await;
            }
        }
    })
    .await
}

/// The loop under [`run`] and [`super::batch::run`]: pulls messages, hands `work` up to
/// `spec.batch` of them at a time (as many as are already here: it never waits to fill a batch),
/// `spec.concurrency` pieces of work at once; at shutdown waits (bounded) for the work in flight.
pub(crate) async fn pump<W, F>(
    context: jetstream::Context,
    spec: ConsumerSpec,
    shutdown: Shutdown,
    work: W,
) -> anyhow::Result<()>
where
    W: Fn(Vec<jetstream::Message>) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(spec.concurrency));
    tokio::spawn(report_lag(context.clone(), spec.stream, spec.durable.clone(), shutdown.clone()));
    let mut backoff = Duration::from_millis(200);
    'connect: while !shutdown.is_cancelled() {
        let mut messages = match open(&context, &spec).await {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(consumer = %spec.durable, error = %format!("{error:#}"), "consumer not available; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(200);
        tracing::info!(consumer = %spec.durable, subjects = %spec.filters.join(","), "consuming");
        let mut held = None;
        loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                permit = permits.clone().acquire_owned() => permit?,
            };
            let next = match held.take() {
                Some(next) => next,
                None => tokio::select! {
                    _ = shutdown.cancelled() => break,
                    next = messages.next() => next,
                },
            };
            let mut batch = match next {
                Some(Ok(message)) => vec![message],
                Some(Err(error)) => {
                    tracing::warn!(consumer = %spec.durable, %error, "pull failed; reopening consumer");
                    tokio::time::sleep(backoff).await;
                    continue 'connect;
                }
                None => continue 'connect,
            };
            // Whatever else has already arrived joins the batch; an error or the stream's end is
            // held for the next turn.
            while batch.len() < spec.batch {
                match messages.next().now_or_never() {
                    Some(Some(Ok(message))) => batch.push(message),
                    Some(other) => {
                        held = Some(other);
                        break;
                    }
                    None => break,
                }
            }
            if batch.len() > 1 && held.is_none() {
                let until = tokio::time::Instant::now() + spec.linger;
                while batch.len() < spec.batch {
                    match tokio::time::timeout_at(until, messages.next()).await {
                        Ok(Some(Ok(message))) => batch.push(message),
                        Ok(other) => {
                            held = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
            }
            let piece = work(batch);
            tokio::spawn(async move {
                piece.await;
                drop(permit);
            });
        }
        // Only shutdown ends the loop above.
        return_unstarted(&spec.durable, held, &mut messages).await;
        break;
    }
    // Drain: wait until every permit is back, bounded by the grace period.
    let all = u32::try_from(spec.concurrency).unwrap_or(u32::MAX);
    if tokio::time::timeout(GRACE_PERIOD, permits.acquire_many(all)).await.is_err() {
        tracing::warn!(consumer = %spec.durable, "in-flight messages did not finish within the grace period");
    }
    // Acks are buffered by the client: send them before the process exits, or the work just
    // finished would be redelivered after the ack deadline.
    match tokio::time::timeout(Duration::from_secs(5), context.client().flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(consumer = %spec.durable, %error, "acks may not have reached the server"),
        Err(_) => tracing::warn!(consumer = %spec.durable, "acks may not have reached the server in time"),
    }
    Ok(())
}

/// At shutdown, hands back what the pull already brought but no work started on, so another
/// process gets it at once rather than after the ack deadline. (A message still on its way when
/// the subscription closes comes back after the deadline, as a redelivery.)
async fn return_unstarted(
    durable: &str,
    held: Option<Option<Result<jetstream::Message, pull::MessagesError>>>,
    messages: &mut pull::Stream,
) {
    let mut returned = 0usize;
    let mut unstarted: Vec<jetstream::Message> = held.into_iter().flatten().filter_map(Result::ok).collect();
    while let Some(Some(Ok(message))) = messages.next().now_or_never() {
        unstarted.push(message);
    }
    for message in unstarted {
        if message.ack_with(AckKind::Nak(None)).await.is_ok() {
            returned += 1;
        }
    }
    if returned > 0 {
        tracing::info!(consumer = %durable, returned, "returned messages no work had started on");
    }
}

static PENDING: LazyLock<GaugeFamily> =
    LazyLock::new(|| metrics::gauge("bus_consumer_pending", "Messages a durable consumer has not been given yet"));
static ACK_PENDING: LazyLock<GaugeFamily> =
    LazyLock::new(|| metrics::gauge("bus_consumer_ack_pending", "Messages given to a durable consumer, not yet acked"));
static REDELIVERED: LazyLock<GaugeFamily> = LazyLock::new(|| {
    metrics::gauge("bus_consumer_redelivered", "Messages a durable consumer has been given more than once, unacked")
});

/// Every 10 s (first after 1 s), the consumer's lag as JetStream reports it (what autoscaling on
/// lag reads).
async fn report_lag(context: jetstream::Context, stream: &'static str, durable: String, shutdown: Shutdown) {
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
    loop {
        if let Ok(stream) = context.get_stream(stream).await
            && let Ok(mut consumer) = stream.get_consumer::<pull::Config>(&durable).await
            && let Ok(info) = consumer.info().await
        {
            let labels = [("consumer", durable.as_str())];
            metrics::set(&PENDING, &labels, i64::try_from(info.num_pending).unwrap_or(i64::MAX));
            metrics::set(&ACK_PENDING, &labels, i64::try_from(info.num_ack_pending).unwrap_or(i64::MAX));
            metrics::set(&REDELIVERED, &labels, i64::try_from(info.num_redelivered).unwrap_or(i64::MAX));
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
        }
    }
}

async fn open(context: &jetstream::Context, spec: &ConsumerSpec) -> anyhow::Result<pull::Stream> {
    let consumer = super::durable::ensure(context, spec).await?;
    consumer.messages().await.map_err(|e| anyhow::anyhow!("messages of {}: {e}", spec.durable))
}

async fn process<H: Handler>(
    context: &jetstream::Context,
    service: &'static str,
    max_deliver: i64,
    handler: &H,
    message: jetstream::Message,
) {
    let delivery = Delivery::of(&message);
    let span = consume_span(service, &delivery);
    let started = std::time::Instant::now();
    let outcome = handler.handle(&delivery).instrument(span.clone()).await;
    settle(context, service, max_deliver, &delivery, &message, outcome, started).instrument(span).await;
}

impl Delivery {
    /// The bus message this delivery carries, checked against the subject it came on (one naming
    /// another account, customer or channel is never applied): the one decode path every consumer
    /// of a protobuf subject uses; anything else is a dead letter with the reason.
    pub fn decode<M: messaging_proto::BusMessage>(&self) -> Result<M, Outcome> {
        let message = M::from_bytes(self.payload.as_ref())
            .map_err(|error| Outcome::DeadLetter(format!("undecodable {} message: {error}", M::KIND)))?;
        let expected = message.subject();
        if expected != self.subject {
            return Err(Outcome::DeadLetter(format!(
                "subject {} does not match the {} message it carries ({expected})",
                self.subject,
                M::KIND
            )));
        }
        Ok(message)
    }

    pub(crate) fn of(message: &jetstream::Message) -> Self {
        let (delivered, stream_sequence) = match message.info() {
            Ok(info) => (info.delivered, info.stream_sequence),
            Err(_) => (1, 0),
        };
        Delivery {
            subject: message.subject.to_string(),
            payload: message.payload.clone(),
            headers: message.headers.clone(),
            delivered,
            stream_sequence,
        }
    }
}

/// The span a message is handled in, a child of the publisher's trace.
pub fn consume_span(service: &'static str, delivery: &Delivery) -> tracing::Span {
    let span = tracing::info_span!("consume", service, subject = %delivery.subject, delivered = delivery.delivered, otel.kind = "consumer");
    trace::adopt_parent(&span, delivery.headers.as_ref());
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_decodes_only_to_the_message_its_subject_names() {
        use messaging_proto::BusMessage as _;
        use messaging_proto::bus::{SendAttempt, StatusChanged};
        let event = StatusChanged { account_id: "acc_1".into(), message_id: "msg_1".into(), ..Default::default() };
        let on = |subject: &str, payload: Vec<u8>| Delivery {
            subject: subject.into(),
            payload: payload.into(),
            headers: None,
            delivered: 1,
            stream_sequence: 1,
        };
        let decoded = on("message.acc_1.status", event.payload()).decode::<StatusChanged>();
        assert_eq!(decoded.map(|e| e.message_id), Ok("msg_1".to_owned()));
        let dead = |outcome: Option<Outcome>| match outcome {
            Some(Outcome::DeadLetter(reason)) => reason,
            other => panic!("not a dead letter: {other:?}"),
        };
        let elsewhere = dead(on("message.acc_2.status", event.payload()).decode::<StatusChanged>().err());
        assert!(elsewhere.contains("does not match the status message"), "{elsewhere}");
        let mistaken = dead(on("message.acc_1.status", event.payload()).decode::<SendAttempt>().err());
        assert!(mistaken.contains("does not match"), "{mistaken}");
        let garbage = dead(on("message.acc_1.status", vec![0xff, 0xff]).decode::<StatusChanged>().err());
        assert!(garbage.starts_with("undecodable status message"), "{garbage}");
    }

    #[test]
    fn backoff_doubles_is_capped_jittered_and_honours_the_floor() {
        assert_eq!(backoff_delay(1, Duration::ZERO, 0.5), Duration::from_millis(500));
        assert_eq!(backoff_delay(2, Duration::ZERO, 0.5), Duration::from_secs(1));
        assert_eq!(backoff_delay(4, Duration::ZERO, 0.5), Duration::from_secs(4));
        assert_eq!(backoff_delay(50, Duration::ZERO, 0.5), Duration::from_secs(60));
        assert_eq!(backoff_delay(1, Duration::ZERO, 0.0), Duration::from_millis(400));
        assert!(backoff_delay(1, Duration::ZERO, 0.999) < Duration::from_millis(600));
        assert_eq!(backoff_delay(1, Duration::from_secs(7), 0.5), Duration::from_secs(7), "Retry-After wins");
    }
}
