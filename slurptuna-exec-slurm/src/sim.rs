//! `SimSlurm`: a [`SlurmClient`] that models a whole cluster in tokio's clock, for the scale
//! bench (`cargo xtask bench scale`).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use slurptuna_core::batch::{
    run_batch_worker_with, task_layout, JobId, TaskRef, CHUNK_OFFSET_ENV, TASK_FILE_ENV,
};
use slurptuna_core::ChunkIndex;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::adapter::SLURM_TASK_INDEX_ENV;
use crate::client::{JobState, SlurmClient, SlurmTaskStatus, SubmitLimits, SubmitRequest};
use crate::error::SlurmError;

/// The cluster a [`SimSlurm`] models. Times are in tokio's clock: under a paused runtime
/// (`tokio::time::pause`) hours of cluster time pass in seconds.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// CPUs of the whole cluster; a task holds its `--cpus-per-task` while it runs.
    pub cpus: u64,
    /// CPU time one seed of the loss costs: a task computes `seeds × seed_cost / cpus-per-task`.
    pub seed_cost: Duration,
    /// A task's compute time varies by up to this fraction either way (uniformly).
    pub duration_jitter: f64,
    /// From submission to the earliest start of a task, drawn uniformly in this range.
    pub start_latency: (Duration, Duration),
    /// `MaxJobCount`: tasks in slurmctld's table, finished ones included until `min_job_age`.
    pub max_job_count: u64,
    /// `MaxArraySize`.
    pub max_array_size: u64,
    /// The association's `MaxSubmitJobs` (pending and running tasks of the user), if any.
    pub max_submit_jobs: Option<u64>,
    /// Whether `sacctmgr`/`scontrol` report the limits (`false`: they must be learned from
    /// refusals).
    pub report_limits: bool,
    /// `MinJobAge`: how long a finished task stays listed by `squeue`.
    pub min_job_age: Duration,
    /// Whether `sacct` answers (accounting enabled).
    pub accounting: bool,
    /// slurmctld's per-user RPC rate limit: a bucket of this many tokens...
    pub rpc_bucket: u32,
    /// ...refilled at this many per second; a call finding it empty is refused.
    pub rpc_refill_per_second: f64,
    /// Probability that a call fails with a socket timeout (for `sbatch`, half of those were
    /// accepted all the same).
    pub socket_timeout_rate: f64,
    /// Probability that a task's run is preempted (requeued: it runs again from the start).
    pub preempt_rate: f64,
    /// Probability that a task's node fails under it (requeued, as `JobRequeue=1` does).
    pub node_fail_rate: f64,
    /// `MaxBatchRequeue`: a task requeued more often ends `NODE_FAIL`.
    pub max_batch_requeue: u32,
    /// Seed of the cluster's random draws.
    pub seed: u64,
}

impl Default for SimConfig {
    /// Slurm's defaults (`MaxJobCount` 10,000, `MaxArraySize` 1001, `MinJobAge` 300 s, a bucket
    /// of 30 RPCs refilled at 2 per second, `MaxBatchRequeue` 5) on 400 CPUs, 1–10 s start
    /// latency, no faults.
    fn default() -> Self {
        SimConfig {
            cpus: 400,
            seed_cost: Duration::from_micros(800),
            duration_jitter: 0.05,
            start_latency: (Duration::from_secs(1), Duration::from_secs(10)),
            max_job_count: 10_000,
            max_array_size: 1001,
            max_submit_jobs: None,
            report_limits: true,
            min_job_age: Duration::from_secs(300),
            accounting: true,
            rpc_bucket: 30,
            rpc_refill_per_second: 2.0,
            socket_timeout_rate: 0.0,
            preempt_rate: 0.0,
            node_fail_rate: 0.0,
            max_batch_requeue: 5,
            seed: 1,
        }
    }
}

