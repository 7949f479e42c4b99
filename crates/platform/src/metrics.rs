//! Prometheus metrics: one process-wide registry, counters registered where they are counted,
//! rendered in the text exposition format on the health server's `/metrics`.

use std::sync::{LazyLock, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label pairs; keep their values low-cardinality (types, channels, outcomes; never ids).
pub type Labels = Vec<(String, String)>;

/// A family of counters by label set.
pub type CounterFamily = Family<Labels, Counter>;

/// A family of gauges by label set.
pub type GaugeFamily = Family<Labels, Gauge>;

/// A family of histograms (latencies in seconds, or sizes) by label set.
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

/// Registers a gauge family.
pub fn gauge(name: &str, help: &str) -> GaugeFamily {
    let family = GaugeFamily::default();
    REGISTRY.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).register(name, help, family.clone());
    family
}

/// Sets the gauge with these labels.
pub fn set(family: &GaugeFamily, labels: &[(&str, &str)], value: i64) {
    let labels: Labels = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    family.get_or_create(&labels).set(value);
}

/// Registers a latency histogram family; exposed as `<name>_bucket`, `_sum` and `_count`.
pub fn latency(name: &str, help: &str) -> HistogramFamily {
    histograms(name, help, latency_histogram)
}

fn size_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 9))
}

/// Registers a histogram family of counts (1 to 256, doubling).
pub fn sizes(name: &str, help: &str) -> HistogramFamily {
    histograms(name, help, size_histogram)
}

fn histograms(name: &str, help: &str, buckets: fn() -> Histogram) -> HistogramFamily {
    let family = HistogramFamily::new_with_constructor(buckets);
    REGISTRY.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).register(name, help, family.clone());
    family
}

/// Records one observation (seconds for a latency histogram).
pub fn observe(family: &HistogramFamily, labels: &[(&str, &str)], value: f64) {
    let labels: Labels = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    family.get_or_create(&labels).observe(value);
}

/// Adds one to the counter with these labels.
pub fn inc(family: &CounterFamily, labels: &[(&str, &str)]) {
    add(family, labels, 1);
}

/// Adds `count` to the counter with these labels.
pub fn add(family: &CounterFamily, labels: &[(&str, &str)], count: u64) {
    let labels: Labels = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    family.get_or_create(&labels).inc_by(count);
}

/// Every registered metric in Prometheus' classic text format (version 0.0.4), which every
/// scraper and `promtool check metrics` read.
pub fn render() -> String {
    let mut text = String::new();
    let registry = REGISTRY.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if encode(&mut text, &registry).is_err() {
        text.clear();
    }
    classic(&text)
}

/// OpenMetrics text as the classic format: a counter's HELP and TYPE name its `_total` samples,
/// and there is no `# EOF`.
fn classic(open_metrics: &str) -> String {
    let counters: Vec<&str> =
        open_metrics.lines().filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(&name).then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::classic;

    #[test]
    fn counters_are_named_by_their_samples_and_eof_goes() {
        let open = "# HELP sent Messages sent.\n# TYPE sent counter\nsent_total{channel=\"sms\"} 3\n\
                    # HELP took Seconds.\n# TYPE took histogram\ntook_sum 1.0\n# EOF\n";
        let expected = "# HELP sent_total Messages sent.\n# TYPE sent_total counter\nsent_total{channel=\"sms\"} 3\n\
                        # HELP took Seconds.\n# TYPE took histogram\ntook_sum 1.0\n";
        assert_eq!(classic(open), expected);
    }
}
