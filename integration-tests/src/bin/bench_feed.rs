//! `make bench-feed`: FeedService latency on a large history. Seeds 10 million messages across
//! 1,000 accounts (the largest with 1 million) and 1 million customers, then times the Messages
//! page's calls over gRPC — first and deep pages, each filter alone, filters combined, name and
//! phone search, threads — on the largest account and on random others. In the same run it
//! runs the feed's very same queries through one Postgres connection, the baseline, and prints p50 / p99
//! for both and their ratio. A technician's page (their jobs' customers only, resolved on every
//! call) is timed beside the office's. `BENCH_FEED_MESSAGES` and `BENCH_REQUESTS` scale it down.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use messaging_domain::search;
use messaging_domain::{AccountId, Channel, Direction, MessageType, Status};
use messaging_feed::matches::AccountSizes;
use messaging_feed::scope;
use messaging_feed::store::{self, Cursor, Filter, Order, ThreadOf};
use messaging_feed::threads;
use messaging_integration_tests::client::{technician_token, token, with_bearer};
use messaging_integration_tests::measure::percentile;
use messaging_integration_tests::seed::{self, FIRST_NAMES, LAST_NAMES, Sizes};
use messaging_integration_tests::{Stack, setting};
use messaging_proto::time::timestamp;
use messaging_proto::v1::feed_service_client::FeedServiceClient;
use messaging_proto::v1::{GetMessageRequest, GetThreadRequest, ListMessagesRequest};
use rand::seq::IndexedRandom as _;
use rand::{Rng as _, SeedableRng as _};
use sqlx::{Connection as _, PgConnection};

const LARGEST: &str = "acc_0000";
/// The technician whose page is timed: lead on 40 current jobs in every account.
const TECHNICIAN: &str = "tech_bench";
/// How long a finished job keeps its customer in a technician's scope (the feed's default).
const RECENT: Duration = Duration::from_secs(14 * 86_400);
/// Rows per page (`BENCH_PAGE`, default 50: the dashboard's page).
fn page() -> i64 {
    static PAGE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| setting("BENCH_PAGE", 50))
}

/// One call of the page, as the dashboard makes it and as SQL runs it.
#[derive(Clone)]
struct Call {
    account: String,
    directions: Vec<Direction>,
    channels: Vec<Channel>,
    types: Vec<MessageType>,
    statuses: Vec<Status>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    query: String,
    after: Option<Cursor>,
    thread: Option<String>,
    message: Option<String>,
    /// Made with [`TECHNICIAN`]'s token: their scope only.
    technician: bool,
}

impl Call {
    fn on(account: &str) -> Self {
        Self {
            account: account.to_owned(),
            directions: vec![],
            channels: vec![],
            types: vec![],
            statuses: vec![],
            since: None,
            until: None,
            query: String::new(),
            after: None,
            thread: None,
            message: None,
            technician: false,
        }
    }

    fn filter(&self) -> Filter {
        let names = |values: Vec<&'static str>| values.into_iter().map(str::to_owned).collect::<Vec<_>>();
        let mut statuses = names(self.statuses.iter().map(|s| s.as_str()).collect());
        statuses.sort();
        Filter {
            directions: names(self.directions.iter().map(|d| d.as_str()).collect()),
            channels: names(self.channels.iter().map(|c| c.as_str()).collect()),
            types: names(self.types.iter().map(|t| t.as_str()).collect()),
            statuses,
            since: self.since,
            until: self.until,
            search: search::parse(&self.query).ok().flatten(),
            thread: self.thread.as_deref().map(ThreadOf::parse),
            scope: None,
        }
    }

    fn list_request(&self) -> ListMessagesRequest {
        ListMessagesRequest {
            page_size: page() as i32,
            page_token: self.after.as_ref().map(Cursor::encode).unwrap_or_default(),
            directions: self.directions.iter().map(|d| d.to_proto()).collect(),
            channels: self.channels.iter().map(|c| c.to_proto()).collect(),
            types: self.types.iter().map(|t| t.to_proto()).collect(),
            statuses: self.statuses.iter().map(|s| s.to_proto()).collect(),
            since: self.since.map(timestamp),
            until: self.until.map(timestamp),
            query: self.query.clone(),
        }
    }
}