/// What a [`SimSlurm`] counted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimStats {
    /// Calls by command (`sbatch`, `squeue`, `sacct`, `scancel`, `scontrol`, `sacctmgr`,
    /// `sbatch --test-only`), refused ones included.
    pub rpcs: BTreeMap<&'static str, u64>,
    /// Calls refused by the RPC rate limit.
    pub rate_limited: u64,
    /// Calls failed with an injected socket timeout.
    pub socket_timeouts: u64,
    /// `sbatch` calls refused for `MaxJobCount` or `MaxSubmitJobs`.
    pub submit_refusals: u64,
    /// Arrays accepted.
    pub arrays: u64,
    /// Tasks accepted.
    pub tasks: u64,
    /// Most pending or running tasks at once.
    pub peak_live: u64,
    /// Most tasks in the job table at once (finished ones until purged).
    pub peak_table: u64,
    /// Preemptions and node failures injected (each requeued the task).
    pub requeues: u64,
    /// Tasks that ran their chunk to the end.
    pub completed: u64,
    /// Completed runs of a chunk that had completed before (wasted compute).
    pub duplicate_chunks: u64,
    /// Tasks cancelled by `scancel`.
    pub cancelled: u64,
    /// CPU-seconds of runs that completed.
    pub useful_cpu_seconds: f64,
    /// CPU-seconds of every run, cut short or not.
    pub busy_cpu_seconds: f64,
    /// This process's CPU time spent inside the simulation (its bookkeeping and the workers it
    /// ran), to tell the controller's own CPU time from the total.
    pub sim_cpu: Duration,
}

impl SimStats {
    /// Every call, refused or not.
    pub fn total_rpcs(&self) -> u64 {
        self.rpcs.values().sum()
    }
}

#[derive(Clone, Debug)]
enum SimTaskState {
    Pending,
    Running {
        started: Instant,
        cpus: u64,
        run: u64,
    },
    Ended {
        state: JobState,
    },
}

struct SimTask {
    state: SimTaskState,
    restarts: u32,
    purged: bool,
}

struct SimJob {
    task_file: PathBuf,
    offset: u64,
    cpus: u64,
    time_limit: Duration,
    tasks: BTreeMap<u64, SimTask>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// The task may start (its latency has passed).
    Eligible,
    /// Run `run` of the task ends: completes, or is cut short by `Requeue`.
    End { run: u64, requeue: bool },
    /// The finished task leaves `squeue`.
    Purge,
}

/// An event at an instant: (when, order of scheduling, job, task, what).
type Due = (Instant, u64, JobId, u64, Event);

