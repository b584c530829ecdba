//! [`BatchExecutor`]: the [`Executor`] of every batch scheduler, and the run of one trial.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use async_trait::async_trait;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::backend::WorkerCommand;
use crate::batch::client::{
    ArraySubmission, BatchClient, ClientError, JobId, TaskRef, TaskState, TaskStatus,
    DEFAULT_MAX_ARRAY_SIZE,
};
use crate::batch::config::BatchConfig;
use crate::batch::files::{
    chunk_file_name, create_dir, load_chunk, load_failure, read_json, tail, task_key, write_file,
    write_json, ChunkDirWatch, TaskFile, TrialFiles, BATCH_SCRIPT, FORMAT,
};
use crate::batch::policy::{RetryDecision, RetryPolicy};
use crate::batch::poller::{lock, Poller};
use crate::error::CoreError;
use crate::executor::{
    ChunkSink, Delivery, ExecError, Executor, FailureKind, TrialFailure, TrialJob,
};
use crate::trial::ChunkIndex;

/// Consecutive failed state polls (one per poll interval) tolerated before the run stops.
pub const MAX_STATE_ERRORS: u32 = 5;

/// A submitted chunk, its task, and what the scheduler's answer says of the task (`None`: not
/// listed).
type Looked<'a> = (ChunkIndex, TaskRef, Option<&'a TaskStatus>);

/// While no result arrives, result checks back off to this many times
/// [`BatchConfig::result_check_interval`] (never beyond the poll interval).
pub const CHECK_BACKOFF: u32 = 10;

/// The [`Executor`] of batch schedulers: every trial attempt is one job array (one task per
/// chunk of seeds) submitted through a [`BatchClient`]; the controller merges the chunk results
/// itself (no reduce job).
///
/// One executor is shared by all trials and entries of a controller:
/// - one [`BatchClient::states`] call per poll interval covers every live job;
/// - [`BatchConfig::array_parallelism_limit`] caps chunk tasks across all of them;
/// - arrays larger than [`BatchClient::max_array_size`] are split, the chunk offset given to the
///   tasks in [`crate::batch::CHUNK_OFFSET_ENV`].
///
/// Per trial, in its directory ([`crate::TrialJob::trial_dir`], else under
/// [`BatchConfig::scratch_dir`]):
/// - stored chunk results carrying the right key are delivered instead of recomputed;
/// - every submission is recorded in `jobs.json` before it is made, under a job name unique to
///   it, and its job id after; a resumed controller re-adopts live jobs, and finds by name a
///   submission whose id an earlier controller did not live to record, instead of submitting
///   it twice;
/// - a failed, timed-out, cancelled or vanished task is noticed at the next poll and its chunk
///   retried ([`RetryPolicy`]): only chunks without a result are ever resubmitted.
///
/// Dropping an `evaluate` future cancels the jobs it started, and [`Executor::shutdown`] every
/// job of the executor, unless jobs are kept for a resume
/// ([`BatchConfig::keep_jobs_on_cancel`], `shutdown(true)`).
///
/// ```no_run
/// use std::sync::Arc;
/// use slurptuna_core::batch::{BatchClient, BatchConfig, BatchExecutor};
/// use slurptuna_core::WorkerCommand;
/// fn executor(client: Arc<dyn BatchClient>) -> BatchExecutor {
///     let worker = WorkerCommand {
///         program: std::env::current_exe().unwrap(),
///         args: Vec::new(),
///         cwd: std::env::current_dir().unwrap(),
///     };
///     BatchExecutor::new(client, BatchConfig::default(), worker, 1)
/// }
/// ```
pub struct BatchExecutor {
    config: Arc<BatchConfig>,
    config_error: Option<(&'static str, String)>,
    client: Arc<dyn BatchClient>,
    worker: Arc<WorkerCommand>,
    worker_parallelism: usize,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for BatchExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchExecutor")
            .field("scheduler", &self.client.name())
            .field("config", &self.config)
            .field("worker", &self.worker)
            .field("worker_parallelism", &self.worker_parallelism)
            .finish_non_exhaustive()
    }
}

