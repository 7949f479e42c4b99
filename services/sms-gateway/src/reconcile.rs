//! Settles `unknown` attempts (a 5xx or a timeout from the provider) by asking the provider's list
//! API: found means sent; still absent after the deadline means failed with `send_unknown`.
//! Never a blind resend (guarantee 3). [`lookup`] is also how an orphaned claim learns whether its
//! message reached the provider.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use messaging_domain::{AccountId, MessageId};
use messaging_gateway::claims::body_digest;
use messaging_gateway::{OpenAttempt, Settlement};
use messaging_platform::Shutdown;

use crate::handler::SmsSender;
use crate::twilio::{SendError, SmsProvider};

/// What the provider knows of one claimed message.
#[derive(Debug)]
pub enum Found {
    /// It has the message, under this id.
    Sent(String),
    /// It has no such message.
    Absent,
    /// It could not be asked.
    Unavailable(SendError),
}

/// The claimed message the provider has, if any: one with the claim's body, created after the
/// claim, that no other message's attempt holds; the earliest such. (Another message with the same
/// body to the same customer, an on-my-way sent twice, must not pass for this one.)
pub async fn lookup<P: SmsProvider>(sender: &SmsSender<P>, attempt: &OpenAttempt) -> sqlx::Result<Found> {
    let found = match sender.provider.list(&attempt.recipient, &attempt.sender, attempt.claimed_at).await {
        Ok(found) => found,
        Err(error) => return Ok(Found::Unavailable(error)),
    };
    let mut candidates: Vec<(DateTime<Utc>, String)> = found
        .into_iter()
        .filter(|m| m.body.as_deref().map(body_digest).as_deref() == Some(attempt.body_digest.as_str()))
        .filter_map(|m| Some((m.created()?, m.sid)))
        .collect();
    if candidates.is_empty() {
        return Ok(Found::Absent);
    }
    let sids: Vec<String> = candidates.iter().map(|(_, sid)| sid.clone()).collect();
    let held = sender.claims.held_elsewhere(&sids, &attempt.message_id).await?;
    candidates.retain(|(_, sid)| !held.contains(sid));
    candidates.sort();
    Ok(candidates.into_iter().next().map_or(Found::Absent, |(_, sid)| Found::Sent(sid)))
}

/// When to ask and when to give up.
#[derive(Debug, Clone, Copy)]
pub struct ReconcileTiming {
    pub interval: Duration,
    /// How long an attempt stays `unknown` before the provider is asked.
    pub grace: Duration,
    /// After this long with no trace at the provider, the attempt is failed.
    pub deadline: Duration,
}

/// Runs until shutdown.
pub async fn run<P: SmsProvider>(sender: Arc<SmsSender<P>>, timing: ReconcileTiming, shutdown: Shutdown) {
    loop {
        if let Err(error) = reconcile_once(&sender, timing).await {
            tracing::warn!(%error, "reconciliation pass failed");
        }
        if let Err(error) = sender.pace.forget_stale().await {
            tracing::warn!(%error, "could not forget old rate-limit slots");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(timing.interval) => {}
        }
    }
}

/// One pass over the unknown attempts; returns how many were settled.
pub async fn reconcile_once<P: SmsProvider>(sender: &SmsSender<P>, timing: ReconcileTiming) -> sqlx::Result<usize> {
    let mut settled = 0;
    for attempt in sender.claims.open_attempts(timing.grace, 100).await? {
        let Some(settlement) = decide(sender, &attempt, timing).await else { continue };
        let (Ok(message), Ok(account)) = (MessageId::parse(&attempt.message_id), AccountId::parse(&attempt.account_id))
        else {
            continue;
        };
        tracing::info!(message_id = %message, ?settlement, "reconciled an unknown send");
        sender.claims.settle_relayed(message.as_str(), account.as_str(), &attempt.recipient, &settlement).await?;
        settled += 1;
    }
    Ok(settled)
}

async fn decide<P: SmsProvider>(
    sender: &SmsSender<P>,
    attempt: &OpenAttempt,
    timing: ReconcileTiming,
) -> Option<Settlement> {
    match lookup(sender, attempt).await {
        Ok(Found::Sent(provider_id)) => Some(Settlement::Sent { provider_id }),
        Ok(Found::Absent) => {
            let age = (Utc::now() - attempt.claimed_at).to_std().unwrap_or_default();
            (age >= timing.deadline).then(|| Settlement::Failed {
                reason: "send_unknown".into(),
                code: String::new(),
                text: "the provider did not confirm the message".into(),
            })
        }
        Ok(Found::Unavailable(error)) => {
            tracing::warn!(message_id = %attempt.message_id, %error, "provider list unavailable; will ask again");
            None
        }
        Err(error) => {
            tracing::warn!(message_id = %attempt.message_id, %error, "could not read the attempts; will ask again");
            None
        }
    }
}
