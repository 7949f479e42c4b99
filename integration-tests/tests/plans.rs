//! The feed's queries on a few hundred thousand messages: each returns what a plain (slow) query
//! over the same rows returns, and Postgres plans each with the index meant for it — a search
//! finds customers through the trigram indexes, then reads a few customers' threads or walks the
//! feed for many, never a scan of the whole table; a multi-status filter merges index-ordered
//! branches instead of sorting every match.

use chrono::{DateTime, Utc};
use messaging_domain::AccountId;
use messaging_domain::search::Term;
use messaging_feed::matches::{self, AccountSizes};
use messaging_feed::store::{self, Cursor, Filter, Order, ThreadOf};
use messaging_integration_tests::seed::{self, Sizes};
use messaging_integration_tests::{Infra, Scratch};
use sqlx::{PgPool, Row};

const SIZES: Sizes = Sizes {
    accounts: 20,
    largest_messages: 150_000,
    largest_customers: 15_000,
    other_messages: 95_000,
    customers_each: 800,
};

async fn explain(pool: &PgPool, mut query: sqlx::QueryBuilder<sqlx::Postgres>) -> anyhow::Result<String> {
    let rows = query.build().fetch_all(pool).await?;
    let lines: Vec<String> = rows.iter().map(|r| r.try_get::<String, _>(0)).collect::<Result<_, _>>()?;
    Ok(lines.join("\n"))
}

/// The plans of a page: the customers lookup of its search (if any), then the page itself.
async fn plan(pool: &PgPool, account: &AccountId, filter: &Filter, after: Option<&Cursor>) -> anyhow::Result<String> {
    let mut plans = Vec::new();
    let matches = match &filter.search {
        Some(term) => {
            plans.push(explain(pool, matches::query("EXPLAIN (COSTS OFF) ", account, term)).await?);
            let mut conn = pool.acquire().await?;
            Some(matches::resolve(&mut conn, &AccountSizes::default(), account, term, 50).await?)
        }
        None => None,
    };
    let page =
        store::page_query("EXPLAIN (COSTS OFF) ", account, filter, matches.as_ref(), after, 50, Order::NewestFirst);
    plans.push(explain(pool, page.ok_or_else(|| anyhow::anyhow!("nothing can match"))?).await?);
    Ok(plans.join("\n"))
}

/// The first 50 ids the way nobody should query: no index in mind, everything sorted.
async fn naive(pool: &PgPool, condition: &str, account: &str) -> anyhow::Result<Vec<String>> {
    let sql = format!(
        "SELECT m.message_id FROM feed.messages m LEFT JOIN feed.customers c USING (account_id, customer_id)
         WHERE m.account_id = $1 AND {condition} ORDER BY m.created_at DESC, m.message_id DESC LIMIT 50"
    );
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(account).fetch_all(pool).await?)
}