fn option_error(e: CoreError) -> (&'static str, String) {
    match e {
        CoreError::InvalidOption { option, reason } => (option, reason),
        other => ("config", other.to_string()),
    }
}

impl BatchExecutor {
    /// An executor submitting through `client`, whose tasks run `worker` (with
    /// `worker_parallelism` threads per task). Invalid options make every `evaluate` fail with
    /// [`CoreError::InvalidOption`] naming the option (check them first with
    /// [`BatchConfig::validate`]).
    pub fn new(
        client: Arc<dyn BatchClient>,
        config: BatchConfig,
        worker: WorkerCommand,
        worker_parallelism: usize,
    ) -> BatchExecutor {
        let config_error = config
            .validate()
            .err()
            .map(option_error)
            .or_else(|| {
                (worker_parallelism == 0).then(|| ("worker_parallelism", "must be at least 1".to_string()))
            })
            .or_else(|| {
                worker.program.as_os_str().is_empty().then(|| {
                    (
                        "loss_module",
                        "the worker program is empty: name the program the tasks run (by default this one)"
                            .to_string(),
                    )
                })
            });
        let shared = Arc::new(Shared {
            poller: Poller::default(),
            limit: tokio::sync::OnceCell::new(),
            wave: AtomicU64::new(u64::MAX),
            refused: Mutex::new(None),
            keep_jobs: AtomicBool::new(config.keep_jobs_on_cancel),
            shut_down: AtomicBool::new(false),
            max_array: tokio::sync::OnceCell::new(),
            orphans: Mutex::new(Vec::new()),
        });
        BatchExecutor {
            config: Arc::new(config),
            config_error,
            client,
            worker: Arc::new(worker),
            worker_parallelism,
            shared,
        }
    }

    /// The same executor, leaving (`true`) or cancelling (`false`) its jobs when an evaluation
    /// is dropped ([`BatchConfig::keep_jobs_on_cancel`]).
    pub fn keep_jobs_on_cancel(mut self, keep: bool) -> BatchExecutor {
        Arc::make_mut(&mut self.config).keep_jobs_on_cancel = keep;
        self.shared.keep_jobs.store(keep, Ordering::SeqCst);
        self
    }

    /// The options.
    pub fn config(&self) -> &BatchConfig {
        &self.config
    }

    /// The program every task runs.
    pub fn worker(&self) -> &WorkerCommand {
        &self.worker
    }

    /// The scheduler client.
    pub fn client(&self) -> &Arc<dyn BatchClient> {
        &self.client
    }
}

/// State shared by every trial of one executor.
pub(super) struct Shared {
    pub(super) poller: Poller,
    /// Permits for submitted, unfinished tasks: the smallest of
    /// [`BatchConfig::array_parallelism_limit`], [`BatchConfig::max_queued_tasks`] and the
    /// client's [`BatchClient::queue_limit`], set at the first submission (`None`: no cap).
    limit: tokio::sync::OnceCell<Option<Arc<Semaphore>>>,
    /// The largest array to submit: halved each time the scheduler refuses a larger one for its
    /// limits (never grown again: a limit found once holds for the study).
    pub(super) wave: AtomicU64,
    /// After a submit-limit refusal: no submission before this instant, and the pause that led
    /// to it (doubled with each refusal in a row, with jitter; cleared by an accepted array).
    pub(super) refused: Mutex<Option<(Instant, Duration)>>,
    pub(super) keep_jobs: AtomicBool,
    pub(super) shut_down: AtomicBool,
    max_array: tokio::sync::OnceCell<u64>,
    /// Tasks of dropped evaluations still to cancel (drained by the spawned cancel and by
    /// shutdown).
    orphans: Mutex<Vec<TaskRef>>,
}

