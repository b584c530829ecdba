//! `FakeSlurm`: a [`SlurmClient`] that runs array tasks as local processes, for tests.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use slurptuna_core::batch::{JobId, TaskRef};
use tokio::sync::oneshot;

use crate::cli::sbatch_argv;
use crate::client::{JobState, SlurmClient, SlurmTaskStatus, SubmitLimits, SubmitRequest};
use crate::error::SlurmError;

/// A scripted refusal of the next `sbatch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FakeSubmitError {
    /// A submit-limit refusal (`QOSMaxSubmitJobPerUserLimit`).
    SubmitLimit,
    /// `Invalid qos specification`.
    InvalidQos,
    /// `sbatch` not found.
    Spawn,
    /// The array is accepted, but the answer is lost: `sbatch` fails with a socket timeout.
    LostAnswer,
}

/// One call the fake received, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum FakeCall {
    /// `sbatch`, with the job id it got (`None` when refused) and the argv `CliSlurm` would run.
    Submit {
        /// The job id, or `None` if the call was refused.
        job: Option<JobId>,
        /// The array task ids.
        array: Vec<u64>,
        /// `sbatch` arguments as `CliSlurm` would pass them.
        argv: Vec<OsString>,
    },
    /// `squeue` for these jobs.
    Queue(Vec<JobId>),
    /// `squeue --name` for this name.
    Find(String),
    /// `sacct` for these jobs.
    Accounting(Vec<JobId>),
    /// `scancel` of these targets.
    Cancel(Vec<TaskRef>),
}

struct FakeTask {
    state: JobState,
    visible: bool,
    kill: Option<oneshot::Sender<JobState>>,
    detail: Option<String>,
}

struct FakeJob {
    req: SubmitRequest,
    tasks: BTreeMap<u64, FakeTask>,
}

struct FakeState {
    next_job: u64,
    jobs: BTreeMap<JobId, FakeJob>,
    calls: Vec<FakeCall>,
    refusals: VecDeque<FakeSubmitError>,
    max_running: usize,
    running: usize,
    peak_running: usize,
    accounting: bool,
    max_array_size: u64,
    /// The QoS names `test_submit` accepts (`None`: any).
    known_qos: Option<Vec<String>>,
    /// `MaxSubmitJobs` enforced on live tasks, and whether `submit_limits` reports it.
    max_submit: Option<(u64, bool)>,
    /// The most live tasks seen at once.
    peak_live: u64,
    /// The next accepted submission never returns (see [`FakeSlurmHandle::hang_after_next_submit`]).
    hang_next_submit: bool,
}

type Inner = Arc<Mutex<FakeState>>;

impl FakeState {
    /// Pending or running tasks.
    fn live_count(&self) -> u64 {
        self.jobs
            .values()
            .flat_map(|j| j.tasks.values())
            .filter(|t| t.state.is_active())
            .count() as u64
    }
}

fn lock(inner: &Inner) -> MutexGuard<'_, FakeState> {
    inner.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fake Slurm: `submit` runs every array task of the batch script as a local process (in its
/// own process group, with `SLURM_ARRAY_TASK_ID`, `SLURM_ARRAY_JOB_ID` and the request's
/// environment, in `chdir`, output to the expanded `--output`/`--error` files), honouring the
/// array's `%limit`, a cluster-wide cap on running tasks, exit codes (non-zero → `FAILED`), time
/// limits (killed → `TIMEOUT`, to the second, with no rounding to minutes) and `scancel`
/// (killed → `CANCELLED`). Finished tasks stay visible to `queue`, as recent jobs do in Slurm.
///
/// Test support, not a stable API. Must be used inside a Tokio runtime. Tests drive it through
/// its [`FakeSlurmHandle`].
#[derive(Clone)]
pub struct FakeSlurm {
    inner: Inner,
}

/// Scripts and inspects a [`FakeSlurm`]: refusals, forced states, the record of calls.
#[derive(Clone)]
pub struct FakeSlurmHandle {
    inner: Inner,
}

impl std::fmt::Debug for FakeSlurm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakeSlurm")
    }
}

impl std::fmt::Debug for FakeSlurmHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakeSlurmHandle")
    }
}

