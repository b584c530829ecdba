//! [`ProcessExecutor`]: a persistent pool of worker processes that re-execute the user's program.
//!
//! Each worker is the configured program started with [`POOL_WORKER_ENV`] set, in its own process
//! group. Requests go to its stdin; replies come back on a dedicated pipe installed as file
//! descriptor 3 ([`POOL_REPLY_FD_ENV`]), so whatever the loss prints on stdout (even from C code,
//! even half lines) can never be mistaken for a reply; its stdout is inherited and its stderr is
//! forwarded line by line to ours, the last lines kept for error messages.
//!
//! A worker serves one batch at a time; every reply carries the batch id. A chunk's seeds are
//! split into contiguous batches over the workers and put back in seed order, so a chunk's values
//! are exactly those the threads would compute.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use slurptuna_core::{
    ChunkIndex, ChunkResult, ChunkSink, CoreError, ExecError, Executor, LossDefinition,
    SeedFailure, SeedStats, TrialFailure, TrialJob,
};
use tokio::sync::mpsc::unbounded_channel;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::error::LocalError;
use crate::os;
use crate::protocol::{encode, from_bits, BatchId, BatchRequest, Reply, Request, PROTOCOL_VERSION};
use crate::worker::{POOL_REPLY_FD_ENV, POOL_WORKER_ENV};

mod process;

use process::{lock, read_replies, ChildSlot, Registry, Worker, WorkerProc, POLL};

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

/// Why a batch produced no values.
enum BatchFailure {
    /// The loss failed for a seed (the worker is fine).
    Seed(SeedFailure),
    /// The worker died; the reason names the seed, trial and signal.
    Crashed(String),
    /// The pool cannot go on.
    Fatal(CoreError),
}

struct PoolInner {
    cfg: ProcessPoolConfig,
    /// The loss [`ProcessExecutor::start_workers`] checks for.
    loss_name: String,
    startup_timeout: Duration,
    shutdown_grace: Duration,
    slots: Arc<Semaphore>,
    idle: Mutex<Vec<Worker>>,
    registry: Registry,
    next_batch: AtomicU64,
    next_worker: AtomicU64,
    closed: AtomicBool,
}

/// A worker checked out for one batch, with its pool slot. Dropped without [`Lease::release`],
/// the worker is killed (its batch was abandoned or it misbehaved); a replacement is started on
/// the next demand.
struct Lease {
    pool: Arc<PoolInner>,
    worker: Option<Worker>,
    _slot: OwnedSemaphorePermit,
}

