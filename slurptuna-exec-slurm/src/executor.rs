//! `SlurmExecutor`: one job array per trial attempt, chunk results merged by the controller.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use slurptuna_core::{
    ChunkIndex, ChunkSink, CoreError, ExecError, Executor, TrialFailure, TrialJob,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::cli::CliSlurm;
use crate::client::{JobId, JobState, SlurmClient, SubmitRequest, TaskRef, TaskStatus};
use crate::config::SlurmConfig;
use crate::error::SlurmError;
use crate::files::{
    create_dir, failure_path, load_chunk, load_failure, read_json, tail, task_key, write_atomic,
    write_json, JobRecord, JobsFile, PendingRecord, TaskFile, TrialFiles, BATCH_SCRIPT, FORMAT,
};
use crate::worker::CHUNK_OFFSET_ENV;

/// Used when `scontrol show config` does not answer (Slurm's own default).
const DEFAULT_MAX_ARRAY_SIZE: u64 = 1001;
/// Consecutive `squeue` failures tolerated before the run stops.
const MAX_QUEUE_ERRORS: u32 = 5;
/// The state reported for a task cancelled at the attempt timeout.
const ATTEMPT_TIMEOUT: &str = "ATTEMPT_TIMEOUT";
/// Longest pause between two `sbatch` tries after a submit-limit refusal.
const MAX_SUBMIT_BACKOFF: Duration = Duration::from_secs(60);

/// The DISTRIBUTED-mode [`Executor`]: every trial attempt is one Slurm job array, one task per
/// chunk of seeds.
///
/// One executor is shared by all trials and entries of a controller, so one `squeue` per poll
/// covers every live job and `array_parallelism_limit` caps chunk tasks across all of them. The
/// controller merges chunk results itself (no reduce job). Stored chunk results in the trial
/// directory are delivered instead of recomputed; submitted job ids are recorded there so that a
/// resumed controller re-adopts live jobs instead of resubmitting them.
///
/// Dropping an `evaluate` future cancels the jobs it started (unless jobs are kept for a
/// resume, see [`SlurmConfig::keep_jobs_on_cancel`] and [`Executor::shutdown`]).
pub struct SlurmExecutor {
    cfg: Arc<SlurmConfig>,
    config_error: Option<String>,
    client: Arc<dyn SlurmClient>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SlurmExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlurmExecutor")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl SlurmExecutor {
    /// An executor talking to Slurm through `client`. An invalid `cfg` makes every `evaluate`
    /// fail with the option's name (check it first with [`SlurmConfig::validate`]).
    pub fn new(cfg: SlurmConfig, client: Arc<dyn SlurmClient>) -> SlurmExecutor {
        let config_error = cfg.validate().err().map(|e| e.to_string());
        let limit = cfg.array_parallelism_limit.map(|l| {
            Arc::new(Semaphore::new(
                usize::try_from(l)
                    .unwrap_or(usize::MAX)
                    .min(Semaphore::MAX_PERMITS),
            ))
        });
        let shared = Arc::new(Shared {
            live: Mutex::new(HashMap::new()),
            snapshot: tokio::sync::Mutex::new(None),
            limit,
            keep_jobs: AtomicBool::new(cfg.keep_jobs_on_cancel),
            shut_down: AtomicBool::new(false),
            max_array: tokio::sync::OnceCell::new(),
            orphans: Mutex::new(Vec::new()),
        });
        SlurmExecutor {
            cfg: Arc::new(cfg),
            config_error,
            client,
            shared,
        }
    }

    /// An executor using the real Slurm commands on `PATH` ([`CliSlurm`]).
    pub fn cli(cfg: SlurmConfig) -> SlurmExecutor {
        Self::new(cfg, Arc::new(CliSlurm::new()))
    }

    /// The configuration.
    pub fn config(&self) -> &SlurmConfig {
        &self.cfg
    }
}

/// State shared by every trial of one executor.
struct Shared {
    /// Job ids with tasks some trial still waits for, with the number of trials waiting.
    live: Mutex<HashMap<JobId, usize>>,
    /// The last `squeue` answer, reused by trials polling in the same interval.
    snapshot: tokio::sync::Mutex<Option<Arc<Snapshot>>>,
    limit: Option<Arc<Semaphore>>,
    keep_jobs: AtomicBool,
    shut_down: AtomicBool,
    max_array: tokio::sync::OnceCell<u64>,
    /// Tasks of dropped evaluations still to cancel (drained by the spawned cancel and by shutdown).
    orphans: Mutex<Vec<TaskRef>>,
}

struct Snapshot {
    taken: Instant,
    queried: BTreeSet<JobId>,
    tasks: HashMap<(JobId, Option<u64>), TaskStatus>,
}