impl Shared {
    /// The cap on submitted, unfinished tasks (asked of the client once).
    pub(super) async fn limit(
        &self,
        client: &dyn BatchClient,
        config: &BatchConfig,
    ) -> Option<Arc<Semaphore>> {
        self.limit
            .get_or_init(|| async {
                let cluster = match client.queue_limit().await {
                    Ok(n) => n.filter(|&n| n > 0),
                    Err(e) => {
                        tracing::warn!(
                            "{}: could not read the queue limits ({e}); adapting to refusals",
                            client.name()
                        );
                        None
                    }
                };
                if let Some(n) = cluster {
                    tracing::info!(
                        "{}: holding at most {n} tasks in the queue, as the scheduler allows",
                        client.name()
                    );
                }
                let cap = [
                    config.array_parallelism_limit,
                    config.max_queued_tasks,
                    cluster,
                ]
                .into_iter()
                .flatten()
                .min();
                cap.map(|l| {
                    Arc::new(Semaphore::new(
                        usize::try_from(l)
                            .unwrap_or(usize::MAX)
                            .min(Semaphore::MAX_PERMITS),
                    ))
                })
            })
            .await
            .clone()
    }

    pub(super) async fn max_array_size(&self, client: &dyn BatchClient) -> u64 {
        *self
            .max_array
            .get_or_init(|| async {
                match client.max_array_size().await {
                    Ok(n) if n > 0 => n,
                    Ok(_) => DEFAULT_MAX_ARRAY_SIZE,
                    Err(e) => {
                        tracing::warn!(
                            "could not read the maximum array size ({e}); assuming {DEFAULT_MAX_ARRAY_SIZE}"
                        );
                        DEFAULT_MAX_ARRAY_SIZE
                    }
                }
            })
            .await
    }

    async fn cancel_orphans(&self, client: &dyn BatchClient) {
        let targets: Vec<TaskRef> = std::mem::take(&mut *lock(&self.orphans));
        if targets.is_empty() {
            return;
        }
        if let Err(e) = client.cancel(&targets).await {
            tracing::warn!(
                "could not cancel {} task(s) of an interrupted trial: {e}",
                targets.len()
            );
        }
    }
}

#[async_trait]
impl Executor for BatchExecutor {
    fn name(&self) -> &'static str {
        self.client.name()
    }

    async fn evaluate(&self, job: TrialJob, sink: &dyn ChunkSink) -> Result<(), ExecError> {
        if let Some((option, reason)) = &self.config_error {
            return Err(ExecError::Fatal(CoreError::InvalidOption {
                option,
                reason: reason.clone(),
            }));
        }
        if self.shared.shut_down.load(Ordering::SeqCst) {
            return Err(ExecError::Fatal(CoreError::Cancelled));
        }
        if job.chunks.is_empty() {
            return Ok(());
        }
        let mut run = TrialRun::prepare(self, &job)?;
        run.go(sink).await
    }

    async fn preflight(&self) -> Result<(), CoreError> {
        if let Some((option, reason)) = &self.config_error {
            return Err(CoreError::InvalidOption {
                option,
                reason: reason.clone(),
            });
        }
        let worker = &self.worker;
        let cwd = std::path::absolute(&worker.cwd).unwrap_or_else(|_| worker.cwd.clone());
        let sub = ArraySubmission {
            script: worker.program.clone(),
            script_args: Vec::new(),
            array: vec![0],
            array_limit: self.config.array_parallelism_limit,
            job_name: format!("{}-preflight", self.config.job_name_prefix),
            chdir: cwd,
            output: PathBuf::from("/dev/null"),
            error: PathBuf::from("/dev/null"),
            env: Vec::new(),
        };
        self.client
            .check_submission(&sub)
            .await
            .map_err(|e| CoreError::Executor {
                executor: self.client.name(),
                source: Box::new(e),
            })
    }

    async fn shutdown(&self, keep_jobs: bool) -> Result<(), CoreError> {
        self.shared.keep_jobs.store(keep_jobs, Ordering::SeqCst);
        self.shared.shut_down.store(true, Ordering::SeqCst);
        if keep_jobs {
            lock(&self.shared.orphans).clear();
            return Ok(());
        }
        let jobs: Vec<TaskRef> = self
            .shared
            .poller
            .live_jobs()
            .into_iter()
            .map(|job| TaskRef { job, task: None })
            .collect();
        lock(&self.shared.orphans).extend(jobs);
        self.shared.cancel_orphans(self.client.as_ref()).await;
        Ok(())
    }
}

