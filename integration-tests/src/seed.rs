//! A synthetic Messages history written straight into the feed's tables, for the feed benchmark
//! and the query-plan tests: one large account and many small ones, customers with realistic
//! (partly accented) names and phone numbers, a year of messages in both directions on both
//! channels with every type and status. Deterministic: the same sizes give the same rows.

use std::time::Instant;

use sqlx::{Executor as _, PgPool};

/// How much to write.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Accounts, `acc_0000` (the largest) first.
    pub accounts: u32,
    pub largest_messages: u64,
    pub largest_customers: u64,
    /// Messages of all the other accounts together.
    pub other_messages: u64,
    /// Customers of each other account.
    pub customers_each: u64,
}

impl Sizes {
    pub fn messages(&self) -> u64 {
        self.largest_messages + self.other_messages
    }

    pub fn customers(&self) -> u64 {
        self.largest_customers + u64::from(self.accounts - 1) * self.customers_each
    }
}

pub const FIRST_NAMES: &[&str] = &[
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Carlos",
    "Karen",
    "José",
    "María",
    "Zoë",
    "Chloé",
    "Ana",
    "Luis",
    "Dana",
    "Wei",
    "Priya",
    "Omar",
    "Fatima",
    "Hiroshi",
    "Aisha",
    "Mateo",
    "Sofía",
    "Liam",
    "Noah",
    "Emma",
    "Olivia",
    "Ava",
];

pub const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Núñez",
    "Muñoz",
    "Brontë",
    "Søren",
    "Dvořák",
    "Öztürk",
    "Łukasz",
    "Ibáñez",
    "Peña",
    "Zúñiga",
];

fn array(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("'{}'", v.replace('\'', "''"))).collect();
    format!("ARRAY[{}]", quoted.join(","))
}

/// SQL helpers for one session: an account's sizes, a customer's name and phone.
fn functions(sizes: &Sizes) -> String {
    format!(
        "CREATE OR REPLACE FUNCTION pg_temp.customers_of(a bigint) RETURNS bigint LANGUAGE sql IMMUTABLE AS
             $$ SELECT CASE WHEN a = 0 THEN {largest_customers}::bigint ELSE {each}::bigint END $$;
         CREATE OR REPLACE FUNCTION pg_temp.name_of(a bigint, n bigint) RETURNS text LANGUAGE sql IMMUTABLE AS
             $$ SELECT ({first})[1 + ((n * 2654435761 + a * 40503) % 4294967296 % {first_len})] || ' ' || ({last})[1 + ((n * 2246822519 + a * 3266489917) % 4294967296 % {last_len})] $$;
         CREATE OR REPLACE FUNCTION pg_temp.phone_of(a bigint, n bigint) RETURNS text LANGUAGE sql IMMUTABLE AS
             $$ SELECT '+1' || (2012000000 + ((a::bigint * 1000003 + n * 7919) % 7987999999))::text $$;",
        largest_customers = sizes.largest_customers,
        each = sizes.customers_each,
        first = array(FIRST_NAMES),
        first_len = FIRST_NAMES.len(),
        last = array(LAST_NAMES),
        last_len = LAST_NAMES.len(),
    )
}

/// Folds a name as the feed does (lower case, no accents) for the names above.
const FOLD: &str = "lower(translate(name, 'éíóúñëöøřłçáÉÍÓÚÑËÖØŘŁÇÁ', 'eiounoeorlcaEIOUNEOORLCA'))";

const SECONDARY_INDEXES: &[(&str, &str)] = &[
    ("feed_messages_page", "feed.messages (account_id, created_at DESC, message_id DESC)"),
    ("feed_messages_thread", "feed.messages (account_id, customer_id, created_at DESC, message_id DESC)"),
    ("feed_messages_status", "feed.messages (account_id, status, created_at DESC, message_id DESC)"),
    ("feed_messages_type", "feed.messages (account_id, message_type, created_at DESC, message_id DESC)"),
    ("feed_messages_unread", "feed.messages (account_id, customer_id) WHERE unread"),
    ("feed_messages_strangers", "feed.messages (account_id, created_at DESC, message_id DESC) WHERE customer_id = ''"),
    ("feed_customers_name", "feed.customers USING gin (account_id, search_name gin_trgm_ops)"),
    ("feed_customers_phone", "feed.customers USING gin (account_id, phone_digits gin_trgm_ops)"),
];

