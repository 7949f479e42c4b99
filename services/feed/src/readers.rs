//! Connections for the dashboard's reads, kept between calls. sqlx's pool pings every connection
//! it takes back (a second Postgres round trip for each call, on the same two cores); these are
//! returned as they are, but only after a call finished cleanly: a connection whose call failed or
//! was cancelled midway is closed, and the next call opens a fresh one.

use std::sync::Mutex;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, PgConnection};
use tokio::sync::{Semaphore, SemaphorePermit};

/// At most `size` connections, opened on demand.
pub struct Readers {
    options: PgConnectOptions,
    idle: Mutex<Vec<PgConnection>>,
    permits: Semaphore,
}

/// One connection in use; [`Reader::done`] gives it back.
pub struct Reader<'a> {
    conn: Option<PgConnection>,
    readers: &'a Readers,
    _permit: SemaphorePermit<'a>,
}

impl Readers {
    pub fn new(options: PgConnectOptions, size: usize) -> Self {
        Self { options, idle: Mutex::new(Vec::new()), permits: Semaphore::new(size.max(1)) }
    }

    /// An idle connection, or a new one; waits while all are in use.
    pub async fn get(&self) -> sqlx::Result<Reader<'_>> {
        let permit = self.permits.acquire().await.map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => PgConnection::connect_with(&self.options).await?,
        };
        Ok(Reader { conn: Some(conn), readers: self, _permit: permit })
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