struct State {
    config: SimConfig,
    rng: u64,
    next_job: u64,
    next_run: u64,
    jobs: HashMap<JobId, SimJob>,
    by_name: HashMap<String, Vec<JobId>>,
    events: BinaryHeap<Reverse<Due>>,
    seq: u64,
    ready: VecDeque<(JobId, u64)>,
    free_cpus: u64,
    live: u64,
    table: u64,
    tokens: f64,
    refilled: Instant,
    done_chunks: HashMap<(PathBuf, u64), u32>,
    layouts: HashMap<PathBuf, slurptuna_core::SeedLayout>,
    stats: SimStats,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl State {
    /// A uniform draw in [0, 1) (splitmix64).
    fn uniform(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn push(&mut self, at: Instant, job: JobId, task: u64, event: Event) {
        self.seq += 1;
        self.events.push(Reverse((at, self.seq, job, task, event)));
    }

    /// Counts a call of `command` and applies the rate limit and injected timeouts.
    fn rpc(&mut self, command: &'static str) -> Result<(), SlurmError> {
        *self.stats.rpcs.entry(command).or_insert(0) += 1;
        let now = Instant::now();
        let refill = now.duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + refill * self.config.rpc_refill_per_second)
            .min(f64::from(self.config.rpc_bucket));
        if self.tokens < 1.0 {
            self.stats.rate_limited += 1;
            return Err(failed(command, "RPC rate limit exceeded, try again later"));
        }
        self.tokens -= 1.0;
        if self.uniform() < self.config.socket_timeout_rate {
            self.stats.socket_timeouts += 1;
            return Err(failed(command, "Socket timed out on send/recv operation"));
        }
        Ok(())
    }

    fn layout(&mut self, task_file: &PathBuf) -> Option<slurptuna_core::SeedLayout> {
        if let Some(l) = self.layouts.get(task_file) {
            return Some(l.clone());
        }
        let l = task_layout(task_file).ok()?;
        self.layouts.insert(task_file.clone(), l.clone());
        Some(l)
    }

    fn accept(&mut self, req: &SubmitRequest) -> Result<JobId, SlurmError> {
        let sub = &req.submission;
        let n = sub.array.len() as u64;
        if sub.array.is_empty() || sub.array.iter().any(|&t| t >= self.config.max_array_size) {
            return Err(SlurmError::Parse {
                command: "sbatch",
                reason: "Invalid job array specification".into(),
                output: String::new(),
            });
        }
        if self.table + n > self.config.max_job_count {
            self.stats.submit_refusals += 1;
            return Err(SlurmError::SubmitLimit {
                stderr: "sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying\nsbatch: error: Batch job submission failed: Resource temporarily unavailable".into(),
            });
        }
        if self
            .config
            .max_submit_jobs
            .is_some_and(|m| self.live + n > m)
        {
            self.stats.submit_refusals += 1;
            return Err(SlurmError::SubmitLimit {
                stderr: "sbatch: error: AssocMaxSubmitJobLimit\nsbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)".into(),
            });
        }
        let task_file = PathBuf::from(sub.script_args.first().cloned().unwrap_or_default());
        let offset = sub
            .env
            .iter()
            .find(|(k, _)| k == CHUNK_OFFSET_ENV)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let job = JobId(self.next_job);
        self.next_job += 1;
        let now = Instant::now();
        let (lo, hi) = self.config.start_latency;
        let mut tasks = BTreeMap::new();
        for &t in &sub.array {
            let latency = lo + (hi.saturating_sub(lo)).mul_f64(self.uniform());
            self.push(now + latency, job, t, Event::Eligible);
            tasks.insert(
                t,
                SimTask {
                    state: SimTaskState::Pending,
                    restarts: 0,
                    purged: false,
                },
            );
        }
        self.jobs.insert(
            job,
            SimJob {
                task_file,
                offset,
                cpus: u64::from(req.resources.cpus_per_task.max(1)),
                time_limit: req.resources.time_limit,
                tasks,
            },
        );
        self.by_name
            .entry(sub.job_name.clone())
            .or_default()
            .push(job);
        self.live += n;
        self.table += n;
        self.stats.arrays += 1;
        self.stats.tasks += n;
        self.stats.peak_live = self.stats.peak_live.max(self.live);
        self.stats.peak_table = self.stats.peak_table.max(self.table);
        Ok(job)
    }

    /// Starts ready tasks on free CPUs, in submission order.
    fn schedule(&mut self) {
        let now = Instant::now();
        while let Some(&(job, t)) = self.ready.front() {
            let Some(j) = self.jobs.get(&job) else {
                self.ready.pop_front();
                continue;
            };
            let cpus = j.cpus.min(self.config.cpus);
            if !matches!(
                j.tasks.get(&t).map(|t| &t.state),
                Some(SimTaskState::Pending)
            ) {
                self.ready.pop_front();
                continue;
            }
            if self.free_cpus < cpus {
                break;
            }
            self.ready.pop_front();
            let (task_file, chunk, limit) = (j.task_file.clone(), j.offset + t, j.time_limit);
            let seeds = self
                .layout(&task_file)
                .map_or(1, |l| l.chunk_positions(ChunkIndex(chunk)).count() as u64);
            let jitter = 1.0 + self.config.duration_jitter * (2.0 * self.uniform() - 1.0);
            let compute = (self.config.seed_cost * seeds as u32)
                .div_f64(cpus as f64)
                .mul_f64(jitter.max(0.0));
            let fault = self.uniform();
            let cut = fault < self.config.preempt_rate + self.config.node_fail_rate;
            let length = if cut {
                compute.mul_f64(self.uniform())
            } else {
                compute
            };
            let length = length.min(limit.max(Duration::from_secs(1)));
            self.next_run += 1;
            let run = self.next_run;
            self.free_cpus -= cpus;
            if let Some(task) = self.jobs.get_mut(&job).and_then(|j| j.tasks.get_mut(&t)) {
                task.state = SimTaskState::Running {
                    started: now,
                    cpus,
                    run,
                };
            }
            self.push(now + length, job, t, Event::End { run, requeue: cut });
        }
    }

    fn end_task(&mut self, job: JobId, t: u64, state: JobState) {
        let now = Instant::now();
        let min_age = self.config.min_job_age;
        if let Some(task) = self.jobs.get_mut(&job).and_then(|j| j.tasks.get_mut(&t)) {
            if let SimTaskState::Running { cpus, .. } = task.state {
                self.free_cpus += cpus;
            }
            task.state = SimTaskState::Ended { state };
            self.live -= 1;
            self.push(now + min_age, job, t, Event::Purge);
        }
    }

    /// Runs one due event (a completing task runs its worker here).
    fn handle(&mut self, job: JobId, t: u64, event: Event) {
        match event {
            Event::Eligible => {
                let pending = self
                    .jobs
                    .get(&job)
                    .and_then(|j| j.tasks.get(&t))
                    .is_some_and(|x| matches!(x.state, SimTaskState::Pending));
                if pending {
                    self.ready.push_back((job, t));
                }
            }
            Event::End { run, requeue } => {
                let Some(j) = self.jobs.get(&job) else { return };
                let Some(task) = j.tasks.get(&t) else { return };
                let SimTaskState::Running {
                    started,
                    cpus,
                    run: current,
                } = task.state
                else {
                    return;
                };
                if current != run {
                    return;
                }
                let ran = Instant::now().duration_since(started).as_secs_f64() * cpus as f64;
                self.stats.busy_cpu_seconds += ran;
                if requeue {
                    self.requeue(job, t, cpus);
                    return;
                }
                let (task_file, chunk) = (j.task_file.clone(), j.offset + t);
                let ok = run_worker(&task_file, t, j.offset);
                let n = self.done_chunks.entry((task_file, chunk)).or_insert(0);
                *n += 1;
                if *n > 1 {
                    self.stats.duplicate_chunks += 1;
                }
                self.stats.completed += 1;
                self.stats.useful_cpu_seconds += ran;
                let state = if ok {
                    JobState::Completed
                } else {
                    JobState::Failed
                };
                self.end_task(job, t, state);
            }
            Event::Purge => {
                if let Some(task) = self.jobs.get_mut(&job).and_then(|j| j.tasks.get_mut(&t)) {
                    if !task.purged && matches!(task.state, SimTaskState::Ended { .. }) {
                        task.purged = true;
                        self.table -= 1;
                    }
                }
            }
        }
    }

    /// A preemption or node failure: the task goes back to the queue (after its latency), or
    /// ends `NODE_FAIL` past `MaxBatchRequeue`.
    fn requeue(&mut self, job: JobId, t: u64, cpus: u64) {
        let max = self.config.max_batch_requeue;
        let (lo, hi) = self.config.start_latency;
        let latency = lo + (hi.saturating_sub(lo)).mul_f64(self.uniform());
        let Some(task) = self.jobs.get_mut(&job).and_then(|j| j.tasks.get_mut(&t)) else {
            return;
        };
        self.stats.requeues += 1;
        if task.restarts >= max {
            self.end_task(job, t, JobState::NodeFail);
            return;
        }
        task.restarts += 1;
        task.state = SimTaskState::Pending;
        self.free_cpus += cpus;
        self.push(Instant::now() + latency, job, t, Event::Eligible);
    }

    fn status(job: JobId, t: u64, task: &SimTask) -> SlurmTaskStatus {
        let state = match &task.state {
            SimTaskState::Pending => JobState::Pending,
            SimTaskState::Running { .. } => JobState::Running,
            SimTaskState::Ended { state, .. } => state.clone(),
        };
        SlurmTaskStatus {
            job,
            task: Some(t),
            state,
            detail: None,
        }
    }
}

fn failed(command: &str, stderr: &str) -> SlurmError {
    use std::os::unix::process::ExitStatusExt;
    SlurmError::Failed {
        argv: vec![command.into()],
        status: std::process::ExitStatus::from_raw(256),
        stdout: String::new(),
        stderr: format!("{command}: error: {stderr}"),
    }
}

/// Runs the real worker for one task, in this process.
fn run_worker(task_file: &std::path::Path, task: u64, offset: u64) -> bool {
    let file = task_file.as_os_str().to_owned();
    let env = move |name: &str| -> Option<OsString> {
        match name {
            TASK_FILE_ENV => Some(file.clone()),
            SLURM_TASK_INDEX_ENV => Some(task.to_string().into()),
            CHUNK_OFFSET_ENV => Some(offset.to_string().into()),
            _ => None,
        }
    };
    run_batch_worker_with(&env).is_ok()
}

/// A simulated Slurm cluster: [`SimConfig`]'s CPUs, start latencies, limits (`MaxJobCount`,
/// `MaxArraySize`, `MaxSubmitJobs`, `MinJobAge`), per-user RPC rate limiting and injected
/// faults (socket timeouts, preemptions, node failures, both requeued), in tokio's clock. A task
/// runs the real worker in this process when its compute time has passed, so the chunk files
/// the controller reads are real; what it costs is counted ([`SimStats`]).
///
/// Bench support, not a stable API. Must be used inside a Tokio runtime, normally a paused one.
#[derive(Clone)]
pub struct SimSlurm {
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
    driver: Arc<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for SimSlurm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimSlurm").finish_non_exhaustive()
    }
}