async fn ids(pool: &PgPool, account: &AccountId, filter: &Filter) -> anyhow::Result<Vec<String>> {
    let mut conn = pool.acquire().await?;
    let (rows, _) =
        store::list(&mut conn, &AccountSizes::default(), account, filter, None, 50, Order::NewestFirst).await?;
    Ok(rows.into_iter().map(|r| r.message_id).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_queries_use_their_indexes_and_agree_with_plain_sql() -> anyhow::Result<()> {
    let dir = Scratch::new("plans");
    let mut infra = Infra::start(&dir, 0, 0, false).await?;
    let pool = PgPool::connect(&infra.database_url()).await?;
    messaging_platform::db::migrator().run(&pool).await?;
    seed::seed(&pool, SIZES).await?;
    let largest = AccountId::parse("acc_0000")?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM feed.messages").fetch_one(&pool).await?;
    assert_eq!(total as u64, SIZES.messages());

    let since: DateTime<Utc> = Utc::now() - chrono::Duration::days(90);
    let rare: String = sqlx::query_scalar(
        "SELECT search_name FROM feed.customers WHERE account_id = 'acc_0000' GROUP BY 1 ORDER BY count(*), 1 LIMIT 1",
    )
    .fetch_one(&pool)
    .await?;
    let cases: Vec<(&str, Filter, String, &[&str])> = vec![
        ("first page", Filter::default(), "true".into(), &["feed_messages_page"]),
        (
            "one status",
            Filter { statuses: vec!["failed".into()], ..Default::default() },
            "m.status = 'failed'".into(),
            &["feed_messages_status"],
        ),
        (
            "two statuses, SMS, since",
            Filter {
                statuses: vec!["delivered".into(), "failed".into()],
                channels: vec!["sms".into()],
                since: Some(since),
                ..Default::default()
            },
            format!(
                "m.status IN ('delivered', 'failed') AND m.channel = 'sms' AND m.created_at >= '{}'",
                since.to_rfc3339()
            ),
            &["Merge Append", "feed_messages_status"],
        ),
        (
            "one type",
            Filter { types: vec!["manual".into()], ..Default::default() },
            "m.message_type = 'manual'".into(),
            &["feed_messages_type"],
        ),
        (
            "name search",
            Filter { search: Some(Term::Name("nunez".into())), ..Default::default() },
            "c.search_name LIKE '%nunez%'".into(),
            &["feed_customers_name", "feed_messages_page"],
        ),
        (
            "name search, few matches",
            Filter { search: Some(Term::Name(rare.clone())), ..Default::default() },
            format!("c.search_name LIKE '%{rare}%'"),
            &["feed_customers_name", "feed_messages_thread"],
        ),
        (
            "phone search",
            Filter { search: Some(Term::Phone("4242".into())), ..Default::default() },
            "(c.phone_digits LIKE '%4242%' OR (m.customer_id = '' AND m.customer_phone LIKE '%4242%'))".into(),
            &["feed_customers_phone", "feed_messages_strangers"],
        ),
        (
            "inbound",
            Filter { directions: vec!["inbound".into()], ..Default::default() },
            "m.direction = 'inbound'".into(),
            &["feed_messages_page"],
        ),
    ];
    for (name, filter, condition, expected) in &cases {
        let plan = plan(&pool, &largest, filter, None).await?;
        for index in *expected {
            assert!(plan.contains(index), "{name}: expected {index} in\n{plan}");
        }
        assert!(!plan.contains("Seq Scan on messages"), "{name} scans the whole table:\n{plan}");
        let found = ids(&pool, &largest, filter).await?;
        assert!(!found.is_empty(), "{name}: the seed has matches");
        assert_eq!(found, naive(&pool, condition, "acc_0000").await?, "{name}: the same rows as plain SQL");
        println!("{name}:\n{plan}\n");
    }

    // A thread, and a deep page, in the order plain SQL gives.
    let customer = "acc_0000_c42";
    let thread = Filter { thread: Some(ThreadOf::Customer(customer.into())), ..Default::default() };
    let thread_plan = plan(&pool, &largest, &thread, None).await?;
    assert!(thread_plan.contains("feed_messages_thread"), "{thread_plan}");
    assert_eq!(
        ids(&pool, &largest, &thread).await?,
        naive(&pool, &format!("m.customer_id = '{customer}'"), "acc_0000").await?
    );
    let deep: (DateTime<Utc>, String) = sqlx::query_as(
        "SELECT created_at, message_id FROM feed.messages WHERE account_id = 'acc_0000'
         ORDER BY created_at DESC, message_id DESC OFFSET 100000 LIMIT 1",
    )
    .fetch_one(&pool)
    .await?;
    let cursor = Cursor { created_at: deep.0, message_id: deep.1.clone() };
    let deep_plan = plan(&pool, &largest, &Filter::default(), Some(&cursor)).await?;
    assert!(deep_plan.contains("feed_messages_page") && !deep_plan.contains("Sort"), "{deep_plan}");
    let mut conn = pool.acquire().await?;
    let (page, _) = store::list(
        &mut conn,
        &AccountSizes::default(),
        &largest,
        &Filter::default(),
        Some(&cursor),
        50,
        Order::NewestFirst,
    )
    .await?;
    drop(conn);
    let expected: Vec<String> = sqlx::query_scalar(
        "SELECT message_id FROM feed.messages WHERE account_id = 'acc_0000'
         ORDER BY created_at DESC, message_id DESC OFFSET 100001 LIMIT 50",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(page.into_iter().map(|r| r.message_id).collect::<Vec<_>>(), expected);

    pool.close().await;
    infra.stop();
    Ok(())
}