/// A chunk's place in its trial's evaluation.
pub(super) enum SlotState {
    /// Not submitted (first attempt, retry, or waiting for a permit).
    Waiting,
    /// A task of a submitted array.
    Submitted {
        task: TaskRef,
        since: Instant,
        permit: Option<OwnedSemaphorePermit>,
    },
    /// Delivered to the sink.
    Done,
}

pub(super) struct Slot {
    pub(super) state: SlotState,
    /// Submissions so far.
    pub(super) submissions: u32,
}

/// Why a chunk attempt failed.
#[derive(Clone, Debug)]
struct ChunkFailure {
    chunk: ChunkIndex,
    kind: FailureKind,
    /// The scheduler's name for the state, when it reported one.
    label: Option<String>,
    reason: String,
}

/// The evaluation of one trial.
pub(super) struct TrialRun {
    pub(super) config: Arc<BatchConfig>,
    pub(super) policy: RetryPolicy,
    pub(super) client: Arc<dyn BatchClient>,
    pub(super) worker: Arc<WorkerCommand>,
    pub(super) shared: Arc<Shared>,
    pub(super) job: TrialJob,
    pub(super) files: TrialFiles,
    pub(super) task_key: String,
    pub(super) slots: BTreeMap<ChunkIndex, Slot>,
    /// Jobs this trial registered with the poller.
    pub(super) registered: BTreeSet<JobId>,
    keys: BTreeMap<ChunkIndex, String>,
    trial_attempts: u32,
    /// Since when every submission of this trial was refused for the scheduler's limits.
    pub(super) refused_since: Option<Instant>,
    /// When the chunk directory must be listed again.
    watch: ChunkDirWatch,
    /// Chunk results delivered so far.
    delivered: u64,
}

impl TrialRun {
    fn prepare(exec: &BatchExecutor, job: &TrialJob) -> Result<Self, CoreError> {
        let dir = match (&job.trial_dir, &exec.config.scratch_dir) {
            (Some(d), _) => d.clone(),
            (None, Some(s)) => scratch_trial_dir(s, job),
            (None, None) => {
                return Err(CoreError::option(
                    "scratch_dir",
                    format!(
                        "trial {} has no trial directory and no scratch_dir is configured: batch tasks need a directory shared with the compute nodes",
                        job.trial
                    ),
                ))
            }
        };
        let dir = std::path::absolute(&dir)
            .map_err(|e| crate::batch::files::io_error("cannot resolve", &dir, e))?;
        let files = TrialFiles::new(dir);
        create_dir(&files.chunks_dir())?;
        create_dir(&files.logs_dir())?;
        let task = TaskFile {
            format: FORMAT,
            loss_name: job.loss_name.clone(),
            entry_id: job.entry_id.as_deref().map(str::to_string),
            trial: job.trial,
            params: job.params.clone(),
            layout: (*job.layout).clone(),
            keep_seed_values: job.keep_seed_values,
            worker_parallelism: exec.worker_parallelism,
            chunks_dir: files.chunks_dir(),
            task_index_env: exec.client.task_index_env().to_string(),
        };
        let current: Option<TaskFile> = read_json(&files.task(), "task file").ok().flatten();
        if current.as_ref() != Some(&task) {
            write_json(&files.task(), &task)?;
        }
        if std::fs::read_to_string(files.script()).ok().as_deref() != Some(BATCH_SCRIPT) {
            write_file(&files.script(), BATCH_SCRIPT.as_bytes(), Some(0o755))?;
        }
        let slots = job
            .chunks
            .iter()
            .map(|&c| {
                (
                    c,
                    Slot {
                        state: SlotState::Waiting,
                        submissions: 0,
                    },
                )
            })
            .collect();
        let keys = job
            .chunks
            .iter()
            .map(|&c| (c, job.chunk_key(c).as_str().to_string()))
            .collect();
        Ok(TrialRun {
            config: exec.config.clone(),
            policy: exec.config.retry_policy(),
            client: exec.client.clone(),
            worker: exec.worker.clone(),
            shared: exec.shared.clone(),
            job: job.clone(),
            task_key: task_key(&task),
            files,
            slots,
            registered: BTreeSet::new(),
            keys,
            trial_attempts: 1,
            refused_since: None,
            watch: ChunkDirWatch::default(),
            delivered: 0,
        })
    }