impl SimSlurm {
    /// Starts the cluster (its event loop is a task of the current runtime).
    pub fn start(config: SimConfig) -> SimSlurm {
        let now = Instant::now();
        let state = Arc::new(Mutex::new(State {
            rng: config.seed,
            free_cpus: config.cpus,
            tokens: f64::from(config.rpc_bucket),
            config,
            next_job: 1000,
            next_run: 0,
            jobs: HashMap::new(),
            by_name: HashMap::new(),
            events: BinaryHeap::new(),
            seq: 0,
            ready: VecDeque::new(),
            live: 0,
            table: 0,
            refilled: now,
            done_chunks: HashMap::new(),
            layouts: HashMap::new(),
            stats: SimStats::default(),
        }));
        let wake = Arc::new(Notify::new());
        let driver = tokio::spawn(drive(state.clone(), wake.clone()));
        SimSlurm {
            state,
            wake,
            driver: Arc::new(driver),
        }
    }

    /// What the cluster counted so far.
    pub fn stats(&self) -> SimStats {
        lock(&self.state).stats.clone()
    }

    /// Pending or running tasks now.
    pub fn live_tasks(&self) -> u64 {
        lock(&self.state).live
    }

    /// How often each chunk (by task file and chunk index) ran to completion.
    pub fn completions(&self) -> HashMap<(PathBuf, u64), u32> {
        lock(&self.state).done_chunks.clone()
    }

