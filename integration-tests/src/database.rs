//! A migrated Postgres (beside a nats-server) in a throwaway directory: the kit for testing a
//! handler on a real database, with what a test of a set-based batch needs.

use messaging_platform::bus::{Delivery, Outcome, TxHandler};
use messaging_proto::BusMessage;
use sqlx::PgPool;

use crate::{Infra, Scratch};

/// Everything stops and the directory goes when it is dropped (fields drop in this order).
pub struct Database {
    pub pool: PgPool,
    pub infra: Infra,
    _dir: Scratch,
}

impl Database {
    /// Postgres and nats-server in `msg-<name>-<pid>`, every migration applied.
    pub async fn start(name: &str) -> anyhow::Result<Self> {
        let dir = Scratch::new(name);
        let infra = Infra::start(&dir, 0, 0, false).await?;
        let pool = PgPool::connect(&infra.database_url()).await?;
        messaging_platform::db::migrator().run(&pool).await?;
        Ok(Self { pool, infra, _dir: dir })
    }
}

/// `message` as a consumer first receives it.
pub fn delivery<M: BusMessage>(message: &M) -> Delivery {
    Delivery {
        subject: message.subject(),
        payload: message.encode_to_vec().into(),
        headers: None,
        delivered: 1,
        stream_sequence: 0,
    }
}

/// The two sides a batch test compares: `batched` handled as one batch in one transaction (every
/// delivery must be acked) and `single` one by one, each in a transaction of its own.
pub async fn batch_and_one_by_one<H: TxHandler>(
    pool: &PgPool,
    handler: &H,
    service: &'static str,
    batched: &[Delivery],
    single: &[Delivery],
) {
    let mut tx = pool.begin().await.expect("begin");
    let outcomes = handler.handle_batch(&mut tx, batched, service).await;
    assert_eq!(outcomes, vec![Outcome::Ack; batched.len()], "the batch's outcomes");
    tx.commit().await.expect("commit");
    for delivery in single {
        let mut tx = pool.begin().await.expect("begin");
        assert_eq!(handler.handle(&mut tx, delivery).await, Outcome::Ack, "{}", delivery.subject);
        tx.commit().await.expect("commit");
    }
}

/// What `schema`'s outbox holds for `account` (a token of the subject), in publishing order:
/// subject, id and payload of each row.
pub async fn outbox_rows(pool: &PgPool, schema: &str, account: &str) -> Vec<(String, String, Vec<u8>)> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT subject, id, payload FROM {schema}.outbox WHERE subject || '.' LIKE '%.' || $1 || '.%' ORDER BY seq"
    )))
    .bind(account)
    .fetch_all(pool)
    .await
    .expect("outbox")
}