    /// The run-stopping error for a client error.
    pub(super) fn fatal(&self, e: ClientError) -> ExecError {
        ExecError::Fatal(CoreError::Executor {
            executor: self.client.name(),
            source: Box::new(e),
        })
    }

    async fn go(&mut self, sink: &dyn ChunkSink) -> Result<(), ExecError> {
        if self.deliver_or_stop(sink).await? {
            return Ok(());
        }
        self.adopt().await;
        // A recorded task that ended between the first look and the state query has written
        // its result by now (results are written before a task exits): deliver it rather than
        // resubmitting its chunk.
        if self.deliver_or_stop(sink).await? {
            return Ok(());
        }
        // Results are looked for every `result_check_interval`; while none arrive the checks
        // back off to ten times that (results of a trial's tasks come together, so the first of
        // them waits, the others do not).
        let base = self
            .config
            .result_check_interval
            .min(self.config.poll_interval);
        let quiet = (base * CHECK_BACKOFF).min(self.config.poll_interval);
        let mut check = base;
        let mut last_poll = Instant::now();
        let mut state_errors = 0u32;
        loop {
            if self.shared.shut_down.load(Ordering::SeqCst) {
                return Err(ExecError::Fatal(CoreError::Cancelled));
            }
            self.submit_waiting().await?;
            if self.all_done() {
                return Ok(());
            }
            tokio::time::sleep(check).await;
            let delivered = self.delivered;
            if self.deliver_or_stop(sink).await? {
                return Ok(());
            }
            check = if self.delivered > delivered {
                base
            } else {
                (check * 2).min(quiet)
            };
            let mut failures = Vec::new();
            if last_poll.elapsed() >= self.config.poll_interval {
                let mine: BTreeSet<JobId> = self.submitted().map(|(_, t, _)| t.job).collect();
                if !mine.is_empty() {
                    match self
                        .shared
                        .poller
                        .snapshot(self.client.as_ref(), &mine, last_poll)
                        .await
                    {
                        Ok(snap) => {
                            state_errors = 0;
                            last_poll = Instant::now();
                            // Results written before a task left the queue are visible now
                            // (listed whatever the directory's time says: a task the answer
                            // shows ended must not be taken for one without a result).
                            let looked: Vec<Looked<'_>> = self
                                .submitted()
                                .map(|(c, t, _)| (c, t, snap.get(t.job, t.task)))
                                .collect();
                            let ended = looked
                                .iter()
                                .any(|(_, _, s)| !s.is_some_and(|s| s.state.is_active()));
                            if ended {
                                self.watch.invalidate();
                            }
                            if self.deliver_or_stop(sink).await? {
                                return Ok(());
                            }
                            if ended {
                                failures.extend(self.failures_from(&looked).await);
                            }
                        }
                        Err(e) => {
                            // Asked again at the next poll, not at the next check: an outage
                            // (slurmctld restarting, refusing RPCs) counts once per interval.
                            last_poll = Instant::now();
                            state_errors += 1;
                            tracing::warn!(
                                "{}: asking for task states failed ({state_errors} in a row): {e}",
                                self.client.name()
                            );
                            if state_errors >= MAX_STATE_ERRORS {
                                return Err(self.fatal(e));
                            }
                        }
                    }
                } else {
                    last_poll = Instant::now();
                }
            }
            failures.extend(self.timeouts());
            let settled = self.delivered > delivered || !failures.is_empty();
            if !failures.is_empty() {
                self.handle_failures(failures).await?;
            }
            if settled {
                self.release_finished_jobs();
            }
        }
    }

    pub(super) fn all_done(&self) -> bool {
        self.slots
            .values()
            .all(|s| matches!(s.state, SlotState::Done))
    }

    /// The chunks waiting for a submission.
    pub(super) fn waiting(&self) -> Vec<ChunkIndex> {
        self.slots
            .iter()
            .filter(|(_, s)| matches!(s.state, SlotState::Waiting))
            .map(|(&c, _)| c)
            .collect()
    }

