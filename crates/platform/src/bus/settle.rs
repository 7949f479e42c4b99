//! Settling a handled message: one mapping from a handler's [`Outcome`] to JetStream (ack, nak
//! with a delay, or dead letter), and the counters every consumer keeps by service, kind and outcome.

use std::sync::LazyLock;

use async_nats::jetstream::{self, AckKind};
use messaging_proto::BusMessage as _;
use messaging_proto::bus::{
    DeliveryUnknown, MessageQueued, MessageReceived, NotificationWaiting, OptOutChanged, SendAttempt, StatusChanged,
};

use crate::bus::consumer::{Delivery, Outcome};
use crate::metrics::{self, CounterFamily, HistogramFamily};

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
    const KINDS: &[&str] = &[
        MessageQueued::KIND,
        SendAttempt::KIND,
        StatusChanged::KIND,
        OptOutChanged::KIND,
        MessageReceived::KIND,
        DeliveryUnknown::KIND,
        NotificationWaiting::KIND,
        "account",
        "customer",
    ];
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
        assert_eq!(kind_of("message.acc_1.waiting"), "waiting");
        assert_eq!(kind_of("directory.acc_1.customer.cus_9"), "customer");
        assert_eq!(kind_of("send.sms.acc_1"), "sms");
        assert_eq!(kind_of("notify.acc_1"), "notify");
        assert_eq!(kind_of("jobs.acc_1.job.exploded_7f3a"), "unknown");
        assert_eq!(kind_of("message.acc_1.made_up"), "unknown");
        assert_eq!(kind_of("elsewhere.x"), "unknown");
    }
}
