//! [`ProcessExecutor`]: a persistent pool of worker processes that re-execute the user's program.
//!
//! Each worker is the configured program started with [`POOL_WORKER_ENV`](crate::POOL_WORKER_ENV)
//! set, in its own process group. Requests go to its stdin; replies come back on a dedicated pipe
//! installed as file descriptor 3 ([`POOL_REPLY_FD_ENV`](crate::POOL_REPLY_FD_ENV)), so whatever
//! the loss prints on stdout (even from C code, even half lines) can never be mistaken for a
//! reply; its stdout is inherited and its stderr is forwarded line by line to ours, the last lines
//! kept for error messages.
//!
//! A worker serves one batch at a time; every reply carries the batch id. A chunk's seeds are
//! split into contiguous batches over the workers and put back in seed order, so a chunk's values
//! are exactly those the threads would compute.
//!
//! This module holds the executor and its configuration. `supervisor` starts, lends, replaces
//! and stops the worker processes (`process` is one of them, as the pool sees it);
//! `conversation` runs batches on them and reassembles the values.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use slurptuna_core::{ChunkSink, CoreError, ExecError, Executor, LossDefinition, TrialJob};
use tokio::sync::Semaphore;

use crate::error::LocalError;

mod conversation;
mod process;
mod supervisor;

use process::{lock, Registry, Worker};

const EXECUTOR: &str = "processes";

/// How to start the workers of a [`ProcessExecutor`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessPoolConfig {
    /// The program each worker runs: the user's own program (see [`Self::current_program`]).
    pub program: PathBuf,
    /// Its arguments (the launcher's `argv[1..]` when `forward_sys_argv_to_workers`).
    pub args: Vec<OsString>,
    /// The working directory of the workers.
    pub cwd: PathBuf,
    /// Number of worker processes (`worker_parallelism`), > 0.
    pub workers: usize,
}

impl ProcessPoolConfig {
    /// Workers running `program` without arguments in the current directory.
    pub fn new(program: impl Into<PathBuf>, workers: usize) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            cwd: PathBuf::from("."),
            workers,
        }
    }

    /// Workers re-executing this program ([`std::env::current_exe`]) in the current directory,
    /// with this process's `argv[1..]` when `forward_sys_argv_to_workers`.
    pub fn current_program(
        workers: usize,
        forward_sys_argv_to_workers: bool,
    ) -> Result<Self, LocalError> {
        let program = std::env::current_exe().map_err(|source| LocalError::Spawn {
            program: PathBuf::from("<current executable>"),
            source,
        })?;
        let cwd = std::env::current_dir().map_err(|source| LocalError::Spawn {
            program: program.clone(),
            source,
        })?;
        let args = if forward_sys_argv_to_workers {
            std::env::args_os().skip(1).collect()
        } else {
            Vec::new()
        };
        Ok(Self {
            args,
            cwd,
            ..Self::new(program, workers)
        })
    }
}

/// The state of one pool, shared by the executor, its batches and their leases.
struct PoolInner {
    cfg: ProcessPoolConfig,
    /// The loss [`ProcessExecutor::start_workers`] checks for.
    loss_name: String,
    startup_timeout: Duration,
    shutdown_grace: Duration,
    /// One permit per worker process: a batch holds one while it has a worker.
    slots: Arc<Semaphore>,
    idle: Mutex<Vec<Worker>>,
    registry: Registry,
    next_batch: AtomicU64,
    next_worker: AtomicU64,
    closed: AtomicBool,
}

/// Evaluates seeds on a persistent pool of worker processes that re-execute the user's program
/// (`use_processes = true`).
///
/// Workers are started on first demand, kept between trials, and replaced when one dies. A loss
/// that aborts or segfaults fails its trial with a reason naming the seed and the signal; the
/// controller is never affected. Several `evaluate` calls may run at once: each batch of seeds
/// carries its own id, so results never mix. Dropping an `evaluate` future kills (and later
/// replaces) the workers busy with its batches. [`Executor::shutdown`] and `Drop` close the
/// workers' stdin, wait a grace period ([`ProcessExecutor::with_shutdown_grace`]), then SIGKILL their process groups.
///
/// Requests go to a worker's stdin; replies come back on a dedicated pipe (file descriptor 3,
/// named by [`POOL_REPLY_FD_ENV`](crate::POOL_REPLY_FD_ENV)), never on stdout, so the loss may
/// print anything, even half lines or from C code, without corrupting a result. Worker stdout is
/// inherited; worker stderr is forwarded to ours line by line, and its last lines are quoted when
/// a worker dies.
///
/// The worker program must call [`crate::serve_pool_worker`] when [`crate::is_pool_worker`] is
/// true (the `slurptuna` facade does so in `optimize_run` / `optimize_entries`).
///
/// Worker processes need a Unix system; elsewhere [`ProcessExecutor::new`] fails.
pub struct ProcessExecutor {
    inner: Arc<PoolInner>,
}