    /// True when chunk `c` waits for a submission.
    pub(super) fn is_waiting(&self, c: ChunkIndex) -> bool {
        self.slots
            .get(&c)
            .is_some_and(|s| matches!(s.state, SlotState::Waiting))
    }

    /// Submitted chunks: `(chunk, task, submitted at)`.
    pub(super) fn submitted(&self) -> impl Iterator<Item = (ChunkIndex, TaskRef, Instant)> + '_ {
        self.slots.iter().filter_map(|(&c, s)| match &s.state {
            SlotState::Submitted { task, since, .. } => Some((c, *task, *since)),
            _ => None,
        })
    }

    /// Marks `c` as submitted as `task`.
    pub(super) fn mark_submitted(
        &mut self,
        c: ChunkIndex,
        task: TaskRef,
        since: Instant,
        permit: Option<OwnedSemaphorePermit>,
    ) {
        if let Some(slot) = self.slots.get_mut(&c) {
            slot.state = SlotState::Submitted {
                task,
                since,
                permit,
            };
            slot.submissions += 1;
        }
        if self.registered.insert(task.job) {
            self.shared.poller.register(task.job);
        }
    }

    /// Moves chunk `c` to `state`; the queue permit of the task it leaves lingers until the
    /// scheduler stops counting that task.
    fn settle(&mut self, c: ChunkIndex, state: SlotState) {
        let Some(slot) = self.slots.get_mut(&c) else {
            return;
        };
        if let SlotState::Submitted {
            task,
            permit: Some(p),
            ..
        } = std::mem::replace(&mut slot.state, state)
        {
            self.shared.poller.linger(task, p);
        }
    }

    fn n_seeds(&self, c: ChunkIndex) -> u64 {
        let r = self.job.layout.chunk_positions(c);
        r.end - r.start
    }

    /// Delivers every valid stored result of a chunk not yet delivered; stops at the first
    /// [`Delivery::Stop`].
    fn deliver_stored(&mut self, sink: &dyn ChunkSink) -> Result<Delivery, ExecError> {
        let dir = self.files.chunks_dir();
        if !self.watch.must_list(&dir, self.config.poll_interval) {
            return Ok(Delivery::Continue);
        }
        let present: BTreeSet<String> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => return Ok(Delivery::Continue),
        };
        let ready: Vec<ChunkIndex> = self
            .slots
            .iter()
            .filter(|(c, s)| {
                !matches!(s.state, SlotState::Done) && present.contains(&chunk_file_name(**c))
            })
            .map(|(&c, _)| c)
            .collect();
        for c in ready {
            let Some(result) = load_chunk(&dir, c, &self.keys[&c], self.n_seeds(c)) else {
                continue;
            };
            let delivery = sink.chunk_done(self.job.trial, c, result)?;
            self.settle(c, SlotState::Done);
            self.delivered += 1;
            if delivery == Delivery::Stop {
                return Ok(Delivery::Stop);
            }
        }
        Ok(Delivery::Continue)
    }

    /// [`TrialRun::deliver_stored`]; on [`Delivery::Stop`] the trial's other tasks are
    /// cancelled (whatever `keep_jobs` says: nobody wants their results) and `true` returned.
    async fn deliver_or_stop(&mut self, sink: &dyn ChunkSink) -> Result<bool, ExecError> {
        if self.deliver_stored(sink)? == Delivery::Continue {
            return Ok(false);
        }
        self.cancel_others().await;
        Ok(true)
    }

    /// Failed, vanished or result-less finished tasks, according to `snap`.
    async fn failures_from(&mut self, looked: &[Looked<'_>]) -> Vec<ChunkFailure> {
        let mut out = Vec::new();
        // Only tasks still submitted (a result delivered since the answer settles its task).
        let subs: Vec<(ChunkIndex, TaskRef, Option<&TaskStatus>)> = looked
            .iter()
            .filter(|(c, t, _)| {
                matches!(self.slots.get(c).map(|s| &s.state),
                    Some(SlotState::Submitted { task, .. }) if task == t)
            })
            .copied()
            .collect();
        // Tasks that left the queue without a result: one accounting call for all of them.
        let vanished: BTreeSet<JobId> = subs
            .iter()
            .filter(|(_, _, s)| s.is_none())
            .map(|(_, t, _)| t.job)
            .collect();
        let accounted: HashMap<(JobId, Option<u64>), TaskStatus> = if vanished.is_empty() {
            HashMap::new()
        } else {
            let jobs: Vec<JobId> = vanished.into_iter().collect();
            match self.client.final_states(&jobs).await {
                Ok(Some(list)) => list.into_iter().map(|s| ((s.job, s.task), s)).collect(),
                _ => HashMap::new(),
            }
        };
        for (c, t, listed) in subs {
            let (state, detail) = match listed {
                Some(s) if s.state.is_active() => continue,
                Some(s) => (Some(s.state.clone()), s.detail.clone()),
                None => match accounted.get(&(t.job, t.task)) {
                    Some(s) if s.state.is_active() => continue,
                    Some(s) => (Some(s.state.clone()), s.detail.clone()),
                    None => (None, None),
                },
            };
            let detail = detail.map(|d| format!(" ({d})")).unwrap_or_default();
            let (kind, label, what) = match state {
                Some(TaskState::Completed) => (
                    FailureKind::NoResult,
                    None,
                    "finished without writing a result".to_string(),
                ),
                Some(TaskState::Ended { kind, label }) => {
                    let what = format!("ended {label}{detail}");
                    (kind, Some(label), what)
                }
                Some(TaskState::Active) => continue,
                None => (
                    FailureKind::Vanished,
                    None,
                    "left the queue without writing a result".to_string(),
                ),
            };
            out.push(self.describe_failure(c, t, kind, label, &what));
        }
        out
    }

    /// A chunk failure with the loss's failure record and the task's stderr tail, when there
    /// are. A task that failed because its loss failed is a [`FailureKind::Loss`].
    fn describe_failure(
        &self,
        c: ChunkIndex,
        t: TaskRef,
        mut kind: FailureKind,
        label: Option<String>,
        what: &str,
    ) -> ChunkFailure {
        let mut reason = format!("chunk {c}: {} task {t} {what}", self.client.name());
        if let Some(f) = load_failure(&self.files.chunks_dir(), c, &self.keys[&c]) {
            reason.push_str(&format!("; {f}"));
            if matches!(
                kind,
                FailureKind::Scheduler | FailureKind::Vanished | FailureKind::NoResult
            ) {
                kind = FailureKind::Loss;
            }
        }
        if let Some(task) = t.task {
            if let Some(err) = tail(&self.files.stderr_log(t.job, task), 12) {
                reason.push_str(&format!("\n--- stderr of task {t} (tail)\n{err}"));
            }
        }
        ChunkFailure {
            chunk: c,
            kind,
            label,
            reason,
        }
    }

    /// Tasks past the attempt timeout (from submission: queue time counts).
    fn timeouts(&self) -> Vec<ChunkFailure> {
        let limit = self.config.attempt_timeout;
        let now = Instant::now();
        let expired: Vec<(ChunkIndex, TaskRef)> = self
            .submitted()
            .filter(|(_, _, since)| now.duration_since(*since) >= limit)
            .map(|(c, t, _)| (c, t))
            .collect();
        if expired.is_empty() {
            return Vec::new();
        }
        let what = format!(
            "did not finish within the attempt timeout of {limit:?} (queue time counts); cancelled"
        );
        expired
            .into_iter()
            .map(|(c, t)| self.describe_failure(c, t, FailureKind::AttemptTimeout, None, &what))
            .collect()
    }

    async fn cancel_slots(&mut self, chunks: &[ChunkIndex]) {
        let mut targets = Vec::new();
        for c in chunks {
            if let Some(SlotState::Submitted { task, .. }) = self.slots.get(c).map(|s| &s.state) {
                targets.push(*task);
                self.settle(*c, SlotState::Waiting);
            }
        }
        if targets.is_empty() {
            return;
        }
        if let Err(e) = self.client.cancel(&targets).await {
            tracing::warn!(
                "trial {}: could not cancel {} task(s): {e}",
                self.job.trial,
                targets.len()
            );
        }
    }

    async fn cancel_others(&mut self) {
        let others: Vec<ChunkIndex> = self.submitted().map(|(c, _, _)| c).collect();
        self.cancel_slots(&others).await;
    }

    async fn handle_failures(&mut self, failures: Vec<ChunkFailure>) -> Result<(), ExecError> {
        // Tasks the executor stopped waiting for are still in the queue: cancel them. The
        // others ended; their chunks wait for a decision.
        let queued: Vec<ChunkIndex> = failures
            .iter()
            .filter(|f| RetryPolicy::still_queued(f.kind))
            .map(|f| f.chunk)
            .collect();
        self.cancel_slots(&queued).await;
        for f in &failures {
            self.settle(f.chunk, SlotState::Waiting);
        }
        let mut retry_trial: Option<&ChunkFailure> = None;
        for f in &failures {
            let attempts = if self.policy.fail_on_chunk_error {
                self.trial_attempts
            } else {
                self.slots.get(&f.chunk).map_or(0, |s| s.submissions)
            };
            match self.policy.decide(f.kind, attempts) {
                RetryDecision::GiveUp => {
                    self.cancel_others().await;
                    return Err(self.give_up(attempts, f));
                }
                RetryDecision::RetryTrial => {
                    retry_trial.get_or_insert(f);
                }
                RetryDecision::RetryChunk => tracing::warn!(
                    "trial {}: {}; retrying this chunk",
                    self.job.trial,
                    f.reason
                ),
            }
        }
        if let Some(first) = retry_trial {
            self.cancel_others().await;
            tracing::warn!(
                "trial {}: attempt {} failed ({}); retrying the missing chunks",
                self.job.trial,
                self.trial_attempts,
                first.reason
            );
            self.trial_attempts += 1;
        }
        Ok(())
    }

    fn give_up(&self, attempts: u32, f: &ChunkFailure) -> ExecError {
        let failure = TrialFailure::new(
            f.kind,
            format!(
                "trial {} failed after {attempts} attempt{}: {}",
                self.job.trial,
                if attempts == 1 { "" } else { "s" },
                f.reason
            ),
        )
        .in_chunk(f.chunk);
        ExecError::Trial(match &f.label {
            Some(label) => failure.with_state(label.clone()),
            None => failure,
        })
    }

    /// Unregisters jobs none of our chunks waits for any more.
    fn release_finished_jobs(&mut self) {
        let still: BTreeSet<JobId> = self.submitted().map(|(_, t, _)| t.job).collect();
        let gone: Vec<JobId> = self.registered.difference(&still).copied().collect();
        for j in gone {
            self.registered.remove(&j);
            self.shared.poller.unregister(j);
        }
    }
}

