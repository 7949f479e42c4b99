//! sms-gateway's metrics: provider call latency by outcome, and sends held back by a rate limit.

use std::sync::LazyLock;
use std::time::Duration;

use messaging_platform::metrics::{self, CounterFamily, HistogramFamily};

static PROVIDER_CALLS: LazyLock<HistogramFamily> = LazyLock::new(|| {
    metrics::latency(
        "sms_gateway_provider_call_seconds",
        "Twilio Messages API create calls by outcome (accepted, refused, rate_limited, not_sent, ambiguous)",
    )
});

static RATE_LIMITED: LazyLock<CounterFamily> = LazyLock::new(|| {
    metrics::counter(
        "sms_gateway_rate_limited",
        "Sends postponed by a rate limit, ours (sending number) or the provider's",
    )
});

pub fn provider_call(elapsed: Duration, outcome: &str) {
    metrics::observe(&PROVIDER_CALLS, &[("outcome", outcome)], elapsed.as_secs_f64());
}

pub fn rate_limited(ours: bool) {
    metrics::inc(&RATE_LIMITED, &[("limit", if ours { "sending_number" } else { "provider" })]);
}