/// 12 hex digits that differ between submissions (of this process and of others): the end of
/// a job name that must name one submission only.
fn submission_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::AtomicU64;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // A process-random key (std's per-process hash seed), the process, the time and a counter.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:012x}", h.finish() & 0xffff_ffff_ffff)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn register(&self, job: JobId) {
        *lock(&self.live).entry(job).or_insert(0) += 1;
    }

    fn unregister(&self, job: JobId) {
        let mut live = lock(&self.live);
        if let Some(n) = live.get_mut(&job) {
            *n -= 1;
            if *n == 0 {
                live.remove(&job);
            }
        }
    }

    /// Task states no older than `not_before` covering `mine`: the cached answer when it
    /// qualifies, else one `squeue` for every live job of the executor.
    async fn snapshot(
        &self,
        client: &dyn SlurmClient,
        mine: &BTreeSet<JobId>,
        not_before: Instant,
    ) -> Result<Arc<Snapshot>, SlurmError> {
        let mut cached = self.snapshot.lock().await;
        if let Some(s) = cached.as_ref() {
            if s.taken >= not_before && mine.is_subset(&s.queried) {
                return Ok(s.clone());
            }
        }
        let mut jobs: BTreeSet<JobId> = lock(&self.live).keys().copied().collect();
        jobs.extend(mine.iter().copied());
        let jobs: Vec<JobId> = jobs.into_iter().collect();
        let taken = Instant::now();
        let statuses = client.queue(&jobs).await?;
        let snap = Arc::new(Snapshot {
            taken,
            queried: jobs.into_iter().collect(),
            tasks: statuses.into_iter().map(|s| ((s.job, s.task), s)).collect(),
        });
        *cached = Some(snap.clone());
        Ok(snap)
    }

    async fn max_array_size(&self, client: &dyn SlurmClient) -> u64 {
        *self
            .max_array
            .get_or_init(|| async {
                match client.max_array_size().await {
                    Ok(n) if n > 0 => n,
                    Ok(_) => DEFAULT_MAX_ARRAY_SIZE,
                    Err(e) => {
                        tracing::warn!(
                            "could not read MaxArraySize ({e}); assuming {DEFAULT_MAX_ARRAY_SIZE}"
                        );
                        DEFAULT_MAX_ARRAY_SIZE
                    }
                }
            })
            .await
    }

    async fn cancel_orphans(&self, client: &dyn SlurmClient) {
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
impl Executor for SlurmExecutor {
    fn name(&self) -> &'static str {
        "slurm"
    }

    async fn evaluate(&self, job: TrialJob, sink: &dyn ChunkSink) -> Result<(), ExecError> {
        if let Some(e) = &self.config_error {
            return Err(ExecError::Fatal(CoreError::Executor {
                executor: "slurm",
                source: e.clone().into(),
            }));
        }
        if self.shared.shut_down.load(Ordering::SeqCst) {
            return Err(ExecError::Fatal(CoreError::Cancelled));
        }
        if job.chunks.is_empty() {
            return Ok(());
        }
        let mut run = TrialRun::prepare(self, &job).map_err(|e| ExecError::Fatal(e.into()))?;
        run.go(sink).await
    }

    async fn shutdown(&self, keep_jobs: bool) -> Result<(), CoreError> {
        self.shared.keep_jobs.store(keep_jobs, Ordering::SeqCst);
        self.shared.shut_down.store(true, Ordering::SeqCst);
        if keep_jobs {
            lock(&self.shared.orphans).clear();
            return Ok(());
        }
        let jobs: Vec<TaskRef> = lock(&self.shared.live)
            .keys()
            .map(|&job| TaskRef { job, task: None })
            .collect();
        lock(&self.shared.orphans).extend(jobs);
        self.shared.cancel_orphans(self.client.as_ref()).await;
        Ok(())
    }
}

/// A chunk's place in its trial's evaluation.
enum SlotState {
    /// Not submitted (first attempt, retry, or waiting for a permit).
    Waiting,
    /// A task of a submitted array.
    Submitted {
        task: TaskRef,
        since: Instant,
        _permit: Option<OwnedSemaphorePermit>,
    },
    /// Delivered to the sink.
    Done,
}

struct Slot {
    state: SlotState,
    /// Submissions so far.
    submissions: u32,
}

/// Why a chunk attempt failed.
#[derive(Clone, Debug)]
struct ChunkFailure {
    chunk: ChunkIndex,
    state: Option<String>,
    reason: String,
}

/// The evaluation of one trial.
struct TrialRun {
    cfg: Arc<SlurmConfig>,
    client: Arc<dyn SlurmClient>,
    shared: Arc<Shared>,
    job: TrialJob,
    files: TrialFiles,
    task_key: String,
    slots: BTreeMap<ChunkIndex, Slot>,
    registered: BTreeSet<JobId>,
    keys: BTreeMap<ChunkIndex, String>,
    trial_attempts: u32,
}