impl Drop for TrialRun {
    fn drop(&mut self) {
        let targets: Vec<TaskRef> = self.submitted().map(|(_, t, _)| t).collect();
        let chunks: Vec<ChunkIndex> = self.submitted().map(|(c, _, _)| c).collect();
        for c in chunks {
            self.settle(c, SlotState::Waiting);
        }
        for j in std::mem::take(&mut self.registered) {
            self.shared.poller.unregister(j);
        }
        if targets.is_empty() || self.shared.keep_jobs.load(Ordering::SeqCst) {
            return;
        }
        lock(&self.shared.orphans).extend(targets);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let shared = self.shared.clone();
            let client = self.client.clone();
            handle.spawn(async move { shared.cancel_orphans(client.as_ref()).await });
        }
    }
}

/// The directory a [`BatchExecutor`] uses for a trial without a trial directory, under
/// [`BatchConfig::scratch_dir`]: `<scratch>/<loss>/<run|entry_<fingerprint>>/trial_NNNNN`.
pub fn scratch_trial_dir(scratch: &Path, job: &TrialJob) -> PathBuf {
    let entry = job
        .entry_id
        .as_deref()
        .map(|e| format!("entry_{}", crate::fingerprint_hex(e.as_bytes())))
        .unwrap_or_else(|| "run".to_string());
    scratch
        .join(&job.loss_name)
        .join(entry)
        .join(format!("trial_{:05}", job.trial.0))
}
