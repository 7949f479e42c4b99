//! Durable pull consumers kept as their spec says: created when missing, and updated when a
//! setting the service derives from its configuration (ack wait, delivery limit, how many
//! messages may be unacknowledged, the filter) differs from the one the server holds, so a
//! changed `concurrency` or `batch` takes effect on the next start instead of never.

use async_nats::jetstream::{self, consumer};

use super::ConsumerSpec;

/// The consumer `spec` names, with its settings.
pub async fn ensure(
    context: &jetstream::Context,
    spec: &ConsumerSpec,
) -> anyhow::Result<consumer::Consumer<consumer::pull::Config>> {
    let stream = context.get_stream(spec.stream).await.map_err(|e| anyhow::anyhow!("stream {}: {e}", spec.stream))?;
    let wanted = spec.config();
    let existing = stream
        .get_or_create_consumer(&spec.durable, wanted.clone())
        .await
        .map_err(|e| anyhow::anyhow!("consumer {}: {e}", spec.durable))?;
    let current = &existing.cached_info().config;
    if same_settings(current, &wanted) {
        return Ok(existing);
    }
    // A setting the server cannot change in place (some filter changes, on older servers) is
    // refused; the consumer then keeps running as it was.
    match stream.create_consumer(wanted.clone()).await {
        Ok(updated) => {
            tracing::info!(
                consumer = %spec.durable,
                max_ack_pending = wanted.max_ack_pending,
                ack_wait_ms = wanted.ack_wait.as_millis(),
                max_deliver = wanted.max_deliver,
                "consumer settings updated"
            );
            Ok(updated)
        }
        Err(error) => {
            tracing::warn!(consumer = %spec.durable, %error, "consumer settings not updated; keeping the server's");
            Ok(existing)
        }
    }
}

fn same_settings(current: &consumer::Config, wanted: &consumer::pull::Config) -> bool {
    current.ack_wait == wanted.ack_wait
        && current.max_deliver == wanted.max_deliver
        && current.max_ack_pending == wanted.max_ack_pending
        && current.filter_subject == wanted.filter_subject
        && current.filter_subjects == wanted.filter_subjects
}