impl TrialRun {
    fn prepare(exec: &SlurmExecutor, job: &TrialJob) -> Result<Self, SlurmError> {
        let dir = match (&job.trial_dir, &exec.cfg.scratch_dir) {
            (Some(d), _) => d.clone(),
            (None, Some(s)) => scratch_trial_dir(s, job),
            (None, None) => return Err(SlurmError::NoTrialDir { trial: job.trial.0 }),
        };
        let dir =
            std::path::absolute(&dir).map_err(|e| SlurmError::io("cannot resolve", &dir, e))?;
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
            worker_parallelism: exec.cfg.worker_parallelism,
            chunks_dir: files.chunks_dir(),
        };
        let current: Option<TaskFile> = read_json(&files.task(), "task file").ok().flatten();
        if current.as_ref() != Some(&task) {
            write_json(&files.task(), &task)?;
        }
        if std::fs::read_to_string(files.script()).ok().as_deref() != Some(BATCH_SCRIPT) {
            write_atomic(&files.script(), BATCH_SCRIPT.as_bytes(), Some(0o755))?;
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
        let keys = job.chunks.iter().map(|&c| (c, job.chunk_key(c))).collect();
        Ok(TrialRun {
            cfg: exec.cfg.clone(),
            client: exec.client.clone(),
            shared: exec.shared.clone(),
            job: job.clone(),
            task_key: task_key(&task),
            files,
            slots,
            registered: BTreeSet::new(),
            keys,
            trial_attempts: 1,
        })
    }

    fn fatal(e: SlurmError) -> ExecError {
        ExecError::Fatal(e.into())
    }

    async fn go(&mut self, sink: &dyn ChunkSink) -> Result<(), ExecError> {
        self.deliver_stored(sink)?;
        self.adopt().await;
        // A recorded task that ended between the first look and the queue query has written
        // its result by now (results are written before a task exits): deliver it rather than
        // resubmitting its chunk.
        self.deliver_stored(sink)?;
        let check = self.cfg.result_check_interval.min(self.cfg.poll_interval);
        let mut last_poll = Instant::now();
        let mut queue_errors = 0u32;
        loop {
            if self.shared.shut_down.load(Ordering::SeqCst) {
                return Err(ExecError::Fatal(CoreError::Cancelled));
            }
            self.submit_waiting().await?;
            if self
                .slots
                .values()
                .all(|s| matches!(s.state, SlotState::Done))
            {
                return Ok(());
            }
            tokio::time::sleep(check).await;
            self.deliver_stored(sink)?;
            let mut failures = Vec::new();
            if last_poll.elapsed() >= self.cfg.poll_interval {
                let mine: BTreeSet<JobId> = self.submitted().map(|(_, t, _)| t.job).collect();
                if !mine.is_empty() {
                    match self
                        .shared
                        .snapshot(self.client.as_ref(), &mine, last_poll)
                        .await
                    {
                        Ok(snap) => {
                            queue_errors = 0;
                            last_poll = Instant::now();
                            // Results written before a task left the queue are visible now.
                            self.deliver_stored(sink)?;
                            failures.extend(self.failures_from(&snap).await);
                        }
                        Err(e) => {
                            queue_errors += 1;
                            tracing::warn!("squeue failed ({queue_errors} in a row): {e}");
                            if queue_errors >= MAX_QUEUE_ERRORS {
                                return Err(Self::fatal(e));
                            }
                        }
                    }
                } else {
                    last_poll = Instant::now();
                }
            }
            failures.extend(self.timeouts());
            if !failures.is_empty() {
                self.handle_failures(failures).await?;
            }
            self.release_finished_jobs();
        }
    }