/// The baseline: the feed's own queries for the call, through one connection.
async fn sql(conn: &mut PgConnection, sizes: &AccountSizes, call: &Call) -> anyhow::Result<usize> {
    let account = AccountId::parse(call.account.as_str())?;
    if let Some(id) = &call.message {
        let found = store::get(&mut *conn, &account, id).await?;
        anyhow::ensure!(found.is_some(), "no message {id}");
        return Ok(store::timeline(&mut *conn, &account, id).await?.len() + 1);
    }
    let mut filter = call.filter();
    if call.technician {
        let technician = messaging_domain::TechnicianId::parse(TECHNICIAN)?;
        filter.scope = scope::resolve(&mut *conn, &account, Some(&technician), RECENT).await?.customers();
    }
    if let Some(customer) = &call.thread {
        let found = threads::customer(&mut *conn, &account, customer).await?;
        anyhow::ensure!(found.is_some(), "no customer {customer}");
    }
    let (rows, _) =
        store::list(conn, sizes, &account, &filter, call.after.as_ref(), page(), Order::NewestFirst).await?;
    Ok(rows.len())
}

async fn grpc(
    client: &mut FeedServiceClient<tonic::transport::Channel>,
    tokens: &mut HashMap<String, String>,
    call: &Call,
) -> anyhow::Result<usize> {
    let key = format!("{}/{}", call.account, call.technician);
    let token = tokens
        .entry(key)
        .or_insert_with(|| {
            if call.technician { technician_token(&call.account, TECHNICIAN) } else { token(&call.account) }
        })
        .clone();
    if let Some(id) = &call.message {
        let request = GetMessageRequest { message_id: id.clone() };
        return Ok(client.get_message(with_bearer(request, &token)).await?.into_inner().timeline.len() + 1);
    }
    Ok(match &call.thread {
        Some(customer) => {
            let request =
                GetThreadRequest { customer_id: customer.clone(), page_size: page() as i32, ..Default::default() };
            client.get_thread(with_bearer(request, &token)).await?.into_inner().messages.len()
        }
        None => client.list_messages(with_bearer(call.list_request(), &token)).await?.into_inner().messages.len(),
    })
}

struct Scenario {
    name: &'static str,
    target_ms: f64,
    largest: Vec<Call>,
    others: Vec<Call>,
}

/// Rows sampled from the seeded tables: cursors deep in the feeds, and customers.
struct Samples {
    largest_rows: Vec<(String, Cursor)>,
    other_rows: Vec<(String, Cursor)>,
    largest_customers: Vec<(String, String, String)>,
    other_customers: Vec<(String, String, String)>,
}

async fn samples(conn: &mut PgConnection, n: usize) -> anyhow::Result<Samples> {
    let rows = |account_filter: &str| {
        format!(
            "SELECT account_id, created_at, message_id FROM feed.messages TABLESAMPLE SYSTEM (1) REPEATABLE (7)
             WHERE {account_filter} LIMIT {n}"
        )
    };
    let customers = |account_filter: &str| {
        format!(
            "SELECT account_id, customer_id, phone FROM feed.customers TABLESAMPLE SYSTEM (5) REPEATABLE (7)
             WHERE {account_filter} LIMIT {n}"
        )
    };
    let mut read_rows = async |sql: String| -> anyhow::Result<Vec<(String, Cursor)>> {
        let rows: Vec<(String, DateTime<Utc>, String)> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(&mut *conn).await?;
        Ok(rows.into_iter().map(|(a, created_at, message_id)| (a, Cursor { created_at, message_id })).collect())
    };
    let largest_rows = read_rows(rows(&format!("account_id = '{LARGEST}'"))).await?;
    let other_rows = read_rows(rows(&format!("account_id <> '{LARGEST}'"))).await?;
    let largest_customers = sqlx::query_as(sqlx::AssertSqlSafe(customers(&format!("account_id = '{LARGEST}'"))))
        .fetch_all(&mut *conn)
        .await?;
    let other_customers = sqlx::query_as(sqlx::AssertSqlSafe(customers(&format!("account_id <> '{LARGEST}'"))))
        .fetch_all(&mut *conn)
        .await?;
    Ok(Samples { largest_rows, other_rows, largest_customers, other_customers })
}