impl FakeSlurm {
    /// A fake cluster running at most 64 tasks at once, without accounting, and its handle.
    pub fn new() -> (FakeSlurm, FakeSlurmHandle) {
        let inner = Arc::new(Mutex::new(FakeState {
            next_job: 1000,
            jobs: BTreeMap::new(),
            calls: Vec::new(),
            refusals: VecDeque::new(),
            max_running: 64,
            running: 0,
            peak_running: 0,
            accounting: false,
            max_array_size: 1001,
            known_qos: None,
            max_submit: None,
            peak_live: 0,
            hang_next_submit: false,
        }));
        (
            FakeSlurm {
                inner: inner.clone(),
            },
            FakeSlurmHandle { inner },
        )
    }

    /// Another client of the cluster behind `handle` (e.g. for a resumed controller).
    pub fn from_handle(handle: &FakeSlurmHandle) -> FakeSlurm {
        FakeSlurm {
            inner: handle.inner.clone(),
        }
    }

    /// A handle to this fake.
    pub fn handle(&self) -> FakeSlurmHandle {
        FakeSlurmHandle {
            inner: self.inner.clone(),
        }
    }
}

impl FakeSlurmHandle {
    /// Makes the next accepted submission run but never return to its caller, as when the
    /// controller dies between `sbatch` accepting an array and learning its id.
    pub fn hang_after_next_submit(&self) {
        lock(&self.inner).hang_next_submit = true;
    }

    /// Makes the next `submit` fail with `error` (queue several by calling again).
    pub fn fail_next_submit(&self, error: FakeSubmitError) {
        lock(&self.inner).refusals.push_back(error);
    }

    /// Forces the state of array task `task` of `job`. A terminal state kills a running task's
    /// process (it writes nothing more); an active state only changes what `queue` reports.
    pub fn set_state(&self, job: JobId, task: u64, state: JobState) {
        let mut g = lock(&self.inner);
        let Some(t) = g.jobs.get_mut(&job).and_then(|j| j.tasks.get_mut(&task)) else {
            return;
        };
        if state.is_active() {
            t.state = state;
            return;
        }
        match t.kill.take() {
            Some(k) => {
                let _ = k.send(state);
            }
            None => t.state = state,
        }
        drop(g);
        schedule(&self.inner);
    }