    /// Stops the event loop.
    pub fn stop(&self) {
        self.driver.abort();
    }

    fn call<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let t0 = process_cpu();
        let mut g = lock(&self.state);
        let out = f(&mut g);
        g.stats.sim_cpu += process_cpu().saturating_sub(t0);
        drop(g);
        self.wake.notify_one();
        out
    }
}

async fn drive(state: Arc<Mutex<State>>, wake: Arc<Notify>) {
    loop {
        let next = {
            let t0 = process_cpu();
            let mut g = lock(&state);
            let now = Instant::now();
            while let Some(Reverse((at, _, job, t, event))) = g.events.peek().cloned() {
                if at > now {
                    break;
                }
                g.events.pop();
                g.handle(job, t, event);
            }
            g.schedule();
            let next = g.events.peek().map(|Reverse((at, ..))| *at);
            g.stats.sim_cpu += process_cpu().saturating_sub(t0);
            next
        };
        match next {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
    }
}

#[async_trait]
impl SlurmClient for SimSlurm {
    async fn submit(&self, req: &SubmitRequest) -> Result<JobId, SlurmError> {
        self.call(|g| {
            g.rpc("sbatch")?;
            let r = g.accept(req);
            // A timeout after slurmctld accepted the array: the caller never hears of it.
            if r.is_ok() && g.uniform() < g.config.socket_timeout_rate / 2.0 {
                g.stats.socket_timeouts += 1;
                return Err(failed("sbatch", "Socket timed out on send/recv operation"));
            }
            r
        })
    }

    async fn queue(&self, jobs: &[JobId]) -> Result<Vec<SlurmTaskStatus>, SlurmError> {
        self.call(|g| {
            g.rpc("squeue")?;
            let mut out = Vec::new();
            for &job in jobs {
                if let Some(j) = g.jobs.get(&job) {
                    out.extend(
                        j.tasks
                            .iter()
                            .filter(|(_, t)| !t.purged)
                            .map(|(&i, t)| State::status(job, i, t)),
                    );
                }
            }
            Ok(out)
        })
    }

    async fn accounting(&self, jobs: &[JobId]) -> Result<Option<Vec<SlurmTaskStatus>>, SlurmError> {
        self.call(|g| {
            g.rpc("sacct")?;
            if !g.config.accounting {
                return Ok(None);
            }
            let mut out = Vec::new();
            for &job in jobs {
                if let Some(j) = g.jobs.get(&job) {
                    out.extend(j.tasks.iter().map(|(&i, t)| State::status(job, i, t)));
                }
            }
            Ok(Some(out))
        })
    }

    async fn cancel(&self, targets: &[TaskRef]) -> Result<(), SlurmError> {
        self.call(|g| {
            g.rpc("scancel")?;
            for target in targets {
                let ids: Vec<u64> = match (g.jobs.get(&target.job), target.task) {
                    (Some(_), Some(t)) => vec![t],
                    (Some(j), None) => j.tasks.keys().copied().collect(),
                    (None, _) => continue,
                };
                for t in ids {
                    let state = g
                        .jobs
                        .get(&target.job)
                        .and_then(|j| j.tasks.get(&t))
                        .map(|x| x.state.clone());
                    match state {
                        Some(SimTaskState::Running { started, cpus, .. }) => {
                            g.stats.busy_cpu_seconds +=
                                Instant::now().duration_since(started).as_secs_f64() * cpus as f64;
                        }
                        Some(SimTaskState::Pending) => {}
                        _ => continue,
                    }
                    g.stats.cancelled += 1;
                    g.end_task(target.job, t, JobState::Cancelled);
                }
            }
            Ok(())
        })
    }

    async fn find(&self, name: &str) -> Result<Vec<JobId>, SlurmError> {
        self.call(|g| {
            g.rpc("squeue")?;
            Ok(g.by_name.get(name).cloned().unwrap_or_default())
        })
    }

    async fn max_array_size(&self) -> Result<u64, SlurmError> {
        self.call(|g| {
            g.rpc("scontrol")?;
            Ok(g.config.max_array_size)
        })
    }

    async fn test_submit(&self, _req: &SubmitRequest) -> Result<(), SlurmError> {
        self.call(|g| g.rpc("sbatch --test-only"))
    }

    async fn submit_limits(
        &self,
        _account: Option<String>,
        _qos: Option<String>,
    ) -> Result<SubmitLimits, SlurmError> {
        self.call(|g| {
            g.rpc("scontrol")?;
            g.rpc("sacctmgr")?;
            Ok(if g.config.report_limits {
                SubmitLimits {
                    max_job_count: Some(g.config.max_job_count),
                    max_submit: g.config.max_submit_jobs,
                }
            } else {
                SubmitLimits::default()
            })
        })
    }
}