fn name_term(rng: &mut rand::rngs::StdRng) -> String {
    let name = if rng.random_bool(0.7) { LAST_NAMES.choose(rng) } else { FIRST_NAMES.choose(rng) };
    let name: Vec<char> = name.copied().unwrap_or("Smith").chars().collect();
    let len = rng.random_range(4..=name.len().max(4)).min(name.len());
    let term: String = name[..len].iter().collect();
    if rng.random_bool(0.3) { term.to_uppercase() } else { term }
}

fn phone_term(rng: &mut rand::rngs::StdRng, phone: &str) -> String {
    let digits = search::digits(phone);
    match rng.random_range(0..3) {
        0 => digits[digits.len() - 4..].to_owned(),
        1 => format!("({}) {}-{}", &digits[1..4], &digits[4..7], &digits[7..]),
        _ => format!("{}.{}", &digits[digits.len() - 7..digits.len() - 4], &digits[digits.len() - 4..]),
    }
}

fn scenarios(s: &Samples, requests: usize, accounts: u32) -> Vec<Scenario> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let now = Utc::now();
    let mut random_accounts =
        |n: usize| -> Vec<String> { (0..n).map(|_| format!("acc_{:04}", rng.random_range(1..accounts))).collect() };
    let others = random_accounts(requests);
    let each = |f: &dyn Fn(Call) -> Call| -> (Vec<Call>, Vec<Call>) {
        ((0..requests).map(|_| f(Call::on(LARGEST))).collect(), others.iter().map(|a| f(Call::on(a))).collect())
    };
    let mut list = Vec::new();
    let mut add = |name, target_ms, (largest, others): (Vec<Call>, Vec<Call>)| {
        list.push(Scenario { name, target_ms, largest, others });
    };
    add("first page", 10.0, each(&|c| c));
    let deep = |rows: &[(String, Cursor)]| -> Vec<Call> {
        rows.iter()
            .cycle()
            .take(requests)
            .map(|(account, cursor)| Call { after: Some(cursor.clone()), ..Call::on(account) })
            .collect()
    };
    add("deep page", 10.0, (deep(&s.largest_rows), deep(&s.other_rows)));
    add("direction: inbound", 10.0, each(&|c| Call { directions: vec![Direction::Inbound], ..c }));
    add("channel: email", 10.0, each(&|c| Call { channels: vec![Channel::Email], ..c }));
    add("type: payment link", 10.0, each(&|c| Call { types: vec![MessageType::PaymentLink], ..c }));
    add("status: failed", 10.0, each(&|c| Call { statuses: vec![Status::Failed], ..c }));
    let (since, until) = (now - chrono::Duration::days(60), now - chrono::Duration::days(30));
    add("date range: 30 days", 10.0, each(&|c| Call { since: Some(since), until: Some(until), ..c }));
    let recent = now - chrono::Duration::days(90);
    add(
        "combined: sms, delivered|failed, 90 days",
        10.0,
        each(&|c| Call {
            channels: vec![Channel::Sms],
            statuses: vec![Status::Delivered, Status::Failed],
            since: Some(recent),
            ..c
        }),
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let names = |accounts: Vec<String>, rng: &mut rand::rngs::StdRng| -> Vec<Call> {
        accounts.into_iter().map(|a| Call { query: name_term(rng), ..Call::on(&a) }).collect()
    };
    let largest_names = names(vec![LARGEST.to_owned(); requests], &mut rng);
    let other_names = names(others.clone(), &mut rng);
    add("name search", 50.0, (largest_names, other_names));
    let phones = |customers: &[(String, String, String)], rng: &mut rand::rngs::StdRng| -> Vec<Call> {
        customers
            .iter()
            .cycle()
            .take(requests)
            .map(|(a, _, phone)| Call { query: phone_term(rng, phone), ..Call::on(a) })
            .collect()
    };
    let largest_phones = phones(&s.largest_customers, &mut rng);
    let other_phones = phones(&s.other_customers, &mut rng);
    add("phone search", 50.0, (largest_phones, other_phones));
    let threads = |customers: &[(String, String, String)]| -> Vec<Call> {
        customers
            .iter()
            .cycle()
            .take(requests)
            .map(|(a, c, _)| Call { thread: Some(c.clone()), ..Call::on(a) })
            .collect()
    };
    add("thread", 10.0, (threads(&s.largest_customers), threads(&s.other_customers)));
    let messages = |rows: &[(String, Cursor)]| -> Vec<Call> {
        rows.iter()
            .cycle()
            .take(requests)
            .map(|(a, cursor)| Call { message: Some(cursor.message_id.clone()), ..Call::on(a) })
            .collect()
    };
    add("message with timeline", 10.0, (messages(&s.largest_rows), messages(&s.other_rows)));
    add("technician: first page", 10.0, each(&|c| Call { technician: true, ..c }));
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let technician =
        |calls: Vec<Call>| -> Vec<Call> { calls.into_iter().map(|c| Call { technician: true, ..c }).collect() };
    let largest_names = technician(names(vec![LARGEST.to_owned(); requests], &mut rng));
    let other_names = technician(names(others.clone(), &mut rng));
    add("technician: name search", 50.0, (largest_names, other_names));
    list
}

