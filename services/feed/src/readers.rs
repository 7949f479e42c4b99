//! Connections for the dashboard's reads, kept between calls. sqlx's pool pings every connection
//! it takes back (a second Postgres round trip for each call, on the same two cores); these are
//! returned as they are, but only after a call finished cleanly: a connection whose call failed or
//! was cancelled midway is closed, and the next call opens a fresh one. Each account may hold only
//! its share of them (`limits::Shares`).

use std::sync::Mutex;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, PgConnection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};

use crate::limits::Shares;

/// At most `size` connections, opened on demand.
pub struct Readers {
    options: PgConnectOptions,
    idle: Mutex<Vec<PgConnection>>,
    permits: Semaphore,
    shares: Shares,
}

/// One connection in use; [`Reader::done`] gives it back.
pub struct Reader<'a> {
    conn: Option<PgConnection>,
    readers: &'a Readers,
    _permit: SemaphorePermit<'a>,
    _share: OwnedSemaphorePermit,
}

impl Readers {
    /// `size` connections, at most `per_account` of them for one account at a time.
    pub fn new(options: PgConnectOptions, size: usize, per_account: usize) -> Self {
        let shares = Shares::new(per_account.min(size).max(1));
        Self { options, idle: Mutex::new(Vec::new()), permits: Semaphore::new(size.max(1)), shares }
    }

    /// An idle connection, or a new one, for `account`; waits while the account uses its whole
    /// share, then while every connection is in use.
    pub async fn get(&self, account: &str) -> sqlx::Result<Reader<'_>> {
        let share = self.shares.acquire(account).await.ok_or(sqlx::Error::PoolClosed)?;
        let permit = self.permits.acquire().await.map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => PgConnection::connect_with(&self.options).await?,
        };
        Ok(Reader { conn: Some(conn), readers: self, _permit: permit, _share: share })
    }
}

impl Reader<'_> {
    pub fn conn(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("a reader holds its connection until done or dropped")
    }

    /// The call finished cleanly: the connection is reusable.
    pub fn done(mut self) {
        if let (Some(conn), Ok(mut idle)) = (self.conn.take(), self.readers.idle.lock()) {
            idle.push(conn);
        }
    }
}
