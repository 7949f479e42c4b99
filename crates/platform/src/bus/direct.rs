//! Publishing after commit: a consumer whose events follow from the message it consumed commits
//! its state, publishes the events itself under their dedupe ids, and only then acks the input,
//! so no outbox row is written or deleted for them. A crash before the ack leaves the input
//! unacked; its redelivery finds the state written and must publish the same events again from
//! it (the handler's duty), which JetStream's duplicate window and idempotent consumers absorb.
//! A row the broker could never take, and a publish that fails, go to the outbox instead, so a
//! broker outage costs no redelivery and nothing committed waits on one.

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use sqlx::PgConnection;

use crate::bus::outbox::{self, Collected, HEADER_ROOM, Relay, nats_headers};
use crate::metrics::{self, CounterFamily};

/// How long a publish's ack is awaited before its row falls back to the outbox.
const ACK_WAIT: Duration = Duration::from_secs(10);

static FALLBACKS: LazyLock<CounterFamily> = LazyLock::new(|| {
    metrics::counter(
        "bus_direct_fallbacks",
        "Events published after commit that the broker did not ack, written to the outbox instead, by schema",
    )
});

impl Relay {
    /// Writes to the outbox in `tx` the rows too large for the broker (the relay moves them aside
    /// with their reason, as it does any such row); returns the others, to publish once `tx`
    /// commits, and whether it wrote any (the relay is then to be woken after the commit).
    pub async fn keep_publishable(
        &self,
        tx: &mut PgConnection,
        rows: Vec<Collected>,
    ) -> sqlx::Result<(Vec<Collected>, bool)> {
        let (fit, too_large): (Vec<Collected>, Vec<Collected>) =
            rows.into_iter().partition(|row| row.message.payload.len() + HEADER_ROOM <= self.max_payload);
        let wrote = !too_large.is_empty();
        if wrote {
            outbox::write(tx, too_large).await?;
        }
        Ok((fit, wrote))
    }

    /// Publishes rows whose transaction committed: every publish is sent before any ack is
    /// awaited, in the order given. Rows the broker did not ack are written to the outbox for the
    /// relay; an error only when that write failed too (the input must then be redelivered).
    pub async fn publish_committed(&self, rows: Vec<Collected>) -> sqlx::Result<()> {
        let mut pending = Vec::with_capacity(rows.len());
        let mut failed = Vec::new();
        let mut rows = rows.into_iter();
        for mut row in rows.by_ref() {
            let headers = nats_headers(&row.message.id, row.headers.clone());
            let payload = Bytes::from(std::mem::take(&mut row.message.payload));
            let subject = row.message.subject.clone();
            match self.jetstream.publish_with_headers(subject, headers, payload.clone()).await {
                Ok(ack) => pending.push((row, payload, ack)),
                Err(error) => {
                    tracing::warn!(schema = self.schema, %error, "publish after commit failed; to the outbox");
                    row.message.payload = payload.to_vec();
                    failed.push(row);
                    break;
                }
            }
        }
        failed.extend(rows);
        for (mut row, payload, ack) in pending {
            if let Ok(Ok(_)) = tokio::time::timeout(ACK_WAIT, ack).await {
                continue;
            }
            row.message.payload = payload.to_vec();
            failed.push(row);
        }
        if failed.is_empty() {
            return Ok(());
        }
        metrics::add(&FALLBACKS, &[("schema", self.schema)], failed.len() as u64);
        tracing::warn!(
            schema = self.schema,
            rows = failed.len(),
            "the broker did not ack events published after commit; relaying them from the outbox"
        );
        let mut connection = self.pool.acquire().await?;
        outbox::write(&mut connection, failed).await?;
        self.wake();
        Ok(())
    }
}
