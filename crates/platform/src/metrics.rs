//! Prometheus metrics: one process-wide registry, counters registered where they are counted,
//! rendered in the text exposition format on the health server's `/metrics`.

use std::sync::{LazyLock, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label pairs; keep their values low-cardinality (types, channels, outcomes; never ids).
pub type Labels = Vec<(String, String)>;

/// A family of counters by label set.
pub type CounterFamily = Family<Labels, Counter>;

/// A family of latency histograms (seconds, 5 ms to ~20 s) by label set.
pub type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 12))
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| Mutex::new(Registry::default()));

/// Registers a counter family; exposed as `<name>_total`.
pub fn counter(name: &str, help: &str) -> CounterFamily {
    let family = CounterFamily::default();
    REGISTRY.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).register(name, help, family.clone());
    family
}

/// Registers a latency histogram family; exposed as `<name>_bucket`, `_sum` and `_count`.
pub fn latency(name: &str, help: &str) -> HistogramFamily {
    let family = HistogramFamily::new_with_constructor(latency_histogram as fn() -> Histogram);
    REGISTRY.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).register(name, help, family.clone());
    family
}

/// Records one observation in seconds.
pub fn observe(family: &HistogramFamily, labels: &[(&str, &str)], seconds: f64) {
    let labels: Labels = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    family.get_or_create(&labels).observe(seconds);
}

/// Adds one to the counter with these labels.
pub fn inc(family: &CounterFamily, labels: &[(&str, &str)]) {
    let labels: Labels = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    family.get_or_create(&labels).inc();
}

/// Every registered metric in Prometheus' text format.
pub fn render() -> String {
    let mut text = String::new();
    let registry = REGISTRY.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if encode(&mut text, &registry).is_err() {
        text.clear();
    }
    text
}
