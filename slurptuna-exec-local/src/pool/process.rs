//! One worker process as the pool sees it: its pipes, its stderr tail, how it is stopped.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStderr, ChildStdin, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::os;
use crate::protocol::Reply;

/// How many stderr lines of a worker are kept for error messages.
const STDERR_TAIL_LINES: usize = 20;
/// How long to wait for a dead worker's stderr to drain before building its error message.
const STDERR_DRAIN_WAIT: Duration = Duration::from_millis(500);
/// Polling interval while waiting for a process to exit.
pub(super) const POLL: Duration = Duration::from_millis(5);

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The last lines a worker wrote to stderr.
#[derive(Debug, Default)]
pub(super) struct StderrTail {
    lines: Mutex<VecDeque<String>>,
    done: AtomicBool,
}

impl StderrTail {
    /// Forwards the worker's stderr to ours, line by line, keeping the last lines.
    pub(super) fn drain(&self, pipe: ChildStderr) {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let _ = std::io::stderr().lock().write_all(&buf);
            let mut lines = lock(&self.lines);
            if lines.len() == STDERR_TAIL_LINES {
                lines.pop_front();
            }
            lines.push_back(String::from_utf8_lossy(&buf).trim_end().to_string());
        }
        self.done.store(true, Ordering::SeqCst);
    }

    /// `"; last stderr lines: ..."`, or empty; waits briefly for a dead worker's pipe to drain.
    pub(super) fn text(&self) -> String {
        let deadline = Instant::now() + STDERR_DRAIN_WAIT;
        while !self.done.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        let lines = lock(&self.lines);
        if lines.is_empty() {
            String::new()
        } else {
            let v: Vec<&str> = lines.iter().map(String::as_str).collect();
            format!("; its last stderr lines:\n{}", v.join("\n"))
        }
    }
}

#[derive(Debug)]
pub(super) struct ChildSlot {
    pub(super) child: Child,
    /// `Some` once reaped (with the status, if it could be read).
    pub(super) reaped: Option<Option<ExitStatus>>,
}

/// The shared part of a worker: what shutdown needs to stop it from another task.
#[derive(Debug)]
pub(super) struct WorkerProc {
    pub(super) id: u64,
    pub(super) pid: u32,
    pub(super) stdin: Mutex<Option<ChildStdin>>,
    pub(super) child: Mutex<ChildSlot>,
    pub(super) stderr: Arc<StderrTail>,
}

impl WorkerProc {
    pub(super) fn send(&self, line: &[u8]) -> std::io::Result<()> {
        match lock(&self.stdin).as_mut() {
            Some(stdin) => {
                stdin.write_all(line)?;
                stdin.flush()
            }
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        }
    }

    /// Closing stdin asks an idle worker to exit.
    pub(super) fn close_stdin(&self) {
        lock(&self.stdin).take();
    }

    pub(super) fn has_exited(&self) -> bool {
        let slot = lock(&self.child);
        slot.reaped.is_some() || os::has_exited(self.pid)
    }

    /// SIGKILLs the worker's process group (the loss's own children included) and reaps the
    /// worker. Idempotent. The group is signalled before reaping, while the pid is still reserved.
    pub(super) fn kill_and_reap(&self) -> Option<ExitStatus> {
        let mut slot = lock(&self.child);
        if let Some(status) = slot.reaped {
            return status;
        }
        os::kill_group(self.pid);
        let status = slot.child.wait().ok();
        slot.reaped = Some(status);
        drop(slot);
        self.close_stdin();
        status
    }

    /// Closes stdin, gives the worker `grace` to exit, then kills what is left of its group.
    pub(super) fn finish(&self, grace: Duration) -> Option<ExitStatus> {
        self.close_stdin();
        let deadline = Instant::now() + grace;
        while !self.has_exited() && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        self.kill_and_reap()
    }
}

pub(super) type Registry = Arc<Mutex<BTreeMap<u64, Arc<WorkerProc>>>>;
pub(super) type Incoming = Result<Reply, String>;

/// A worker owned by the pool (idle) or by one batch (busy). Dropping it kills and reaps the
/// process: a worker is only ever kept by being handed back explicitly.
#[derive(Debug)]
pub(super) struct Worker {
    pub(super) proc: Arc<WorkerProc>,
    pub(super) replies: UnboundedReceiver<Incoming>,
    pub(super) losses: Vec<String>,
    pub(super) argv: Vec<String>,
    pub(super) registry: Registry,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.proc.kill_and_reap();
        lock(&self.registry).remove(&self.proc.id);
    }
}

/// Reads replies from the worker's reply pipe until it closes (the worker exited).
pub(super) fn read_replies(pipe: File, tx: UnboundedSender<Incoming>) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let msg = serde_json::from_slice::<Reply>(&buf).map_err(|e| {
            format!(
                "unreadable reply ({e}): {:.200}",
                String::from_utf8_lossy(&buf)
            )
        });
        if tx.send(msg).is_err() {
            break;
        }
    }
}
