//! Throwaway directories for tests and benches: named after their user, removed when dropped.

use std::ops::Deref;
use std::path::{Path, PathBuf};

/// `msg-<name>-<pid>` in the temp directory, removed when dropped — after whatever was declared
/// later (Postgres, nats-server, the services) has been dropped and stopped. It stays for a
/// failed assertion (a panic) and whenever `MSG_KEEP_TEST_DIRS` is set; a later run of the same
/// name removes those left by processes that have gone, so failures cannot fill the disk.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
    keep: bool,
}

impl Scratch {
    /// A fresh, empty directory for `name` (not yet created: the first user creates it).
    pub fn new(name: &str) -> Self {
        let temp = std::env::temp_dir();
        let prefix = format!("msg-{name}-");
        sweep(&temp, &prefix);
        let path = temp.join(format!("{prefix}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Self { path, keep: std::env::var_os("MSG_KEEP_TEST_DIRS").is_some() }
    }

    /// Keeps the directory after the drop (its logs and data are wanted).
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep && !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Removes `<temp>/<prefix><pid>` directories whose process no longer runs.
fn sweep(temp: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(temp) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(prefix)).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
