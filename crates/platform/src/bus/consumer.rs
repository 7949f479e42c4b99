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

use crate::bus::trace;
use crate::metrics::{self, CounterFamily, GaugeFamily, HistogramFamily};
use crate::shutdown::{GRACE_PERIOD, Shutdown};

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
    pub filter_subject: String,
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
}

impl ConsumerSpec {
    pub fn new(stream: &'static str, durable: &str, filter_subject: &str) -> Self {
        Self {
            stream,
            durable: durable.to_owned(),
            filter_subject: filter_subject.to_owned(),
            ack_wait: Duration::from_secs(30),
            max_deliver: 10,
            concurrency: 16,
            batch: 1,
            lanes: 1,
        }
    }

    /// For [`super::batch::run`]: `in_flight` batches at once, each of up to `size` messages.
    pub fn batched(self, in_flight: usize, size: usize) -> Self {
        Self { concurrency: in_flight.max(1), batch: size.max(1), ..self }
    }

    /// For [`super::batch::run`]: each batch split into `lanes` transactions by account.
    pub fn lanes(self, lanes: usize) -> Self {
        Self { lanes: lanes.max(1), ..self }
    }

    pub(crate) fn config(&self) -> pull::Config {
        pull::Config {
            durable_name: Some(self.durable.clone()),
            filter_subject: self.filter_subject.clone(),
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
        tracing::info!(consumer = %spec.durable, subject = %spec.filter_subject, "consuming");
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
pub(crate) fn consume_span(service: &'static str, delivery: &Delivery) -> tracing::Span {
    let span = tracing::info_span!("consume", service, subject = %delivery.subject, delivered = delivery.delivered, otel.kind = "consumer");
    trace::adopt_parent(&span, delivery.headers.as_ref());
    span
}

/// Maps a handler's outcome to JetStream (ack, nak with delay, or dead letter) and counts it.
pub(crate) async fn settle(
    context: &jetstream::Context,
    service: &'static str,
    max_deliver: i64,
    delivery: &Delivery,
    message: &jetstream::Message,
    outcome: Outcome,
    started: std::time::Instant,
) {
    let kind = kind_of(&delivery.subject);
    let counted = |outcome: &str| {
        metrics::inc(&CONSUMED, &[("service", service), ("kind", kind), ("outcome", outcome)]);
        metrics::observe(&HANDLING, &[("service", service), ("kind", kind)], started.elapsed().as_secs_f64());
    };
    let delivered = delivery.delivered;
    let result = match outcome {
        Outcome::Ack => {
            counted("ack");
            message.ack().await
        }
        Outcome::Retry { reason, .. } if delivered >= max_deliver => {
            counted("dead_letter");
            metrics::inc(&ERRORS, &[("service", service), ("class", "exhausted")]);
            let reason = format!("gave up after {delivered} deliveries: {reason}");
            super::dead_letter::publish(context, service, delivery, &reason, message).await
        }
        Outcome::Retry { delay, reason } => {
            counted("retry");
            metrics::inc(&ERRORS, &[("service", service), ("class", error_class(&reason))]);
            tracing::warn!(%reason, ?delay, "will retry");
            message.ack_with(AckKind::Nak(Some(delay))).await
        }
        Outcome::DeadLetter(reason) => {
            counted("dead_letter");
            let class = if reason.starts_with("conflict:") { "conflict" } else { "invalid_input" };
            metrics::inc(&ERRORS, &[("service", service), ("class", class)]);
            super::dead_letter::publish(context, service, delivery, &reason, message).await
        }
    };
    if let Err(error) = result {
        tracing::warn!(%error, "could not settle message; it will be redelivered");
    }
}

static CONSUMED: LazyLock<CounterFamily> = LazyLock::new(|| {
    metrics::counter(
        "bus_messages_handled",
        "Bus messages handled, by service, kind and outcome (ack, retry, dead_letter)",
    )
});

static HANDLING: LazyLock<HistogramFamily> = LazyLock::new(|| {
    metrics::latency("bus_message_handling_seconds", "Time to handle one bus message, by service and kind")
});

static ERRORS: LazyLock<CounterFamily> = LazyLock::new(|| {
    metrics::counter(
        "bus_errors",
        "Bus messages not done, by service and class: database, broker, provider, contention (a claim or a \
         rate limit: waiting, not failing), configuration (an operator must fix a setting), invalid_input (dead-lettered), conflict (dead-lettered: \
         another tenant holds what it claims), exhausted (retried max_deliver times), \
         other",
    )
});

/// The class of a retry's reason, for `bus_errors_total`. Handlers word their reasons with the
/// failing dependency first ("database: …", "provider unreachable: …", "smtp: …").
fn error_class(reason: &str) -> &'static str {
    let reason = reason.to_ascii_lowercase();
    let starts = |words: &[&str]| words.iter().any(|w| reason.starts_with(w));
    let has = |words: &[&str]| words.iter().any(|w| reason.contains(w));
    if has(&["holds the claim", "claim taken over", "its slot"]) || (has(&["rate limit"]) && !starts(&["provider"])) {
        "contention"
    } else if starts(&["configuration"]) {
        "configuration"
    } else if starts(&["database"]) || has(&["pool timed out", "sqlx"]) {
        "database"
    } else if starts(&["provider", "smtp", "twilio"]) || has(&["the provider"]) {
        "provider"
    } else if has(&["nats", "publish", "jetstream"]) {
        "broker"
    } else {
        "other"
    }
}

/// A subject's kind without account or entity ids: `jobs.<acc>.job.scheduled` → `job.scheduled`,
/// `message.<acc>.status` → `status`, `send.sms.<acc>` → `sms`, `directory.<acc>.customer.<id>`
/// → `customer`, `notify.<acc>` → `notify`.
///
/// Anything a publisher makes up (an unknown event type, a stray subject) shares the label
/// `unknown`, so the metrics' label sets stay bounded.
fn kind_of(subject: &str) -> &str {
    const KINDS: &[&str] =
        &["queued", "attempt", "status", "opt_out", "received", "delivery_unknown", "account", "customer"];
    let mut parts = subject.splitn(3, '.');
    let (root, second, rest) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let kind = match root {
        "jobs" => rest,
        "message" | "directory" => rest.split('.').next().unwrap_or(""),
        "send" => second,
        _ => root,
    };
    let known = match root {
        "jobs" => messaging_domain::event::EVENT_TYPES.contains(&kind),
        "message" | "directory" => KINDS.contains(&kind),
        "send" => matches!(kind, "sms" | "email"),
        _ => matches!(root, "notify" | "dlq"),
    };
    if known { kind } else { "unknown" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_reasons_fall_into_classes() {
        assert_eq!(error_class("database: pool timed out while waiting for an open connection"), "database");
        assert_eq!(error_class("provider unreachable: operation timed out"), "provider");
        assert_eq!(error_class("provider unreachable: connection refused"), "provider");
        assert_eq!(error_class("provider rate limit"), "provider");
        assert_eq!(error_class("smtp: 451 try again later"), "provider");
        assert_eq!(error_class("could not ask the provider about an orphaned claim: timeout"), "provider");
        assert_eq!(error_class("another gateway holds the claim"), "contention");
        assert_eq!(error_class("claim taken over elsewhere"), "contention");
        assert_eq!(error_class("sending number at its rate limit"), "contention");
        assert_eq!(error_class("could not publish to nats"), "broker");
        assert_eq!(error_class("configuration: the server's TLS certificate is not trusted"), "configuration");
        assert_eq!(error_class("something else"), "other");
    }

    #[test]
    fn kinds_carry_no_ids() {
        assert_eq!(kind_of("jobs.acc_1.job.scheduled"), "job.scheduled");
        assert_eq!(kind_of("message.acc_1.status"), "status");
        assert_eq!(kind_of("directory.acc_1.customer.cus_9"), "customer");
        assert_eq!(kind_of("send.sms.acc_1"), "sms");
        assert_eq!(kind_of("notify.acc_1"), "notify");
        assert_eq!(kind_of("jobs.acc_1.job.exploded_7f3a"), "unknown");
        assert_eq!(kind_of("message.acc_1.made_up"), "unknown");
        assert_eq!(kind_of("elsewhere.x"), "unknown");
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
