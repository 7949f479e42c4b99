//! Child processes that are killed (SIGKILL) when dropped, with output sent to a log file.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::{Child, Command};

/// A running child process.
pub struct Managed {
    pub name: String,
    child: Option<Child>,
    command: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
}

impl Managed {
    /// Starts `program` with `args` and `env`, appending its output to `log_dir/<name>.log`.
    pub fn start(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        log_dir: &Path,
    ) -> anyhow::Result<Self> {
        let mut command = vec![program.display().to_string()];
        command.extend(args.iter().cloned());
        let mut managed = Self {
            name: name.to_owned(),
            child: None,
            command,
            env: env.to_vec(),
            log: log_dir.join(format!("{name}.log")),
        };
        managed.spawn()?;
        Ok(managed)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let child = Command::new(&self.command[0])
            .args(&self.command[1..])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {}: {e}", self.command[0]))?;
        self.child = Some(child);
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// SIGKILL, as a crash would.
    pub async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take()
            && let Some(pid) = child.id()
        {
            let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
            if tokio::time::timeout(std::time::Duration::from_secs(25), child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
        }
    }

    /// Whether the process has exited (or was never running).
    pub fn has_exited(&mut self) -> bool {
        self.child.as_mut().is_none_or(|child| !matches!(child.try_wait(), Ok(None)))
    }

    /// Starts it again with the same command and environment.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.spawn()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Whether it is still running and, if not, the last `lines` of its log: what a failed start
    /// needs to be understood from a test's output alone.
    pub fn report(&mut self, lines: usize) -> String {
        if !self.has_exited() {
            return format!("{}: running", self.name);
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        let tail = all[all.len().saturating_sub(lines)..].join("\n    ");
        format!("{}: EXITED; last lines of its log:\n    {tail}", self.name)
    }
}