impl std::fmt::Debug for ProcessExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessExecutor")
            .field("cfg", &self.inner.cfg)
            .field("worker_pids", &self.worker_pids())
            .finish()
    }
}

impl ProcessExecutor {
    /// Default for [`Self::with_startup_timeout`]: programs may load data before calling
    /// `optimize_run`.
    pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
    /// Default for [`Self::with_shutdown_grace`].
    pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

    /// A pool as described by `cfg`, for trials of `loss` (the workers serve any loss registered
    /// in their program, looked up by the job's loss name). No process starts until the first
    /// batch or [`Self::start_workers`].
    ///
    /// Fails with [`LocalError::InvalidOption`] when `cfg.workers` is 0, or when this is not a
    /// Unix system (worker processes need one; threads work everywhere).
    pub fn new(loss: LossDefinition, cfg: ProcessPoolConfig) -> Result<Self, LocalError> {
        if cfg.workers == 0 {
            return Err(LocalError::InvalidOption {
                option: "worker_parallelism",
                reason: "must be > 0 (it is the number of worker processes)".into(),
            });
        }
        crate::os::check_process_pool()?;
        Ok(Self {
            inner: Arc::new(PoolInner {
                slots: Arc::new(Semaphore::new(cfg.workers)),
                cfg,
                loss_name: loss.name().to_string(),
                startup_timeout: Self::DEFAULT_STARTUP_TIMEOUT,
                shutdown_grace: Self::DEFAULT_SHUTDOWN_GRACE,
                idle: Mutex::new(Vec::new()),
                registry: Arc::default(),
                next_batch: AtomicU64::new(0),
                next_worker: AtomicU64::new(0),
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// How long a new worker may take to reach the worker entry point (default
    /// [`Self::DEFAULT_STARTUP_TIMEOUT`]). Set it before the first use.
    pub fn with_startup_timeout(mut self, timeout: Duration) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.startup_timeout = timeout;
        }
        self
    }

    /// At shutdown, how long workers get to exit after their stdin is closed before their process
    /// groups are SIGKILLed (default [`Self::DEFAULT_SHUTDOWN_GRACE`]). Set it before the first use.
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.shutdown_grace = grace;
        }
        self
    }

    /// The pool's configuration.
    pub fn config(&self) -> &ProcessPoolConfig {
        &self.inner.cfg
    }

    /// Pids of the worker processes alive right now (idle or busy), in start order.
    pub fn worker_pids(&self) -> Vec<u32> {
        lock(&self.inner.registry).values().map(|p| p.pid).collect()
    }

    /// Starts all workers now and checks that each knows the executor's loss, so a program that
    /// cannot serve (exits early, never reaches the entry point, lacks the loss) fails before the
    /// first trial.
    pub async fn start_workers(&self) -> Result<(), LocalError> {
        self.inner.start_all().await
    }
}

impl Drop for ProcessExecutor {
    fn drop(&mut self) {
        self.inner.close_all();
    }
}

#[async_trait]
impl Executor for ProcessExecutor {
    fn name(&self) -> &'static str {
        EXECUTOR
    }

    async fn evaluate(&self, job: TrialJob, sink: &dyn ChunkSink) -> Result<(), ExecError> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(ExecError::Fatal(LocalError::ShutDown.into_core(EXECUTOR)));
        }
        conversation::evaluate(&self.inner, job, sink).await
    }

    async fn shutdown(&self, _keep_jobs: bool) -> Result<(), CoreError> {
        let pool = self.inner.clone();
        tokio::task::spawn_blocking(move || pool.close_all())
            .await
            .map_err(|e| {
                LocalError::Internal {
                    executor: EXECUTOR,
                    detail: format!("shutdown task failed: {e}"),
                }
                .into_core(EXECUTOR)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn bowl() -> LossDefinition {
        slurptuna_core::loss("pool-unit")
            .description("d")
            .param("x", (0.0, 1.0))
            .build(|p, _, _| Ok(p.f64("x")?.into()))
            .unwrap()
    }

    #[test]
    fn config_validation_names_the_option() {
        let e = ProcessExecutor::new(bowl(), ProcessPoolConfig::new("prog", 0)).unwrap_err();
        assert!(e.to_string().contains("worker_parallelism"), "{e}");
        let cfg = ProcessPoolConfig::current_program(2, false).unwrap();
        assert!(cfg.args.is_empty());
        assert_eq!(cfg.workers, 2);
    }

    #[cfg(not(unix))]
    #[test]
    fn worker_processes_need_a_unix_system() {
        let e = ProcessExecutor::new(bowl(), ProcessPoolConfig::new("prog", 1)).unwrap_err();
        assert!(e.to_string().contains("need a Unix system"), "{e}");
    }
}