impl Lease {
    /// Hands a healthy worker back to the pool.
    fn release(mut self) {
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
    fn fatal(e: LocalError) -> BatchFailure {
        BatchFailure::Fatal(e.into_core(EXECUTOR))
    }

    fn args_lossy(&self) -> Vec<String> {
        self.cfg
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    async fn acquire(self: &Arc<Self>) -> Result<Lease, LocalError> {
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
        let (read_end, write_end) = os::pipe_cloexec().map_err(spawn_err)?;
        let mut cmd = Command::new(&self.cfg.program);
        cmd.args(&self.cfg.args)
            .current_dir(&self.cfg.cwd)
            .env(POOL_WORKER_ENV, "1")
            .env(POOL_REPLY_FD_ENV, os::REPLY_FD.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .process_group(0);
        let raw = write_end.as_raw_fd();
        // SAFETY: the closure only calls dup2/fcntl, which are async-signal-safe.
        unsafe {
            cmd.pre_exec(move || os::install_reply_fd(raw));
        }
        let mut child = cmd.spawn().map_err(spawn_err)?;
        drop(write_end);
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
        let reply_file = File::from(read_end);
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

    /// Stops every worker: closes stdin, waits the grace period, SIGKILLs the process groups
    /// that are left and reaps. Blocking.
    fn close_all(&self) {
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
async fn finish_in_background(proc: &Arc<WorkerProc>, grace: Duration) -> (String, String) {
    let p = proc.clone();
    let status = tokio::task::spawn_blocking(move || {
        let status = p.finish(grace);
        (os::describe_status(status), p.stderr.text())
    })
    .await;
    status.unwrap_or_else(|_| (os::describe_status(None), String::new()))
}

/// Runs one batch on one worker; returns the values and whether the worker is still usable.
async fn converse(
    pool: &PoolInner,
    worker: &mut Worker,
    req: &BatchRequest,
    chunk: ChunkIndex,
) -> (Result<Vec<f64>, BatchFailure>, bool) {
    let pid = worker.proc.pid;
    if !worker.losses.contains(&req.loss) {
        let e = LocalError::LossNotRegistered {
            requested: req.loss.clone(),
            program: pool.cfg.program.clone(),
            pid,
            argv: worker.argv.clone(),
            registered: worker.losses.clone(),
        };
        return (Err(PoolInner::fatal(e)), true);
    }
    let protocol = |detail: String| {
        (
            Err(PoolInner::fatal(LocalError::Protocol { pid, detail })),
            false,
        )
    };
    let line = match encode(&Request::Batch(req.clone())) {
        Ok(line) => line,
        Err(e) => return protocol(format!("could not encode a request: {e}")),
    };
    let mut current_seed = None;
    // A failed write means the worker is gone: the reply pipe closes and we land in the crash
    // report below, which says how it ended.
    if worker.proc.send(&line).is_ok() {
        while let Some(msg) = worker.replies.recv().await {
            match msg {
                Ok(Reply::Start { batch, seed }) if batch == req.batch => {
                    current_seed = Some(seed);
                }
                Ok(Reply::Done { batch, value_bits }) if batch == req.batch => {
                    if value_bits.len() != req.seeds.len() {
                        return protocol(format!(
                            "batch {} has {} seeds but the worker returned {} values",
                            batch.0,
                            req.seeds.len(),
                            value_bits.len()
                        ));
                    }
                    return (Ok(from_bits(&value_bits)), true);
                }
                Ok(Reply::Failed { batch, failure }) if batch == req.batch => {
                    return (Err(BatchFailure::Seed(failure)), true);
                }
                Ok(Reply::UnknownLoss {
                    batch,
                    requested,
                    registered,
                    argv,
                }) if batch == req.batch => {
                    let e = LocalError::LossNotRegistered {
                        requested,
                        program: pool.cfg.program.clone(),
                        pid,
                        argv,
                        registered,
                    };
                    return (Err(PoolInner::fatal(e)), true);
                }
                Ok(other) => {
                    return protocol(format!(
                        "unexpected message while waiting for batch {}: {other:?}",
                        req.batch.0
                    ))
                }
                Err(garbled) => return protocol(garbled),
            }
        }
    }
    let (status, stderr) = finish_in_background(&worker.proc, pool.shutdown_grace).await;
    if pool.closed.load(Ordering::SeqCst) {
        return (Err(BatchFailure::Fatal(CoreError::Cancelled)), false);
    }
    let reason = match current_seed {
        Some(seed) => format!(
            "seed {seed}: worker process {pid} died with {status} while evaluating it (trial {}, chunk {chunk}); the worker is replaced{stderr}",
            req.trial
        ),
        None => format!(
            "worker process {pid} died with {status} before starting a seed of trial {} (chunk {chunk}, seeds {:?}); the worker is replaced{stderr}",
            req.trial, req.seeds
        ),
    };
    tracing::warn!(pid, trial = req.trial, "{reason}");
    (Err(BatchFailure::Crashed(reason)), false)
}

async fn run_batch(
    pool: Arc<PoolInner>,
    req: BatchRequest,
    chunk: ChunkIndex,
) -> Result<Vec<f64>, BatchFailure> {
    let mut lease = pool.acquire().await.map_err(PoolInner::fatal)?;
    let Some(worker) = lease.worker.as_mut() else {
        return Err(PoolInner::fatal(LocalError::Internal {
            executor: EXECUTOR,
            detail: "a lease without a worker".into(),
        }));
    };
    let (outcome, healthy) = converse(&pool, worker, &req, chunk).await;
    if healthy {
        lease.release();
    }
    outcome
}

/// Splits `n` positions into at most `parts` contiguous, near-equal ranges.
fn split(n: usize, parts: usize) -> Vec<Range<usize>> {
    let parts = parts.clamp(1, n.max(1));
    let (base, extra) = (n / parts, n % parts);
    let mut out = Vec::with_capacity(parts);
    let mut start = 0;
    for i in 0..parts {
        let len = base + usize::from(i < extra);
        if len > 0 {
            out.push(start..start + len);
        }
        start += len;
    }
    out
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
/// named by [`POOL_REPLY_FD_ENV`]), never on stdout, so the loss may print anything, even half
/// lines or from C code, without corrupting a result. Worker stdout is inherited; worker stderr
/// is forwarded to ours line by line, and its last lines are quoted when a worker dies.
///
/// The worker program must call [`crate::serve_pool_worker`] when [`crate::is_pool_worker`] is
/// true (the `slurptuna` facade does so in `optimize_run` / `optimize_entries`).
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
    pub fn new(loss: LossDefinition, cfg: ProcessPoolConfig) -> Result<Self, LocalError> {
        if cfg.workers == 0 {
            return Err(LocalError::InvalidOption {
                option: "worker_parallelism",
                reason: "must be > 0 (it is the number of worker processes)".into(),
            });
        }
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
        let loss_name = self.inner.loss_name.as_str();
        let mut set = JoinSet::new();
        for _ in 0..self.inner.cfg.workers {
            let pool = self.inner.clone();
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
                        program: self.inner.cfg.program.clone(),
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
        struct Assembly {
            values: Vec<f64>,
            missing: usize,
        }
        let mut pending: BTreeMap<ChunkIndex, Assembly> = BTreeMap::new();
        // Dropping the set (this future dropped, or an early return) aborts the batches still
        // running, which kills their workers.
        let mut set = JoinSet::new();
        for &chunk in &job.chunks {
            let seeds: Vec<u64> = job.layout.chunk_seeds(chunk).collect();
            let ranges = split(seeds.len(), self.inner.cfg.workers);
            pending.insert(
                chunk,
                Assembly {
                    values: vec![f64::NAN; seeds.len()],
                    missing: ranges.len(),
                },
            );
            for range in ranges {
                let req = BatchRequest {
                    batch: BatchId(self.inner.next_batch.fetch_add(1, Ordering::SeqCst)),
                    loss: job.loss_name.clone(),
                    entry_id: job.entry_id.as_deref().map(str::to_string),
                    trial: job.trial.0,
                    params: job.params.clone(),
                    seeds: seeds[range.clone()].to_vec(),
                };
                let pool = self.inner.clone();
                set.spawn(async move { (chunk, range, run_batch(pool, req, chunk).await) });
            }
        }
        let internal = |detail: String| {
            ExecError::Fatal(
                LocalError::Internal {
                    executor: EXECUTOR,
                    detail,
                }
                .into_core(EXECUTOR),
            )
        };
        while let Some(joined) = set.join_next().await {
            let (chunk, range, outcome) = joined.map_err(|e| {
                internal(format!("a batch task of trial {} failed: {e}", job.trial))
            })?;
            let values = match outcome {
                Ok(values) => values,
                Err(BatchFailure::Seed(SeedFailure::Cancelled)) => {
                    return Err(ExecError::Fatal(CoreError::Cancelled))
                }
                Err(BatchFailure::Seed(failure)) => {
                    return Err(ExecError::Trial(TrialFailure {
                        reason: failure.to_string(),
                        chunk: Some(chunk),
                        state: None,
                    }))
                }
                Err(BatchFailure::Crashed(reason)) => {
                    return Err(ExecError::Trial(TrialFailure {
                        reason,
                        chunk: Some(chunk),
                        state: None,
                    }))
                }
                Err(BatchFailure::Fatal(e)) => return Err(ExecError::Fatal(e)),
            };
            let Some(assembly) = pending.get_mut(&chunk) else {
                return Err(internal(format!("a result for unknown chunk {chunk}")));
            };
            let Some(slot) = assembly.values.get_mut(range.clone()) else {
                return Err(internal(format!(
                    "seed positions {range:?} outside chunk {chunk}"
                )));
            };
            slot.copy_from_slice(&values);
            assembly.missing -= 1;
            if assembly.missing == 0 {
                if let Some(done) = pending.remove(&chunk) {
                    let result = ChunkResult {
                        stats: SeedStats::from_values(&done.values),
                        values: job.keep_seed_values.then_some(done.values),
                    };
                    sink.chunk_done(job.trial, chunk, result)?;
                }
            }
        }
        Ok(())
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

    fn bowl() -> LossDefinition {
        slurptuna_core::loss("pool-unit")
            .description("d")
            .param("x", (0.0, 1.0))
            .build(|p, _, _| Ok(p.f64("x")?.into()))
            .unwrap()
    }

    #[test]
    fn split_covers_every_position_once_in_order() {
        for n in 1..40 {
            for parts in 1..9 {
                let r = split(n, parts);
                assert_eq!(r.len(), parts.min(n));
                assert_eq!(r[0].start, 0);
                assert_eq!(r.last().unwrap().end, n);
                assert!(r.windows(2).all(|w| w[0].end == w[1].start));
                let (min, max) = r.iter().fold((usize::MAX, 0), |(a, b), x| {
                    (a.min(x.len()), b.max(x.len()))
                });
                assert!(max - min <= 1, "{n} {parts} {r:?}");
            }
        }
    }

    #[test]
    fn config_validation_names_the_option() {
        let e = ProcessExecutor::new(bowl(), ProcessPoolConfig::new("prog", 0)).unwrap_err();
        assert!(e.to_string().contains("worker_parallelism"), "{e}");
        let cfg = ProcessPoolConfig::current_program(2, false).unwrap();
        assert!(cfg.args.is_empty());
        assert_eq!(cfg.workers, 2);
    }

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