    /// Makes a task disappear from `queue` without a result, killing it (accounting, when on,
    /// still knows it as `CANCELLED`).
    pub fn vanish(&self, job: JobId, task: u64) {
        {
            let mut g = lock(&self.inner);
            if let Some(t) = g.jobs.get_mut(&job).and_then(|j| j.tasks.get_mut(&task)) {
                t.visible = false;
                match t.kill.take() {
                    Some(k) => {
                        let _ = k.send(JobState::Cancelled);
                    }
                    None => t.state = JobState::Cancelled,
                }
            }
        }
        schedule(&self.inner);
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<FakeCall> {
        lock(&self.inner).calls.clone()
    }

    /// The submit calls that got a job id: `(job, array task ids)`.
    pub fn submissions(&self) -> Vec<(JobId, Vec<u64>)> {
        lock(&self.inner)
            .calls
            .iter()
            .filter_map(|c| match c {
                FakeCall::Submit {
                    job: Some(j),
                    array,
                    ..
                } => Some((*j, array.clone())),
                _ => None,
            })
            .collect()
    }

    /// Cluster-wide cap on running tasks (default 64).
    pub fn set_max_running(&self, n: usize) {
        lock(&self.inner).max_running = n.max(1);
        schedule(&self.inner);
    }

    /// The most tasks that ever ran at once.
    pub fn peak_running(&self) -> usize {
        lock(&self.inner).peak_running
    }

    /// Turns accounting (`sacct`) on or off (default off: `accounting` answers `None`).
    pub fn set_accounting(&self, on: bool) {
        lock(&self.inner).accounting = on;
    }

    /// Enforces an association's `MaxSubmitJobs`: a submission that would hold more than `n`
    /// pending or running tasks is refused as a submit limit (`AssocMaxSubmitJobLimit`).
    /// `reported` says whether `submit_limits` tells the limit (as `sacctmgr` does) or hides it
    /// (a limit the controller must find by being refused).
    pub fn set_max_submit_jobs(&self, n: u64, reported: bool) {
        lock(&self.inner).max_submit = Some((n, reported));
    }

    /// The QoS names the cluster knows: `test_submit` rejects any other (default: any).
    pub fn set_known_qos(&self, names: &[&str]) {
        lock(&self.inner).known_qos = Some(names.iter().map(|n| n.to_string()).collect());
    }

    /// The most pending or running tasks there were at once.
    pub fn peak_live(&self) -> u64 {
        lock(&self.inner).peak_live
    }

    /// Sets `MaxArraySize` (default 1001); submitting a task id at or above it is refused.
    pub fn set_max_array_size(&self, n: u64) {
        lock(&self.inner).max_array_size = n;
    }

    /// Tasks that are pending or running.
    pub fn live_tasks(&self) -> Vec<TaskRef> {
        let g = lock(&self.inner);
        let mut out = Vec::new();
        for (&job, j) in &g.jobs {
            for (&task, t) in &j.tasks {
                if t.state.is_active() {
                    out.push(TaskRef {
                        job,
                        task: Some(task),
                    });
                }
            }
        }
        out
    }

    /// The state of every task of `job`.
    pub fn task_states(&self, job: JobId) -> Vec<(u64, JobState)> {
        let g = lock(&self.inner);
        g.jobs
            .get(&job)
            .map(|j| j.tasks.iter().map(|(&k, t)| (k, t.state.clone())).collect())
            .unwrap_or_default()
    }

    /// Cancels every live task (test cleanup).
    pub fn cancel_all(&self) {
        for t in self.live_tasks() {
            if let Some(task) = t.task {
                self.set_state(t.job, task, JobState::Cancelled);
            }
        }
    }

    /// Waits until no task is pending or running (or `timeout` passes); true when idle.
    pub async fn wait_idle(&self, timeout: std::time::Duration) -> bool {
        let end = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < end {
            if self.live_tasks().is_empty() {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.live_tasks().is_empty()
    }
}

/// `%A`, `%a`, `%j` and `%%` in the file name of an output pattern.
fn expand(p: &Path, job: JobId, task: u64) -> PathBuf {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = String::new();
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('A') | Some('j') => out.push_str(&job.to_string()),
            Some('a') => out.push_str(&task.to_string()),
            Some('%') => out.push('%'),
            Some(o) => {
                out.push('%');
                out.push(o);
            }
            None => out.push('%'),
        }
    }
    p.with_file_name(out)
}

/// Starts pending tasks while the array limits and the cluster cap allow.
fn schedule(inner: &Inner) {
    let mut starts = Vec::new();
    {
        let mut g = lock(inner);
        let st = &mut *g;
        for (&job, j) in st.jobs.iter_mut() {
            let limit = j
                .req
                .submission
                .array_limit
                .map_or(usize::MAX, |l| l as usize);
            let mut running = j
                .tasks
                .values()
                .filter(|t| t.state == JobState::Running)
                .count();
            for (&task, t) in j.tasks.iter_mut() {
                if st.running >= st.max_running || running >= limit {
                    break;
                }
                if t.state != JobState::Pending {
                    continue;
                }
                let (tx, rx) = oneshot::channel();
                t.state = JobState::Running;
                t.kill = Some(tx);
                running += 1;
                st.running += 1;
                st.peak_running = st.peak_running.max(st.running);
                starts.push((job, task, j.req.clone(), rx));
            }
        }
    }
    for (job, task, req, rx) in starts {
        let inner = inner.clone();
        tokio::spawn(run_task(inner, job, task, req, rx));
    }
}

async fn run_task(
    inner: Inner,
    job: JobId,
    task: u64,
    req: SubmitRequest,
    kill: oneshot::Receiver<JobState>,
) {
    let (state, detail) = run_process(job, task, &req, kill).await;
    {
        let mut g = lock(&inner);
        g.running = g.running.saturating_sub(1);
        if let Some(t) = g.jobs.get_mut(&job).and_then(|j| j.tasks.get_mut(&task)) {
            t.state = state;
            t.detail = detail;
            t.kill = None;
        }
    }
    schedule(&inner);
}

async fn run_process(
    job: JobId,
    task: u64,
    req: &SubmitRequest,
    mut kill: oneshot::Receiver<JobState>,
) -> (JobState, Option<String>) {
    let open = |p: &Path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
    };
    let sub = &req.submission;
    let (out, err) = match (
        open(&expand(&sub.output, job, task)),
        open(&expand(&sub.error, job, task)),
    ) {
        (Ok(o), Ok(e)) => (o, e),
        _ => {
            return (
                JobState::Failed,
                Some("cannot open the output files".into()),
            )
        }
    };
    let mut cmd = tokio::process::Command::new(&sub.script);
    cmd.args(&sub.script_args)
        .current_dir(&sub.chdir)
        .env("SLURM_ARRAY_TASK_ID", task.to_string())
        .env("SLURM_ARRAY_JOB_ID", job.to_string())
        .env("SLURM_JOB_ID", job.to_string())
        .envs(sub.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return (
                JobState::Failed,
                Some(format!("cannot start the batch script: {e}")),
            )
        }
    };
    let pid = child.id();
    let killpg = || {
        if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: killpg only sends a signal to the process group we created.
            unsafe {
                libc::killpg(pid, libc::SIGKILL);
            }
        }
    };
    tokio::select! {
        status = child.wait() => match status {
            Ok(s) if s.success() => (JobState::Completed, None),
            Ok(s) => (JobState::Failed, Some(crate::error::describe_status(&s))),
            Err(e) => (JobState::Failed, Some(e.to_string())),
        },
        _ = tokio::time::sleep(req.resources.time_limit) => {
            killpg();
            let _ = child.wait().await;
            (JobState::Timeout, None)
        }
        st = &mut kill => {
            killpg();
            let _ = child.wait().await;
            (st.unwrap_or(JobState::Cancelled), None)
        }
    }
}

