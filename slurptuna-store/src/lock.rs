//! The run lock: an advisory lock on `run.lock`, held by the live controller.
//!
//! The operating system releases an advisory lock when its holder exits, however it exits, so a
//! lock left by a dead (killed, crashed) controller is simply free: no stale-pid guessing is
//! needed. The file's content only tells a refused launcher who holds the lock.
//!
//! A busy lock is retried for up to a second before it is reported: a lock released a moment
//! ago may still be shared with a child process that another thread is starting (a forked
//! child holds the parent's open files until it calls exec).

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use slurptuna_core::format_utc;

use crate::error::{Result, StoreError};

/// File name of the run lock inside a run directory.
pub const LOCK_FILE: &str = "run.lock";

/// How long a busy lock is retried before the holder is reported.
const RELEASE_GRACE: Duration = Duration::from_secs(1);

/// Who holds a run lock, as recorded in `run.lock`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// Process id of the holder.
    pub pid: u32,
    /// Host name of the holder's machine.
    pub host: String,
    /// When it took the lock (ISO-8601, UTC).
    pub since_utc: String,
}

impl LockHolder {
    /// This process, now.
    pub fn current() -> Self {
        LockHolder {
            pid: std::process::id(),
            host: host_name(),
            since_utc: format_utc(SystemTime::now()),
        }
    }
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pid {} on host {} (since {})",
            self.pid, self.host, self.since_utc
        )
    }
}

/// The machine's host name (`unknown-host` when it cannot be read).
pub fn host_name() -> String {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 256];
        // SAFETY: `buf` is valid for `buf.len()` bytes; gethostname writes at most that many.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc == 0 {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            let name = String::from_utf8_lossy(&buf[..end]).trim().to_string();
            if !name.is_empty() {
                return name;
            }
        }
    }
    std::env::var("HOSTNAME")
        .or_else(|_| std::env::var("COMPUTERNAME"))
        .unwrap_or_else(|_| "unknown-host".to_string())
}

/// A held run lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub(crate) struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the lock of `run_dir` (waiting at most about a second). A live holder → [`StoreError::Locked`] naming
    /// it; a lock left by a dead process is free and taken over.
    pub(crate) fn acquire(run_dir: &Path) -> Result<RunLock> {
        let path = run_dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::io("open the run lock", &path, e))?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    // A lock that was just released can still be held for a moment by a
                    // child process being started (it shares the open file until it calls
                    // exec): retry briefly before reporting the holder.
                    if started.elapsed() >= RELEASE_GRACE {
                        return Err(StoreError::Locked {
                            run_dir: run_dir.to_path_buf(),
                            holder: read_holder(&path),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(TryLockError::Error(e)) => {
                    return Err(StoreError::io("lock (advisory file lock)", &path, e))
                }
            }
        }
        let info = serde_json::to_vec(&LockHolder::current()).unwrap_or_default();
        (|| {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            file.write_all(&info)?;
            file.flush()
        })()
        .map_err(|e| StoreError::io("write the run lock", &path, e))?;
        Ok(RunLock { _file: file })
    }
}

/// The holder recorded in `path`. A holder that has just taken the lock may not have written
/// its name yet, so an empty or partial file is re-read for a moment.
fn read_holder(path: &PathBuf) -> Option<LockHolder> {
    for _ in 0..25 {
        let mut text = String::new();
        if let Ok(mut f) = File::open(path) {
            if f.read_to_string(&mut text).is_ok() {
                if let Ok(h) = serde_json::from_str(&text) {
                    return Some(h);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_in_one_process_names_this_process() {
        let dir = tempfile::tempdir().unwrap();
        let held = RunLock::acquire(dir.path()).unwrap();
        let e = RunLock::acquire(dir.path()).unwrap_err();
        let msg = e.to_string();
        assert!(e.is_locked());
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains(&host_name()), "{msg}");
        drop(held);
        RunLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn host_name_is_not_empty() {
        assert!(!host_name().is_empty());
    }
}