/// Every customer's job: 40 per account current for [`TECHNICIAN`], the rest finished long ago
/// (past the window) by twenty others, so the scope is read from a realistic `feed.jobs`.
async fn seed_jobs(pool: &sqlx::PgPool) -> anyhow::Result<u64> {
    let done = sqlx::query(
        "INSERT INTO feed.jobs (account_id, job_id, customer_id, state, as_of)
         SELECT account_id, 'job_' || customer_id, customer_id,
                CASE WHEN n <= 40 THEN 'scheduled' ELSE 'completed' END,
                CASE WHEN n <= 40 THEN now() ELSE now() - interval '60 days' END
         FROM (SELECT account_id, customer_id, row_number() OVER (PARTITION BY account_id ORDER BY customer_id) AS n
               FROM feed.customers) c",
    )
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO feed.job_technicians (account_id, technician_id, job_id)
         SELECT account_id, CASE WHEN n <= 40 THEN 'tech_bench' ELSE 'tech_' || (n % 20) END, 'job_' || customer_id
         FROM (SELECT account_id, customer_id, row_number() OVER (PARTITION BY account_id ORDER BY customer_id) AS n
               FROM feed.customers) c",
    )
    .execute(pool)
    .await?;
    sqlx::query("ANALYZE feed.jobs, feed.job_technicians").execute(pool).await?;
    Ok(done.rows_affected())
}

async fn time_sql(conn: &mut PgConnection, sizes: &AccountSizes, calls: &[Call]) -> anyhow::Result<Vec<Duration>> {
    let mut took = Vec::with_capacity(calls.len());
    for call in calls {
        let started = Instant::now();
        sql(conn, sizes, call).await?;
        took.push(started.elapsed());
    }
    took.sort();
    Ok(took)
}