/// Messages for rows `from..to` of the global sequence (account 0 takes the first
/// `largest_messages`, the rest round-robin over the other accounts).
fn messages_sql(sizes: &Sizes, from: u64, to: u64) -> String {
    let others = sizes.accounts - 1;
    format!(
        "INSERT INTO feed.messages (message_id, account_id, customer_id, customer_name, customer_phone, customer_email,
             direction, channel, message_type, status, status_rank, failure_reason, preview, subject, job_id, created_at,
             sent_at, updated_at, unread)
         SELECT 'msg_' || lpad(to_hex(g), 32, '0'), 'acc_' || lpad(a::text, 4, '0'), 'acc_' || lpad(a::text, 4, '0') || '_c' || c,
                pg_temp.name_of(a, c), pg_temp.phone_of(a, c), 'c' || c || '@example.com',
                CASE WHEN r < 10 THEN 'inbound' ELSE 'outbound' END,
                CASE WHEN r < 8 OR (r >= 10 AND r < 75) THEN 'sms' ELSE 'email' END,
                CASE WHEN r < 10 THEN 'reply' WHEN r % 50 = 11 THEN 'manual'
                     ELSE (ARRAY['appointment_confirmation','reminder','on_my_way','job_completed','payment_link','payment_receipt'])[1 + (g * 13) % 6] END,
                CASE WHEN r < 10 THEN 'received' WHEN s < 3 THEN 'failed' WHEN s < 8 THEN 'sent' WHEN s < 9 THEN 'queued'
                     WHEN r >= 75 AND s < 40 THEN 'opened' ELSE 'delivered' END,
                CASE WHEN r < 10 THEN 4 WHEN s < 3 THEN 2 WHEN s < 8 THEN 1 WHEN s < 9 THEN 0 WHEN r >= 75 AND s < 40 THEN 3 ELSE 2 END,
                CASE WHEN r >= 10 AND s < 3 THEN (ARRAY['invalid_number','carrier_violation','unreachable'])[1 + g % 3] ELSE '' END,
                'Ace Plumbing: Hi ' || split_part(pg_temp.name_of(a, c), ' ', 1) || ', your appointment is confirmed for Tue between 9:00 AM and 11:00 AM.',
                CASE WHEN r >= 75 THEN 'Your appointment is confirmed' ELSE '' END,
                'job_' || (g / 3), at, at + interval '1 second', at + interval '5 seconds', r < 10 AND s < 2
         FROM (
             SELECT g, a, k, n, 1 + ((g * 2654435761) % 4294967296 % pg_temp.customers_of(a)) AS c, (g * 7) % 100 AS r, (g * 31 + 17) % 100 AS s,
                    now() - ((n - k)::double precision / n * interval '365 days') - (a * interval '1 millisecond') AS at
             FROM (
                 SELECT g,
                        CASE WHEN g <= {largest} THEN 0 ELSE 1 + ((g - {largest} - 1) % {others}) END AS a,
                        CASE WHEN g <= {largest} THEN g ELSE (g - {largest} - 1) / {others} END AS k,
                        CASE WHEN g <= {largest} THEN {largest} ELSE {per_other} END AS n
                 FROM generate_series({from}::bigint, {to}::bigint) AS g
             ) placed
         ) rows",
        largest = sizes.largest_messages,
        per_other = sizes.other_messages / u64::from(others.max(1)) + 1,
        from = from + 1,
        to = to,
    )
}

/// Writes the history into an empty feed (migrated, no messages), then rebuilds its indexes and
/// statistics. Prints progress.
pub async fn seed(pool: &PgPool, sizes: Sizes) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut conn = pool.acquire().await?;
    conn.execute("SET maintenance_work_mem = '1GB'").await?;
    for (name, _) in SECONDARY_INDEXES {
        conn.execute(sqlx::AssertSqlSafe(format!("DROP INDEX IF EXISTS feed.{name}"))).await?;
    }
    conn.execute(sqlx::AssertSqlSafe(functions(&sizes))).await?;
    conn.execute(sqlx::AssertSqlSafe(format!(
        "INSERT INTO feed.customers (account_id, customer_id, name, phone, email, search_name, phone_digits, as_of)
         SELECT account_id, customer_id, name, phone, email, {FOLD}, substr(phone, 2), now()
         FROM (SELECT 'acc_' || lpad(a::text, 4, '0') AS account_id, 'acc_' || lpad(a::text, 4, '0') || '_c' || n AS customer_id,
                      pg_temp.name_of(a, n) AS name, pg_temp.phone_of(a, n) AS phone, 'c' || n || '@example.com' AS email
               FROM generate_series(0, {last}) AS a, LATERAL generate_series(1, pg_temp.customers_of(a)) AS n) c",
        last = sizes.accounts - 1
    )))
    .await?;
    println!("  {} customers written ({:.0} s)", sizes.customers(), started.elapsed().as_secs_f64());
    drop(conn);

    // Two sessions write alternate chunks, one per core.
    let total = sizes.messages();
    let chunk = 500_000u64.min(total.div_ceil(2).max(1));
    let chunks: Vec<(u64, u64)> =
        (0..total).step_by(chunk as usize).map(|from| (from, (from + chunk).min(total))).collect();
    let mut writers = Vec::new();
    for lane in 0..2usize {
        let pool = pool.clone();
        let mine: Vec<(u64, u64)> = chunks.iter().copied().skip(lane).step_by(2).collect();
        writers.push(tokio::spawn(async move {
            let mut conn = pool.acquire().await?;
            conn.execute("SET synchronous_commit = off").await?;
            conn.execute(sqlx::AssertSqlSafe(functions(&sizes))).await?;
            for (from, to) in mine {
                conn.execute(sqlx::AssertSqlSafe(messages_sql(&sizes, from, to))).await?;
            }
            anyhow::Ok(())
        }));
    }
    for writer in writers {
        writer.await??;
    }
    println!("  {total} messages written ({:.0} s)", started.elapsed().as_secs_f64());

    let mut builders = Vec::new();
    for lane in 0..2usize {
        let pool = pool.clone();
        builders.push(tokio::spawn(async move {
            let mut conn = pool.acquire().await?;
            conn.execute("SET maintenance_work_mem = '1GB'").await?;
            conn.execute("SET max_parallel_maintenance_workers = 0").await?;
            for (name, definition) in SECONDARY_INDEXES.iter().skip(lane).step_by(2) {
                conn.execute(sqlx::AssertSqlSafe(format!("CREATE INDEX {name} ON {definition}"))).await?;
            }
            anyhow::Ok(())
        }));
    }
    for builder in builders {
        builder.await??;
    }
    println!("  indexes built ({:.0} s)", started.elapsed().as_secs_f64());
    sqlx::query("VACUUM (ANALYZE) feed.messages").execute(pool).await?;
    sqlx::query("VACUUM (ANALYZE) feed.customers").execute(pool).await?;
    println!("  vacuumed and analysed ({:.0} s)", started.elapsed().as_secs_f64());
    Ok(())
}