#[async_trait]
impl SlurmClient for FakeSlurm {
    async fn submit(&self, req: &SubmitRequest) -> Result<JobId, SlurmError> {
        let result = {
            let mut g = lock(&self.inner);
            let argv = sbatch_argv(req);
            let refusal = g.refusals.pop_front();
            let lost = refusal == Some(FakeSubmitError::LostAnswer);
            let refusal = refusal.filter(|_| !lost);
            let sub = &req.submission;
            let too_big = sub.array.iter().any(|&t| t >= g.max_array_size);
            let live = g.live_count();
            let over_limit = g
                .max_submit
                .is_some_and(|(n, _)| live + sub.array.len() as u64 > n);
            let result = match refusal {
                Some(FakeSubmitError::SubmitLimit) => Err(SlurmError::SubmitLimit {
                    stderr: "sbatch: error: QOSMaxSubmitJobPerUserLimit".into(),
                }),
                Some(FakeSubmitError::InvalidQos) => Err(SlurmError::InvalidQos {
                    qos: req.resources.qos.clone().unwrap_or_default(),
                    stderr: "sbatch: error: Batch job submission failed: Invalid qos specification"
                        .into(),
                }),
                Some(FakeSubmitError::LostAnswer) => unreachable!("filtered above"),
                Some(FakeSubmitError::Spawn) => Err(SlurmError::Spawn {
                    program: "sbatch".into(),
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "not found"),
                }),
                None if over_limit => Err(SlurmError::SubmitLimit {
                    stderr: "sbatch: error: AssocMaxSubmitJobLimit\nsbatch: error: Batch job \
                             submission failed: Job violates accounting/QOS policy (job submit \
                             limit, user's size and/or time limits)"
                        .into(),
                }),
                None if too_big || sub.array.is_empty() => Err(SlurmError::Parse {
                    command: "sbatch",
                    reason: "Invalid job array specification".into(),
                    output: String::new(),
                }),
                None => {
                    let job = JobId(g.next_job);
                    g.next_job += 1;
                    let tasks = sub
                        .array
                        .iter()
                        .map(|&t| {
                            (
                                t,
                                FakeTask {
                                    state: JobState::Pending,
                                    visible: true,
                                    kill: None,
                                    detail: None,
                                },
                            )
                        })
                        .collect();
                    g.jobs.insert(
                        job,
                        FakeJob {
                            req: req.clone(),
                            tasks,
                        },
                    );
                    g.peak_live = g.peak_live.max(g.live_count());
                    Ok(job)
                }
            };
            g.calls.push(FakeCall::Submit {
                job: result.as_ref().ok().copied(),
                array: sub.array.clone(),
                argv,
            });
            let hang = result.is_ok() && std::mem::take(&mut g.hang_next_submit);
            let result = match result {
                Ok(_) if lost => {
                    use std::os::unix::process::ExitStatusExt;
                    Err(SlurmError::Failed {
                        argv: vec!["sbatch".into()],
                        status: std::process::ExitStatus::from_raw(256),
                        stdout: String::new(),
                        stderr: "sbatch: error: Socket timed out on send/recv operation".into(),
                    })
                }
                r => r,
            };
            (result, hang)
        };
        let (result, hang) = result;
        schedule(&self.inner);
        if hang {
            // The array is accepted and runs; the caller never hears of it.
            std::future::pending::<()>().await;
        }
        result
    }

    async fn find(&self, name: &str) -> Result<Vec<JobId>, SlurmError> {
        let mut g = lock(&self.inner);
        g.calls.push(FakeCall::Find(name.to_string()));
        Ok(g.jobs
            .iter()
            .filter(|(_, j)| {
                j.req.submission.job_name == name && j.tasks.values().any(|t| t.visible)
            })
            .map(|(&id, _)| id)
            .collect())
    }

    async fn queue(&self, jobs: &[JobId]) -> Result<Vec<SlurmTaskStatus>, SlurmError> {
        let mut g = lock(&self.inner);
        g.calls.push(FakeCall::Queue(jobs.to_vec()));
        Ok(statuses(&g, jobs, false))
    }

    async fn accounting(&self, jobs: &[JobId]) -> Result<Option<Vec<SlurmTaskStatus>>, SlurmError> {
        let mut g = lock(&self.inner);
        g.calls.push(FakeCall::Accounting(jobs.to_vec()));
        if !g.accounting {
            return Ok(None);
        }
        Ok(Some(statuses(&g, jobs, true)))
    }

    async fn cancel(&self, targets: &[TaskRef]) -> Result<(), SlurmError> {
        {
            let mut g = lock(&self.inner);
            g.calls.push(FakeCall::Cancel(targets.to_vec()));
            for t in targets {
                let Some(j) = g.jobs.get_mut(&t.job) else {
                    continue;
                };
                for (&id, task) in j.tasks.iter_mut() {
                    if t.task.is_some_and(|x| x != id) || !task.state.is_active() {
                        continue;
                    }
                    match task.kill.take() {
                        Some(k) => {
                            let _ = k.send(JobState::Cancelled);
                        }
                        None => task.state = JobState::Cancelled,
                    }
                }
            }
        }
        schedule(&self.inner);
        Ok(())
    }

    async fn max_array_size(&self) -> Result<u64, SlurmError> {
        Ok(lock(&self.inner).max_array_size)
    }

    async fn test_submit(&self, req: &SubmitRequest) -> Result<(), SlurmError> {
        let g = lock(&self.inner);
        match (&req.resources.qos, &g.known_qos) {
            (Some(q), Some(known)) if !known.contains(q) => Err(SlurmError::InvalidQos {
                qos: q.clone(),
                stderr: "allocation failure: Invalid qos specification".into(),
            }),
            _ => Ok(()),
        }
    }

    async fn submit_limits(
        &self,
        _account: Option<String>,
        _qos: Option<String>,
    ) -> Result<SubmitLimits, SlurmError> {
        let g = lock(&self.inner);
        Ok(SubmitLimits {
            max_job_count: None,
            max_submit: g.max_submit.and_then(|(n, reported)| reported.then_some(n)),
        })
    }
}