async fn time_grpc(
    client: &mut FeedServiceClient<tonic::transport::Channel>,
    tokens: &mut HashMap<String, String>,
    calls: &[Call],
) -> anyhow::Result<Vec<Duration>> {
    let mut took = Vec::with_capacity(calls.len());
    for call in calls {
        let started = Instant::now();
        grpc(client, tokens, call).await?;
        took.push(started.elapsed());
    }
    took.sort();
    Ok(took)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let messages: u64 = setting("BENCH_FEED_MESSAGES", 10_000_000);
    let requests: usize = setting("BENCH_REQUESTS", 300);
    let accounts = 1000u32;
    let sizes = Sizes {
        accounts,
        largest_messages: messages / 10,
        largest_customers: messages / 100,
        other_messages: messages - messages / 10,
        customers_each: (messages / 10 - messages / 100) / u64::from(accounts - 1) + 1,
    };
    let mut stack = Stack::start_fresh("bench-feed").await?;
    let pool = sqlx::PgPool::connect(&stack.infra.database_url()).await?;
    println!(
        "seeding {} messages across {accounts} accounts ({} in {LARGEST}) and {} customers",
        sizes.messages(),
        sizes.largest_messages,
        sizes.customers()
    );
    seed::seed(&pool, sizes).await?;
    println!("seeded {} jobs", seed_jobs(&pool).await?);
    let mut conn = PgConnection::connect(&stack.infra.database_url()).await?;
    let samples = samples(&mut conn, requests).await?;
    let scenarios = scenarios(&samples, requests, accounts);
    let mut client = FeedServiceClient::connect(format!("http://127.0.0.1:{}", stack.ports.grpc)).await?;
    let mut tokens = HashMap::new();
    let sizes = AccountSizes::default();

    println!(
        "\n{requests} requests per row, one at a time; page size {}; baseline = the same SQL on one connection",
        page()
    );
    println!(
        "{:<42} {:<8} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7}",
        "call", "accounts", "gRPC p50", "gRPC p99", "SQL p50", "SQL p99", "x p50", "x p99", "target"
    );
    let mut worst_ratio: f64 = 0.0;
    let mut misses = Vec::new();
    for scenario in &scenarios {
        for (label, calls) in [("largest", &scenario.largest), ("random", &scenario.others)] {
            // Warm both paths on a slice of the same calls first.
            let warm = &calls[..calls.len().min(20)];
            time_sql(&mut conn, &sizes, warm).await?;
            time_grpc(&mut client, &mut tokens, warm).await?;
            let sql_took = time_sql(&mut conn, &sizes, calls).await?;
            let grpc_took = time_grpc(&mut client, &mut tokens, calls).await?;
            let (g50, g99) = (percentile(&grpc_took, 0.5), percentile(&grpc_took, 0.99));
            let (s50, s99) = (percentile(&sql_took, 0.5), percentile(&sql_took, 0.99));
            let (r50, r99) = (g50 / s50.max(0.001), g99 / s99.max(0.001));
            worst_ratio = worst_ratio.max(r50);
            if g99 > scenario.target_ms {
                misses.push(format!("{} ({label}): p99 {g99:.1} ms > {} ms", scenario.name, scenario.target_ms));
            }
            println!(
                "{:<42} {:<8} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>7.2} {:>7.2} {:>7}",
                scenario.name,
                label,
                g50,
                g99,
                s50,
                s99,
                r50,
                r99,
                format!("{} ms", scenario.target_ms)
            );
        }
    }
    // What a call costs before any query: one gRPC round trip, one SQL round trip.
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", stack.ports.grpc))?.connect().await?;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let mut grpc_floor = Vec::with_capacity(requests);
    let mut sql_floor = Vec::with_capacity(requests);
    for _ in 0..requests {
        let started = Instant::now();
        health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await?;
        grpc_floor.push(started.elapsed());
        let started = Instant::now();
        sqlx::query("SELECT 1").execute(&mut conn).await?;
        sql_floor.push(started.elapsed());
    }
    grpc_floor.sort();
    sql_floor.sort();
    println!(
        "{:<42} {:<8} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
        "round trip alone (health check / SELECT 1)",
        "-",
        percentile(&grpc_floor, 0.5),
        percentile(&grpc_floor, 0.99),
        percentile(&sql_floor, 0.5),
        percentile(&sql_floor, 0.99)
    );
    println!("\nworst p50 ratio gRPC / SQL: {worst_ratio:.2} (target ≤ 1.5)");
    if misses.is_empty() {
        println!("every p99 within its target");
    } else {
        println!("p99 over target:\n  {}", misses.join("\n  "));
    }
    conn.close().await?;
    pool.close().await;
    stack.stop().await;
    Ok(())
}
