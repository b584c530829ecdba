//! The life of the pool's worker processes: starting one and waiting for its hello, lending
//! workers to batches, replacing the ones that died, and stopping them all at shutdown.

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::unbounded_channel;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;

use super::process::{lock, read_replies, ChildSlot, Worker, WorkerProc, POLL};
use super::{PoolInner, EXECUTOR};
use crate::error::LocalError;
use crate::os;
use crate::protocol::{Reply, PROTOCOL_VERSION};
use crate::worker::{POOL_REPLY_FD_ENV, POOL_WORKER_ENV};

/// A worker checked out for one batch, with its pool slot. Dropped without [`Lease::release`],
/// the worker is killed (its batch was abandoned or it misbehaved); a replacement is started on
/// the next demand.
pub(super) struct Lease {
    pool: Arc<PoolInner>,
    pub(super) worker: Option<Worker>,
    _slot: OwnedSemaphorePermit,
}

impl Lease {
    /// Hands a healthy worker back to the pool.
    pub(super) fn release(mut self) {
        if let Some(w) = self.worker.take() {
            if self.pool.closed.load(Ordering::SeqCst) {
                w.proc.finish(self.pool.shutdown_grace);
            } else {
                lock(&self.pool.idle).push(w);
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(w) = self.worker.take() {
            tracing::debug!(
                pid = w.proc.pid,
                "killing a worker whose batch was abandoned"
            );
        }
    }
}

impl PoolInner {
    fn args_lossy(&self) -> Vec<String> {
        self.cfg
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    /// Waits for a free slot and lends an idle worker, or starts one; idle workers that died are
    /// dropped (reaped) and replaced.
    pub(super) async fn acquire(self: &Arc<Self>) -> Result<Lease, LocalError> {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| LocalError::ShutDown)?;
        if self.closed.load(Ordering::SeqCst) {
            return Err(LocalError::ShutDown);
        }
        loop {
            let idle = lock(&self.idle).pop();
            match idle {
                Some(w) if w.proc.has_exited() => {
                    tracing::warn!(pid = w.proc.pid, "an idle worker died; replacing it");
                }
                Some(w) => {
                    return Ok(Lease {
                        pool: self.clone(),
                        worker: Some(w),
                        _slot: slot,
                    })
                }
                None => break,
            }
        }
        let w = self.spawn_worker().await?;
        Ok(Lease {
            pool: self.clone(),
            worker: Some(w),
            _slot: slot,
        })
    }

    /// Starts a worker and waits for its hello.
    async fn spawn_worker(self: &Arc<Self>) -> Result<Worker, LocalError> {
        let spawn_err = |source| LocalError::Spawn {
            program: self.cfg.program.clone(),
            source,
        };
        let mut cmd = Command::new(&self.cfg.program);
        cmd.args(&self.cfg.args)
            .current_dir(&self.cfg.cwd)
            .env(POOL_WORKER_ENV, "1")
            .env(POOL_REPLY_FD_ENV, os::REPLY_FD.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped());
        let (mut child, reply_file) = os::spawn_worker_process(&mut cmd).map_err(spawn_err)?;
        let pid = child.id();
        let stdin = child.stdin.take();
        let stderr_pipe = child.stderr.take();
        let (tx, rx) = unbounded_channel();
        let proc = Arc::new(WorkerProc {
            id: self.next_worker.fetch_add(1, Ordering::SeqCst),
            pid,
            stdin: Mutex::new(stdin),
            child: Mutex::new(ChildSlot {
                child,
                reaped: None,
            }),
            stderr: Arc::default(),
        });
        lock(&self.registry).insert(proc.id, proc.clone());
        let mut worker = Worker {
            proc: proc.clone(),
            replies: rx,
            losses: Vec::new(),
            argv: Vec::new(),
            registry: self.registry.clone(),
        };
        if self.closed.load(Ordering::SeqCst) {
            return Err(LocalError::ShutDown);
        }
        std::thread::Builder::new()
            .name(format!("slurptuna-pool-replies-{pid}"))
            .spawn(move || read_replies(reply_file, tx))
            .map_err(spawn_err)?;
        if let Some(pipe) = stderr_pipe {
            let tail = proc.stderr.clone();
            std::thread::Builder::new()
                .name(format!("slurptuna-pool-stderr-{pid}"))
                .spawn(move || tail.drain(pipe))
                .map_err(spawn_err)?;
        }
        tracing::debug!(pid, program = %self.cfg.program.display(), "started a pool worker");
        let hello = tokio::time::timeout(self.startup_timeout, worker.replies.recv()).await;
        match hello {
            Ok(Some(Ok(Reply::Hello {
                protocol,
                losses,
                argv,
                ..
            }))) if protocol == PROTOCOL_VERSION => {
                worker.losses = losses;
                worker.argv = argv;
                Ok(worker)
            }
            Ok(Some(Ok(Reply::Hello { protocol, .. }))) => Err(LocalError::Protocol {
                pid,
                detail: format!(
                    "the worker speaks protocol version {protocol}, this pool {PROTOCOL_VERSION}"
                ),
            }),
            Ok(Some(Ok(other))) => Err(LocalError::Protocol {
                pid,
                detail: format!("expected a hello message first, got {other:?}"),
            }),
            Ok(Some(Err(garbled))) => Err(LocalError::Protocol {
                pid,
                detail: garbled,
            }),
            Ok(None) => {
                let (status, stderr) = finish_in_background(&proc, self.shutdown_grace).await;
                Err(LocalError::ExitedBeforeHandshake {
                    program: self.cfg.program.clone(),
                    args: self.args_lossy(),
                    pid,
                    status,
                    stderr,
                })
            }
            Err(_) => Err(LocalError::HandshakeTimeout {
                program: self.cfg.program.clone(),
                args: self.args_lossy(),
                pid,
                timeout_secs: self.startup_timeout.as_secs_f64(),
            }),
        }
    }

    /// Starts every worker and checks that each knows the pool's loss (see
    /// [`super::ProcessExecutor::start_workers`]).
    pub(super) async fn start_all(self: &Arc<Self>) -> Result<(), LocalError> {
        let loss_name = self.loss_name.as_str();
        let mut set = JoinSet::new();
        for _ in 0..self.cfg.workers {
            let pool = self.clone();
            set.spawn(async move { pool.acquire().await });
        }
        let mut leases = Vec::new();
        let mut first_error = None;
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(Ok(lease)) => leases.push(lease),
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(e) => {
                    first_error.get_or_insert(LocalError::Internal {
                        executor: EXECUTOR,
                        detail: e.to_string(),
                    });
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        for lease in &leases {
            if let Some(w) = &lease.worker {
                if !w.losses.iter().any(|l| l == loss_name) {
                    return Err(LocalError::LossNotRegistered {
                        requested: loss_name.to_string(),
                        program: self.cfg.program.clone(),
                        pid: w.proc.pid,
                        argv: w.argv.clone(),
                        registered: w.losses.clone(),
                    });
                }
            }
        }
        for lease in leases {
            lease.release();
        }
        Ok(())
    }

    /// Stops every worker: closes stdin, waits the grace period, SIGKILLs the process groups
    /// that are left and reaps. Blocking.
    pub(super) fn close_all(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.slots.close();
        let idle = std::mem::take(&mut *lock(&self.idle));
        let live: Vec<Arc<WorkerProc>> = lock(&self.registry).values().cloned().collect();
        for p in &live {
            p.close_stdin();
        }
        let deadline = Instant::now() + self.shutdown_grace;
        while Instant::now() < deadline && live.iter().any(|p| !p.has_exited()) {
            std::thread::sleep(POLL);
        }
        for p in &live {
            p.kill_and_reap();
        }
        drop(idle);
        if !live.is_empty() {
            tracing::debug!(workers = live.len(), "process pool shut down");
        }
    }
}

/// Finishes a dead (or dying) worker off the async runtime; returns its status and stderr tail.
pub(super) async fn finish_in_background(
    proc: &Arc<WorkerProc>,
    grace: Duration,
) -> (String, String) {
    let p = proc.clone();
    let status = tokio::task::spawn_blocking(move || {
        let status = p.finish(grace);
        (os::describe_status(status), p.stderr.text())
    })
    .await;
    status.unwrap_or_else(|_| (os::describe_status(None), String::new()))
}

#[cfg(all(test, unix))]
mod tests {
    use super::super::tests::bowl;
    use super::super::{ProcessExecutor, ProcessPoolConfig};
    use crate::error::LocalError;

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_error() {
        let exec = ProcessExecutor::new(
            bowl(),
            ProcessPoolConfig::new("no-such-slurptuna-worker-program", 1),
        )
        .unwrap();
        let e = exec.start_workers().await.unwrap_err();
        assert!(matches!(e, LocalError::Spawn { .. }), "{e}");
        assert!(
            e.to_string().contains("no-such-slurptuna-worker-program"),
            "{e}"
        );
        assert!(exec.worker_pids().is_empty());
    }
}