    fn submitted(&self) -> impl Iterator<Item = (ChunkIndex, TaskRef, Instant)> + '_ {
        self.slots.iter().filter_map(|(&c, s)| match &s.state {
            SlotState::Submitted { task, since, .. } => Some((c, *task, *since)),
            _ => None,
        })
    }

    fn n_seeds(&self, c: ChunkIndex) -> u64 {
        let r = self.job.layout.chunk_positions(c);
        r.end - r.start
    }

    /// Delivers every valid stored result of a chunk not yet delivered.
    fn deliver_stored(&mut self, sink: &dyn ChunkSink) -> Result<(), ExecError> {
        let dir = self.files.chunks_dir();
        let present: BTreeSet<String> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => return Ok(()),
        };
        let ready: Vec<ChunkIndex> = self
            .slots
            .iter()
            .filter(|(c, s)| {
                !matches!(s.state, SlotState::Done)
                    && present.contains(&format!("chunk_{:05}.json", c.0))
            })
            .map(|(&c, _)| c)
            .collect();
        for c in ready {
            let Some(result) = load_chunk(&dir, c, &self.keys[&c], self.n_seeds(c)) else {
                continue;
            };
            sink.chunk_done(self.job.trial, c, result)?;
            if let Some(slot) = self.slots.get_mut(&c) {
                slot.state = SlotState::Done;
            }
        }
        Ok(())
    }

    /// Re-adopts still-live tasks recorded by an earlier controller for the same task file.
    async fn adopt(&mut self) {
        let mut recorded: JobsFile = match read_json(&self.files.jobs(), "job record") {
            Ok(Some(j)) => j,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("ignoring the job record: {e}");
                return;
            }
        };
        // Submissions an earlier controller did not live to record: find them by their name.
        let pending: Vec<PendingRecord> = recorded
            .pending
            .iter()
            .filter(|p| p.task_key == self.task_key)
            .cloned()
            .collect();
        for p in &pending {
            match self.client.find(&p.name).await {
                Ok(ids) => {
                    for &job in &ids {
                        tracing::info!(
                            "trial {}: found job {job} ({}), submitted but not recorded",
                            self.job.trial,
                            p.name
                        );
                        recorded.jobs.push(JobRecord {
                            job,
                            offset: p.offset,
                            chunks: p.chunks.clone(),
                            task_key: p.task_key.clone(),
                        });
                    }
                    recorded.pending.retain(|q| q.name != p.name);
                }
                Err(e) => tracing::warn!(
                    "trial {}: cannot look for job {} ({e}); its chunks may run twice",
                    self.job.trial,
                    p.name
                ),
            }
        }
        if !pending.is_empty() {
            if let Err(e) = write_json(&self.files.jobs(), &recorded) {
                tracing::warn!(
                    "trial {}: cannot update the job record: {e}",
                    self.job.trial
                );
            }
        }
        let records: Vec<JobRecord> = recorded
            .jobs
            .into_iter()
            .filter(|r| r.task_key == self.task_key)
            .collect();
        if records.is_empty() {
            return;
        }
        let ids: Vec<JobId> = records.iter().map(|r| r.job).collect();
        let statuses = match self.client.queue(&ids).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(
                    "cannot ask Slurm about recorded jobs ({e}); resubmitting their chunks"
                );
                return;
            }
        };
        let now = Instant::now();
        for st in statuses {
            let (Some(task), true) = (st.task, st.state.is_active()) else {
                continue;
            };
            let Some(rec) = records.iter().find(|r| r.job == st.job) else {
                continue;
            };
            let c = ChunkIndex(task + rec.offset);
            if !rec.chunks.contains(&c) {
                continue;
            }
            let permit = self
                .shared
                .limit
                .as_ref()
                .and_then(|s| s.clone().try_acquire_owned().ok());
            if let Some(slot) = self.slots.get_mut(&c) {
                if matches!(slot.state, SlotState::Waiting) {
                    slot.state = SlotState::Submitted {
                        task: TaskRef {
                            job: st.job,
                            task: Some(task),
                        },
                        since: now,
                        _permit: permit,
                    };
                    slot.submissions += 1;
                    if self.registered.insert(st.job) {
                        self.shared.register(st.job);
                    }
                    tracing::info!(
                        "trial {}: re-adopted chunk {c} (task {}_{task})",
                        self.job.trial,
                        st.job
                    );
                }
            }
        }
    }

    /// Submits the waiting chunks that can get a permit, as one array (split at MaxArraySize).
    async fn submit_waiting(&mut self) -> Result<(), ExecError> {
        let waiting: Vec<ChunkIndex> = self
            .slots
            .iter()
            .filter(|(_, s)| matches!(s.state, SlotState::Waiting))
            .map(|(&c, _)| c)
            .collect();
        if waiting.is_empty() {
            return Ok(());
        }
        let mut permits: Vec<Option<OwnedSemaphorePermit>> = Vec::new();
        match &self.shared.limit {
            None => permits.resize_with(waiting.len(), || None),
            Some(sem) => {
                while permits.len() < waiting.len() {
                    match sem.clone().try_acquire_owned() {
                        Ok(p) => permits.push(Some(p)),
                        Err(_) => break,
                    }
                }
                if permits.is_empty() {
                    if self.submitted().next().is_some() {
                        return Ok(()); // our own tasks will free permits
                    }
                    let p = sem
                        .clone()
                        .acquire_owned()
                        .await
                        .map_err(|_| ExecError::Fatal(CoreError::Cancelled))?;
                    permits.push(Some(p));
                }
            }
        }
        let chosen = &waiting[..permits.len()];
        let max = self.shared.max_array_size(self.client.as_ref()).await;
        let mut groups: BTreeMap<u64, Vec<ChunkIndex>> = BTreeMap::new();
        for &c in chosen {
            groups.entry(c.0 / max * max).or_default().push(c);
        }
        let mut permits = permits.into_iter();
        for (offset, chunks) in groups {
            let job = self.submit_array(offset, &chunks).await?;
            let now = Instant::now();
            for c in chunks {
                if let Some(slot) = self.slots.get_mut(&c) {
                    slot.state = SlotState::Submitted {
                        task: TaskRef {
                            job,
                            task: Some(c.0 - offset),
                        },
                        since: now,
                        _permit: permits.next().flatten(),
                    };
                    slot.submissions += 1;
                }
            }
        }
        Ok(())
    }

    /// The trial's job record (empty if there is none or it cannot be read).
    fn jobs_file(&self) -> JobsFile {
        read_json(&self.files.jobs(), "job record")
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Drops the pending record of a submission that did not happen.
    fn forget_pending(&self, name: &str) {
        let mut record = self.jobs_file();
        record.pending.retain(|p| p.name != name);
        if let Err(e) = write_json(&self.files.jobs(), &record) {
            tracing::warn!(
                "trial {}: cannot update the job record: {e}",
                self.job.trial
            );
        }
    }

    /// `<prefix>-<loss>[-<entry>]-t<trial>`, with every character outside `[A-Za-z0-9_.-]`
    /// replaced (a job name is also a `squeue --name` argument, where a comma separates names).
    fn job_name(&self) -> String {
        let clean = |s: &str, max: usize| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                        c
                    } else {
                        '_'
                    }
                })
                .take(max)
                .collect()
        };
        // The prefix is checked by `SlurmConfig::validate`.
        let mut name = format!(
            "{}-{}",
            self.cfg.job_name_prefix,
            clean(&self.job.loss_name, 40)
        );
        if let Some(e) = &self.job.entry_id {
            name.push('-');
            name.push_str(&clean(e, 40));
        }
        name.push_str(&format!("-t{}", self.job.trial.0));
        name
    }

    async fn submit_array(
        &mut self,
        offset: u64,
        chunks: &[ChunkIndex],
    ) -> Result<JobId, ExecError> {
        let cfg = &self.cfg;
        let mut script_args: Vec<OsString> = vec![
            self.files.task().into_os_string(),
            std::path::absolute(&cfg.program)
                .unwrap_or_else(|_| cfg.program.clone())
                .into_os_string(),
        ];
        script_args.extend(cfg.args.iter().cloned());
        // A name unique to this submission, recorded before sbatch runs (see `PendingRecord`).
        let name = format!("{}-{}", self.job_name(), submission_token());
        let req = SubmitRequest {
            script: self.files.script(),
            script_args,
            array: chunks.iter().map(|c| c.0 - offset).collect(),
            array_limit: cfg.array_parallelism_limit,
            job_name: name.clone(),
            chdir: std::path::absolute(&cfg.cwd).unwrap_or_else(|_| cfg.cwd.clone()),
            output: self.files.logs_dir().join("chunk_%A_%a.out"),
            error: self.files.logs_dir().join("chunk_%A_%a.err"),
            cpus_per_task: cfg.cpus_per_task,
            mem_per_cpu: cfg.mem_per_cpu.clone(),
            time_limit: cfg.time_limit,
            qos: cfg.qos.clone(),
            account: cfg.account.clone(),
            partition: cfg.partition.clone(),
            gres: cfg.gres.clone(),
            constraint: cfg.constraint.clone(),
            env: if offset > 0 {
                vec![(CHUNK_OFFSET_ENV.to_string(), offset.to_string())]
            } else {
                Vec::new()
            },
            extra_args: cfg.extra_sbatch_args.clone(),
        };
        // A failure record of an earlier attempt must not be blamed on this one.
        for &c in chunks {
            let _ = std::fs::remove_file(failure_path(&self.files.chunks_dir(), c));
        }
        let mut record = self.jobs_file();
        record.pending.push(PendingRecord {
            name: name.clone(),
            offset,
            chunks: chunks.to_vec(),
            task_key: self.task_key.clone(),
        });
        write_json(&self.files.jobs(), &record).map_err(Self::fatal)?;
        let started = Instant::now();
        let mut backoff = Duration::from_secs(1);
        let mut other_errors = 0;
        let job = loop {
            match self.client.submit(&req).await {
                Ok(job) => break job,
                Err(SlurmError::SubmitLimit { stderr })
                    if started.elapsed() < cfg.attempt_timeout =>
                {
                    tracing::warn!(
                        "trial {}: sbatch refused ({stderr}); retrying in {backoff:?}",
                        self.job.trial
                    );
                }
                Err(e @ (SlurmError::Failed { .. } | SlurmError::Parse { .. }))
                    if other_errors < 2 =>
                {
                    other_errors += 1;
                    tracing::warn!(
                        "trial {}: sbatch failed ({e}); retrying in {backoff:?}",
                        self.job.trial
                    );
                }
                Err(e) => {
                    self.forget_pending(&name);
                    return Err(Self::fatal(e));
                }
            }
            if self.shared.shut_down.load(Ordering::SeqCst) {
                self.forget_pending(&name);
                return Err(ExecError::Fatal(CoreError::Cancelled));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_SUBMIT_BACKOFF);
        };
        if self.registered.insert(job) {
            self.shared.register(job);
        }
        let mut record = self.jobs_file();
        record.pending.retain(|p| p.name != name);
        record.jobs.push(JobRecord {
            job,
            offset,
            chunks: chunks.to_vec(),
            task_key: self.task_key.clone(),
        });
        write_json(&self.files.jobs(), &record).map_err(Self::fatal)?;
        tracing::debug!(
            "trial {}: submitted job {job} for chunks {chunks:?}",
            self.job.trial
        );
        Ok(job)
    }

    /// Failed, vanished or result-less finished tasks, according to `snap`.
    async fn failures_from(&mut self, snap: &Snapshot) -> Vec<ChunkFailure> {
        let mut out = Vec::new();
        let subs: Vec<(ChunkIndex, TaskRef)> = self.submitted().map(|(c, t, _)| (c, t)).collect();
        for (c, t) in subs {
            let status = snap.tasks.get(&(t.job, t.task));
            let (state, detail) = match status {
                Some(s) if s.state.is_active() => continue,
                Some(s) => (Some(s.state.clone()), s.detail.clone()),
                None => {
                    let acct = match self.client.accounting(&[t.job]).await {
                        Ok(Some(list)) => list.into_iter().find(|s| s.task == t.task),
                        _ => None,
                    };
                    match acct {
                        Some(s) if s.state.is_active() => continue,
                        Some(s) => (Some(s.state), s.detail),
                        None => (None, None),
                    }
                }
            };
            out.push(self.describe_failure(c, t, state, detail, None));
        }
        out
    }

    fn describe_failure(
        &self,
        c: ChunkIndex,
        t: TaskRef,
        state: Option<JobState>,
        detail: Option<String>,
        what: Option<String>,
    ) -> ChunkFailure {
        let what = what.unwrap_or_else(|| match &state {
            Some(JobState::Completed) => "finished without writing a result".to_string(),
            Some(s) => format!(
                "ended {s}{}",
                detail
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            ),
            None => "left the queue without writing a result".to_string(),
        });
        let mut reason = format!("chunk {c}: Slurm task {t} {what}");
        if let Some(f) = load_failure(&self.files.chunks_dir(), c, &self.keys[&c]) {
            reason.push_str(&format!("; {f}"));
        }
        if let Some(task) = t.task {
            if let Some(err) = tail(&self.files.stderr_log(t.job, task), 12) {
                reason.push_str(&format!("\n--- stderr of task {t} (tail)\n{err}"));
            }
        }
        ChunkFailure {
            chunk: c,
            state: Some(
                state
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "VANISHED".to_string()),
            ),
            reason,
        }
    }

    fn timeouts(&self) -> Vec<ChunkFailure> {
        self.submitted()
            .filter(|(_, _, since)| since.elapsed() >= self.cfg.attempt_timeout)
            .map(|(c, t, _)| {
                let mut f = self.describe_failure(
                    c,
                    t,
                    None,
                    None,
                    Some(format!(
                        "did not finish within the attempt timeout of {:?} (queue time counts); cancelled",
                        self.cfg.attempt_timeout
                    )),
                );
                f.state = Some(ATTEMPT_TIMEOUT.to_string());
                f
            })
            .collect()
    }

    async fn cancel_slots(&mut self, chunks: &[ChunkIndex]) {
        let mut targets = Vec::new();
        for c in chunks {
            if let Some(slot) = self.slots.get_mut(c) {
                if let SlotState::Submitted { task, .. } = slot.state {
                    targets.push(task);
                    slot.state = SlotState::Waiting;
                }
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

    async fn handle_failures(&mut self, failures: Vec<ChunkFailure>) -> Result<(), ExecError> {
        let retries = self.cfg.trial_retry_attempts;
        // Tasks past the attempt timeout are still in the queue: cancel them. The others ended.
        let (queued, ended): (Vec<&ChunkFailure>, Vec<&ChunkFailure>) = failures
            .iter()
            .partition(|f| f.state.as_deref() == Some(ATTEMPT_TIMEOUT));
        self.cancel_slots(&queued.iter().map(|f| f.chunk).collect::<Vec<_>>())
            .await;
        for f in ended {
            if let Some(slot) = self.slots.get_mut(&f.chunk) {
                slot.state = SlotState::Waiting;
            }
        }
        let trial = self.job.trial;
        let give_up = |attempts: u32, f: &ChunkFailure| {
            ExecError::Trial(TrialFailure {
                reason: format!(
                    "trial {} failed after {attempts} attempt{}: {}",
                    trial,
                    if attempts == 1 { "" } else { "s" },
                    f.reason
                ),
                chunk: Some(f.chunk),
                state: f.state.clone(),
            })
        };
        if self.cfg.fail_on_chunk_error {
            let others: Vec<ChunkIndex> = self.submitted().map(|(c, _, _)| c).collect();
            self.cancel_slots(&others).await;
            let first = &failures[0];
            if self.trial_attempts > retries {
                return Err(give_up(self.trial_attempts, first));
            }
            tracing::warn!(
                "trial {}: attempt {} failed ({}); retrying the missing chunks",
                self.job.trial,
                self.trial_attempts,
                first.reason
            );
            self.trial_attempts += 1;
        } else {
            for f in &failures {
                let submissions = self.slots.get(&f.chunk).map_or(0, |s| s.submissions);
                if submissions > retries {
                    let others: Vec<ChunkIndex> = self.submitted().map(|(c, _, _)| c).collect();
                    self.cancel_slots(&others).await;
                    return Err(give_up(submissions, f));
                }
                tracing::warn!(
                    "trial {}: {}; retrying this chunk",
                    self.job.trial,
                    f.reason
                );
            }
        }
        Ok(())
    }

    /// Unregisters jobs none of our chunks waits for any more.
    fn release_finished_jobs(&mut self) {
        let still: BTreeSet<JobId> = self.submitted().map(|(_, t, _)| t.job).collect();
        let gone: Vec<JobId> = self.registered.difference(&still).copied().collect();
        for j in gone {
            self.registered.remove(&j);
            self.shared.unregister(j);
        }
    }
}

impl Drop for TrialRun {
    fn drop(&mut self) {
        let targets: Vec<TaskRef> = self.submitted().map(|(_, t, _)| t).collect();
        for j in std::mem::take(&mut self.registered) {
            self.shared.unregister(j);
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

/// The directory the executor uses for a trial without `trial_dir` (for tests and tools).
pub fn scratch_trial_dir(scratch: &std::path::Path, job: &TrialJob) -> PathBuf {
    let entry = job
        .entry_id
        .as_deref()
        .map(|e| format!("entry_{}", slurptuna_core::fingerprint_hex(e.as_bytes())))
        .unwrap_or_else(|| "run".to_string());
    scratch
        .join(&job.loss_name)
        .join(entry)
        .join(format!("trial_{:05}", job.trial.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::MockSlurmClient;
    use crate::files::{chunk_path, ChunkFile};
    use slurptuna_core::{ChunkResult, Params, SeedLayout, SeedSpec, SeedStats, TrialNumber};

    #[derive(Default)]
    struct Sink(Mutex<Vec<ChunkIndex>>);
    impl ChunkSink for Sink {
        fn chunk_done(
            &self,
            _: TrialNumber,
            c: ChunkIndex,
            _: slurptuna_core::ChunkResult,
        ) -> Result<(), CoreError> {
            lock(&self.0).push(c);
            Ok(())
        }
    }

    fn job(dir: Option<&std::path::Path>) -> TrialJob {
        let layout = Arc::new(
            SeedLayout::resolve(
                &SeedSpec {
                    n_seeds: Some(6),
                    chunk_size: Some(2),
                    ..Default::default()
                },
                0,
            )
            .unwrap(),
        );
        TrialJob {
            loss_name: "unit".into(),
            entry_id: None,
            trial: TrialNumber(2),
            params: [("x", 0.5)].into_iter().collect::<Params>(),
            chunks: layout.chunks().collect(),
            layout,
            trial_dir: dir.map(|d| d.join("trial_00002")),
            keep_seed_values: false,
        }
    }

    fn cfg(dir: &std::path::Path) -> SlurmConfig {
        SlurmConfig {
            program: "/bin/true".into(),
            cwd: dir.to_path_buf(),
            poll_interval: Duration::from_millis(20),
            result_check_interval: Duration::from_millis(5),
            ..Default::default()
        }
    }

    fn write_result(j: &TrialJob, c: ChunkIndex) {
        let dir = j.trial_dir.as_ref().unwrap().join("chunks");
        std::fs::create_dir_all(&dir).unwrap();
        let f = ChunkFile {
            format: FORMAT,
            chunk: c,
            key: j.chunk_key(c),
            result: ChunkResult {
                stats: SeedStats::from_values(&[1.0, 2.0]),
                values: None,
            },
        };
        write_json(&chunk_path(&dir, c), &f).unwrap();
    }

    fn fatal_message(r: Result<(), ExecError>) -> String {
        match r {
            Err(ExecError::Fatal(e)) => {
                let mut s = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(x) = src {
                    s.push_str(": ");
                    s.push_str(&x.to_string());
                    src = x.source();
                }
                s
            }
            other => panic!("expected a fatal error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn nothing_to_do_makes_no_slurm_call() {
        let d = tempfile::tempdir().unwrap();
        let exec = SlurmExecutor::new(cfg(d.path()), Arc::new(MockSlurmClient::new()));
        let mut j = job(Some(d.path()));
        j.chunks.clear();
        exec.evaluate(j, &Sink::default()).await.unwrap();
    }

    #[tokio::test]
    async fn an_invalid_config_or_a_missing_directory_is_fatal() {
        let d = tempfile::tempdir().unwrap();
        let bad = SlurmConfig {
            mem_per_cpu: "much".into(),
            ..cfg(d.path())
        };
        let exec = SlurmExecutor::new(bad, Arc::new(MockSlurmClient::new()));
        let m = fatal_message(exec.evaluate(job(Some(d.path())), &Sink::default()).await);
        assert!(m.contains("mem_per_cpu"), "{m}");
        let exec = SlurmExecutor::new(cfg(d.path()), Arc::new(MockSlurmClient::new()));
        let m = fatal_message(exec.evaluate(job(None), &Sink::default()).await);
        assert!(m.contains("scratch_dir"), "{m}");
    }

    #[tokio::test]
    async fn stored_results_are_delivered_without_submitting() {
        let d = tempfile::tempdir().unwrap();
        let j = job(Some(d.path()));
        for c in j.layout.chunks() {
            write_result(&j, c);
        }
        let mut mock = MockSlurmClient::new();
        mock.expect_submit().never();
        let exec = SlurmExecutor::new(cfg(d.path()), Arc::new(mock));
        let sink = Sink::default();
        exec.evaluate(j, &sink).await.unwrap();
        assert_eq!(lock(&sink.0).len(), 3);
    }

    #[tokio::test]
    async fn a_stale_result_is_recomputed_and_results_landing_later_are_delivered() {
        let d = tempfile::tempdir().unwrap();
        let j = job(Some(d.path()));
        write_result(&j, ChunkIndex(0));
        // A result of other params for chunk 1: its key differs, it must not be used.
        let mut other = j.clone();
        other.params.insert("x", 0.9);
        write_result(&other, ChunkIndex(1));
        let mut mock = MockSlurmClient::new();
        mock.expect_max_array_size().returning(|| Ok(1001));
        let jj = j.clone();
        mock.expect_submit().times(1).returning(move |req| {
            assert_eq!(req.array, vec![1, 2]);
            for &t in &req.array {
                write_result(&jj, ChunkIndex(t));
            }
            Ok(JobId(77))
        });
        mock.expect_queue().returning(|jobs| {
            Ok(jobs
                .iter()
                .flat_map(|&job| {
                    [1, 2].map(|t| TaskStatus {
                        job,
                        task: Some(t),
                        state: JobState::Completed,
                        detail: None,
                    })
                })
                .collect())
        });
        let exec = SlurmExecutor::new(cfg(d.path()), Arc::new(mock));
        let sink = Sink::default();
        exec.evaluate(j.clone(), &sink).await.unwrap();
        let mut got = lock(&sink.0).clone();
        got.sort();
        assert_eq!(got, vec![ChunkIndex(0), ChunkIndex(1), ChunkIndex(2)]);
        let rec: JobsFile = read_json(&j.trial_dir.unwrap().join("jobs.json"), "job record")
            .unwrap()
            .unwrap();
        assert_eq!(rec.jobs[0].job, JobId(77));
        assert_eq!(rec.jobs[0].chunks, vec![ChunkIndex(1), ChunkIndex(2)]);
    }

    #[tokio::test]
    async fn squeue_failing_again_and_again_stops_the_run() {
        let d = tempfile::tempdir().unwrap();
        let mut mock = MockSlurmClient::new();
        mock.expect_max_array_size().returning(|| Ok(1001));
        mock.expect_submit().returning(|_| Ok(JobId(5)));
        mock.expect_queue()
            .times(MAX_QUEUE_ERRORS as usize)
            .returning(|_| {
                Err(SlurmError::Parse {
                    command: "squeue",
                    reason: "controller unreachable".into(),
                    output: String::new(),
                })
            });
        mock.expect_cancel().returning(|_| Ok(()));
        let exec = SlurmExecutor::new(cfg(d.path()), Arc::new(mock));
        let m = fatal_message(exec.evaluate(job(Some(d.path())), &Sink::default()).await);
        assert!(m.contains("controller unreachable"), "{m}");
    }

    #[tokio::test]
    async fn sbatch_missing_is_fatal_and_names_the_command() {
        let d = tempfile::tempdir().unwrap();
        let mut mock = MockSlurmClient::new();
        mock.expect_max_array_size().returning(|| Ok(1001));
        mock.expect_submit().times(1).returning(|_| {
            Err(SlurmError::Spawn {
                program: "sbatch".into(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            })
        });
        let exec = SlurmExecutor::new(cfg(d.path()), Arc::new(mock));
        let m = fatal_message(exec.evaluate(job(Some(d.path())), &Sink::default()).await);
        assert!(m.contains("could not run `sbatch`"), "{m}");
    }
}
