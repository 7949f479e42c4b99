//! Fair shares of the feed's capacity. WatchFeed streams are capped per account and per client
//! connection (RESOURCE_EXHAUSTED past either, with the cap named), and each account may use only
//! its share of the read connections, so one account's slow searches queue behind each other and
//! never in front of every other account's page.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

/// The feed's per-account and per-connection limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct FeedLimits {
    /// Open WatchFeed streams one account may hold (every replica counts its own).
    pub streams_per_account: usize,
    /// Open WatchFeed streams one client connection may hold.
    pub streams_per_connection: usize,
    /// Read connections one account may use at once; 0 means half of `database.max_connections`.
    pub readers_per_account: usize,
}

impl Default for FeedLimits {
    fn default() -> Self {
        Self { streams_per_account: 32, streams_per_connection: 16, readers_per_account: 0 }
    }
}

/// Open WatchFeed streams, counted by account and by connection.
pub struct Streams {
    per_account: usize,
    per_connection: usize,
    open: Mutex<HashMap<String, usize>>,
}

/// One open stream's place; dropping it (the stream ended) frees the place.
pub struct StreamSlot {
    streams: Arc<Streams>,
    keys: Vec<String>,
}

impl Streams {
    pub fn new(limits: &FeedLimits) -> Arc<Self> {
        Arc::new(Self {
            per_account: limits.streams_per_account.max(1),
            per_connection: limits.streams_per_connection.max(1),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A place for one more stream of `account` on `connection`, or RESOURCE_EXHAUSTED.
    pub fn open(self: &Arc<Self>, account: &str, connection: Option<SocketAddr>) -> Result<StreamSlot, Status> {
        let mut keys = vec![format!("account:{account}")];
        keys.extend(connection.map(|peer| format!("connection:{peer}")));
        let mut open = self.open.lock().map_err(|_| Status::internal("stream counts unavailable"))?;
        for key in &keys {
            let (cap, whose) = if key.starts_with("account:") {
                (self.per_account, "this account")
            } else {
                (self.per_connection, "this connection")
            };
            if open.get(key).copied().unwrap_or(0) >= cap {
                return Err(Status::resource_exhausted(format!(
                    "{whose} already has {cap} WatchFeed streams open; close one first"
                )));
            }
        }
        for key in &keys {
            *open.entry(key.clone()).or_default() += 1;
        }
        Ok(StreamSlot { streams: self.clone(), keys })
    }

    #[cfg(test)]
    fn count(&self, key: &str) -> usize {
        self.open.lock().map(|open| open.get(key).copied().unwrap_or(0)).unwrap_or(0)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.streams.open.lock() {
            for key in &self.keys {
                if let Some(count) = open.get_mut(key) {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        open.remove(key);
                    }
                }
            }
        }
    }
}

/// Each account's share of the read connections.
pub struct Shares {
    per_account: usize,
    accounts: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Shares {
    pub fn new(per_account: usize) -> Self {
        Self { per_account: per_account.max(1), accounts: Mutex::new(HashMap::new()) }
    }

    /// A place in `account`'s share; waits only while that account uses all of it.
    pub async fn acquire(&self, account: &str) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            let mut accounts = self.accounts.lock().ok()?;
            if accounts.len() > 10_000 {
                // Forget accounts nobody is reading for right now.
                accounts.retain(|_, semaphore| Arc::strong_count(semaphore) > 1);
            }
            accounts.entry(account.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(self.per_account))).clone()
        };
        semaphore.acquire_owned().await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn streams_are_capped_per_account_and_per_connection_and_freed_when_they_end() {
        let streams =
            Streams::new(&FeedLimits { streams_per_account: 2, streams_per_connection: 3, readers_per_account: 0 });
        let (one, two): (SocketAddr, SocketAddr) =
            ("10.0.0.1:5000".parse().expect("address"), "10.0.0.1:5001".parse().expect("address"));
        let a1 = streams.open("acc_a", Some(one)).expect("first");
        let _a2 = streams.open("acc_a", Some(two)).expect("second");
        let refused = streams.open("acc_a", Some(two)).err().expect("a third for the account");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("this account already has 2"), "{}", refused.message());
        let _b1 = streams.open("acc_b", Some(one)).expect("another account");
        let _c1 = streams.open("acc_c", Some(one)).expect("a third on the connection");
        let refused = streams.open("acc_d", Some(one)).err().expect("a fourth on the connection");
        assert!(refused.message().contains("this connection already has 3"), "{}", refused.message());
        assert_eq!(streams.count("account:acc_d"), 0, "a refused stream holds nothing");
        drop(a1);
        assert_eq!(streams.count("connection:10.0.0.1:5000"), 2);
        streams.open("acc_a", Some(two)).expect("a place freed");
    }

    #[tokio::test]
    async fn one_account_using_its_share_does_not_hold_up_another() {
        let shares = Shares::new(2);
        let _a1 = shares.acquire("acc_a").await.expect("permit");
        let _a2 = shares.acquire("acc_a").await.expect("permit");
        let waiting = tokio::time::timeout(Duration::from_millis(100), shares.acquire("acc_a")).await;
        assert!(waiting.is_err(), "a third read of acc_a waits for its own share");
        let other = tokio::time::timeout(Duration::from_millis(100), shares.acquire("acc_b")).await;
        assert!(other.is_ok_and(|permit| permit.is_some()), "acc_b reads at once");
    }
}
