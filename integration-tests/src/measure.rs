//! What the benchmarks read off the machine: percentiles, each process's CPU time and peak memory
//! from `/proc`, and the rows Postgres wrote, table by table.

use std::time::Duration;

/// The `p` quantile (0..=1) of sorted durations, in milliseconds (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on every Linux we run on).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds (user + system) a process has used so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are space-separated.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / TICKS_PER_SECOND)
}

/// CPU seconds of a process and all its children (Postgres's backends are children of the
/// postmaster).
pub fn cpu_seconds_with_children(pid: u32) -> f64 {
    cpu_seconds(pid).unwrap_or(0.0) + children(pid).into_iter().filter_map(cpu_seconds).sum::<f64>()
}

/// The highest resident memory a process has had (`VmHWM`), in MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Direct children of a process.
fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok()))
                == Some(parent)
        })
        .collect()
}

/// Rows one table has had written so far (`pg_stat_user_tables`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TableWrites {
    pub table: String,
    pub inserts: i64,
    pub updates: i64,
    /// Updates that wrote no index entry (heap-only tuples).
    pub hot_updates: i64,
    pub deletes: i64,
    pub indexes: i64,
}

/// Every table that has had rows written, the most written first.
pub async fn table_writes(pool: &sqlx::PgPool) -> sqlx::Result<Vec<TableWrites>> {
    sqlx::query_as(
        "SELECT schemaname || '.' || relname AS table, n_tup_ins AS inserts, n_tup_upd AS updates,
                n_tup_hot_upd AS hot_updates, n_tup_del AS deletes,
                (SELECT count(*) FROM pg_index i WHERE i.indrelid = s.relid) AS indexes
         FROM pg_stat_user_tables s WHERE n_tup_ins + n_tup_upd + n_tup_del > 0
         ORDER BY n_tup_ins + n_tup_upd + n_tup_del DESC",
    )
    .fetch_all(pool)
    .await
}