fn statuses(g: &FakeState, jobs: &[JobId], all: bool) -> Vec<SlurmTaskStatus> {
    let mut out = Vec::new();
    for job in jobs {
        let Some(j) = g.jobs.get(job) else { continue };
        for (&task, t) in &j.tasks {
            if t.visible || all {
                out.push(SlurmTaskStatus {
                    job: *job,
                    task: Some(task),
                    state: t.state.clone(),
                    detail: t.detail.clone(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use slurptuna_core::batch::ArraySubmission;
    use slurptuna_core::TaskResources;

    use crate::options::SlurmOptions;

    /// A batch script: sleeps `$1` seconds, then exits with `$2`. Written once: rewriting a
    /// script that is being executed makes `exec` fail with "text file busy".
    fn script(dir: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("task.sh");
        if p.exists() {
            return p;
        }
        std::fs::write(
            &p,
            "#!/bin/sh\necho \"task $SLURM_ARRAY_TASK_ID of $SLURM_ARRAY_JOB_ID\"\nsleep \"$1\"\nexit \"$2\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn req(dir: &Path, sleep: &str, code: &str, tasks: Vec<u64>) -> SubmitRequest {
        SubmitRequest {
            submission: ArraySubmission {
                script: script(dir),
                script_args: vec![sleep.into(), code.into()],
                array: tasks,
                array_limit: None,
                job_name: "t".into(),
                chdir: dir.to_path_buf(),
                output: dir.join("o_%A_%a.out"),
                error: dir.join("o_%A_%a.err"),
                env: vec![],
            },
            resources: TaskResources {
                cpus_per_task: 1,
                mem_per_cpu: "1M".parse().unwrap(),
                time_limit: Duration::from_secs(30),
                qos: None,
            },
            options: Arc::new(SlurmOptions::default()),
        }
    }

    fn with_time_limit(mut r: SubmitRequest, limit: Duration) -> SubmitRequest {
        r.resources.time_limit = limit;
        r
    }

    fn with_array_limit(mut r: SubmitRequest, limit: u64) -> SubmitRequest {
        r.submission.array_limit = Some(limit);
        r
    }

    async fn states(h: &FakeSlurmHandle, job: JobId) -> Vec<JobState> {
        assert!(h.wait_idle(Duration::from_secs(20)).await, "still running");
        h.task_states(job).into_iter().map(|(_, s)| s).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn honours_limits_exit_codes_time_limits_and_scancel() {
        let d = tempfile::tempdir().unwrap();
        let (fake, h) = FakeSlurm::new();
        // %2 on a 6-task array: never more than two at once.
        let j = fake
            .submit(&with_array_limit(
                req(d.path(), "0.2", "0", (0..6).collect()),
                2,
            ))
            .await
            .unwrap();
        assert_eq!(states(&h, j).await, vec![JobState::Completed; 6]);
        assert_eq!(h.peak_running(), 2);
        let out = std::fs::read_to_string(d.path().join(format!("o_{j}_5.out"))).unwrap();
        assert_eq!(out.trim(), format!("task 5 of {j}"));
        // Exit codes.
        let j = fake
            .submit(&req(d.path(), "0", "3", vec![0]))
            .await
            .unwrap();
        assert_eq!(states(&h, j).await, vec![JobState::Failed]);
        assert_eq!(
            fake.queue(&[j]).await.unwrap()[0].detail.as_deref(),
            Some("exit status 3")
        );
        // Time limits, to the second.
        let j = fake
            .submit(&with_time_limit(
                req(d.path(), "30", "0", vec![0]),
                Duration::from_millis(300),
            ))
            .await
            .unwrap();
        assert_eq!(states(&h, j).await, vec![JobState::Timeout]);
        // scancel of one task of a running array, and of a whole pending job.
        h.set_max_running(1);
        let j = fake
            .submit(&req(d.path(), "30", "0", vec![0, 1]))
            .await
            .unwrap();
        let k = fake
            .submit(&req(d.path(), "30", "0", vec![0]))
            .await
            .unwrap();
        fake.cancel(&[
            TaskRef {
                job: j,
                task: Some(0),
            },
            TaskRef { job: k, task: None },
        ])
        .await
        .unwrap();
        fake.cancel(&[TaskRef { job: j, task: None }])
            .await
            .unwrap();
        assert_eq!(states(&h, j).await, vec![JobState::Cancelled; 2]);
        assert_eq!(states(&h, k).await, vec![JobState::Cancelled]);
        // Scripted refusals, MaxArraySize, and accounting.
        h.fail_next_submit(FakeSubmitError::SubmitLimit);
        assert!(matches!(
            fake.submit(&req(d.path(), "0", "0", vec![0])).await,
            Err(SlurmError::SubmitLimit { .. })
        ));
        h.set_max_array_size(4);
        assert!(fake
            .submit(&req(d.path(), "0", "0", vec![4]))
            .await
            .is_err());
        assert_eq!(fake.accounting(&[j]).await.unwrap(), None);
        h.set_accounting(true);
        assert_eq!(
            fake.accounting(&[j]).await.unwrap().map(|v| v.len()),
            Some(2)
        );
        assert_eq!(h.submissions().len(), 5, "refused calls get no job id");
    }
}
