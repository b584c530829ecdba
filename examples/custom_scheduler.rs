//! A scheduler of your own, written against slurptuna's public API only: "toy" runs every task
//! of a job array as a local subprocess. The shared batch layer (`slurptuna::batch`) does
//! everything else — task files, one state poll for all jobs, retries of failed chunks,
//! adoption on resume, the worker side — exactly as it does for Slurm.
//!
//! `cargo run --example custom_scheduler` runs a DISTRIBUTED study on it (this program is also
//! the worker every task runs). `cargo test --example custom_scheduler --features testing` runs
//! the executor conformance suite on it and a study end to end.
//!
//! A scheduler needs two things: a [`BatchClient`] (submit an array, report task states, cancel,
//! find jobs by name) and a [`Backend`] value holding its options, which builds a
//! [`BatchExecutor`] over the client.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use slurptuna::batch::{
    async_trait, ArraySubmission, BatchClient, BatchConfig, BatchExecutor, ClientError, JobId,
    TaskRef, TaskState, TaskStatus,
};
use slurptuna::{
    loss, optimize_run, Backend, BackendEnv, CoreError, ExecutionMode, Executor, FailureKind,
    LossDefinition, RunOptions,
};

/// One task of a toy job: its process while it runs, its end once it ended.
struct Task {
    child: Option<Child>,
    state: TaskState,
}

#[derive(Default)]
struct ToyState {
    next_job: u64,
    jobs: BTreeMap<JobId, (String, BTreeMap<u64, Task>)>,
}

/// The toy scheduler's client: every array task is a local process.
#[derive(Clone, Default)]
pub struct ToyClient {
    state: Arc<Mutex<ToyState>>,
}

impl ToyClient {
    fn lock(&self) -> MutexGuard<'_, ToyState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tasks still running, as `job_task` (for tests: nothing may be left after a cancel).
    pub fn running(&self) -> Vec<String> {
        let mut g = self.lock();
        refresh(&mut g);
        g.jobs
            .iter()
            .flat_map(|(job, (_, tasks))| {
                tasks
                    .iter()
                    .filter(|(_, t)| t.state.is_active())
                    .map(move |(i, _)| format!("{job}_{i}"))
            })
            .collect()
    }
}

/// Reaps finished processes and records how they ended.
fn refresh(g: &mut ToyState) {
    for (_, tasks) in g.jobs.values_mut() {
        for t in tasks.values_mut() {
            let Some(child) = t.child.as_mut() else {
                continue;
            };
            if let Ok(Some(status)) = child.try_wait() {
                t.state = if status.success() {
                    TaskState::Completed
                } else {
                    TaskState::Ended {
                        kind: FailureKind::Scheduler,
                        label: format!("FAILED ({status})"),
                    }
                };
                t.child = None;
            }
        }
    }
}

/// `%A` → the job id and `%a` → the task index in a log path pattern.
fn expand(pattern: &Path, job: JobId, task: u64) -> PathBuf {
    let s = pattern.to_string_lossy();
    PathBuf::from(
        s.replace("%A", &job.to_string())
            .replace("%a", &task.to_string()),
    )
}

const TASK_INDEX: &str = "TOY_TASK_INDEX";

#[async_trait]
impl BatchClient for ToyClient {
    fn name(&self) -> &'static str {
        "toy"
    }

    fn task_index_env(&self) -> &'static str {
        TASK_INDEX
    }

    async fn submit(&self, sub: &ArraySubmission) -> Result<JobId, ClientError> {
        let mut g = self.lock();
        g.next_job += 1;
        let job = JobId(g.next_job);
        let mut tasks = BTreeMap::new();
        for &index in &sub.array {
            let log = |p: &Path| std::fs::File::create(expand(p, job, index));
            let (out, err) = match (log(&sub.output), log(&sub.error)) {
                (Ok(o), Ok(e)) => (o, e),
                (Err(e), _) | (_, Err(e)) => return Err(ClientError::fatal(e)),
            };
            let child = Command::new(&sub.script)
                .args(&sub.script_args)
                .envs(sub.env.iter().map(|(k, v)| (k, v)))
                .env(TASK_INDEX, index.to_string())
                .current_dir(&sub.chdir)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .map_err(ClientError::fatal)?;
            tasks.insert(
                index,
                Task {
                    child: Some(child),
                    state: TaskState::Active,
                },
            );
        }
        g.jobs.insert(job, (sub.job_name.clone(), tasks));
        Ok(job)
    }

    async fn states(&self, jobs: &[JobId]) -> Result<Vec<TaskStatus>, ClientError> {
        let mut g = self.lock();
        refresh(&mut g);
        Ok(jobs
            .iter()
            .filter_map(|job| g.jobs.get(job).map(|(_, tasks)| (job, tasks)))
            .flat_map(|(&job, tasks)| {
                tasks.iter().map(move |(&i, t)| TaskStatus {
                    job,
                    task: Some(i),
                    state: t.state.clone(),
                    detail: None,
                })
            })
            .collect())
    }

    async fn cancel(&self, targets: &[TaskRef]) -> Result<(), ClientError> {
        let mut g = self.lock();
        for target in targets {
            let Some((_, tasks)) = g.jobs.get_mut(&target.job) else {
                continue;
            };
            for (i, t) in tasks.iter_mut() {
                if target.task.is_some_and(|want| want != *i) {
                    continue;
                }
                if let Some(mut child) = t.child.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                    t.state = TaskState::Ended {
                        kind: FailureKind::Scheduler,
                        label: "CANCELLED".into(),
                    };
                }
            }
        }
        Ok(())
    }

    async fn find(&self, name: &str) -> Result<Vec<JobId>, ClientError> {
        Ok(self
            .lock()
            .jobs
            .iter()
            .filter(|(_, (n, _))| n == name)
            .map(|(&job, _)| job)
            .collect())
    }
}

/// The toy scheduler as a value (what `RunOptions::scheduler` takes): its options and client.
#[derive(Clone, Debug)]
pub struct ToyScheduler {
    /// How often task states are polled.
    pub poll: Duration,
    /// Arguments for the worker program instead of this program's own (`None`: the default).
    pub worker_args: Option<Vec<OsString>>,
    client: ToyClient,
}

impl std::fmt::Debug for ToyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ToyClient")
    }
}

impl ToyScheduler {
    /// A toy scheduler polling every `poll`.
    pub fn new(poll: Duration) -> Self {
        Self {
            poll,
            worker_args: None,
            client: ToyClient::default(),
        }
    }

    /// Its executor, for a given worker command (what `Backend::executor` builds).
    pub fn batch_executor(&self, env: &BackendEnv<'_>) -> BatchExecutor {
        let mut worker = env.worker.clone();
        if let Some(args) = &self.worker_args {
            worker.args = args.clone();
        }
        // The scheduler-independent options (retries, attempt timeout, cap on running tasks)
        // come from the run's options; the toy sets its own poll interval.
        let config = BatchConfig {
            poll_interval: self.poll,
            result_check_interval: Duration::from_millis(50),
            job_name_prefix: "toy".into(),
            keep_jobs_on_cancel: env.keep_jobs_on_interrupt,
            ..BatchConfig::new(env.distributed)
        };
        BatchExecutor::new(
            Arc::new(self.client.clone()),
            config,
            worker,
            env.worker_parallelism,
        )
    }
}

impl Backend for ToyScheduler {
    fn name(&self) -> &'static str {
        "toy"
    }

    fn validate(&self) -> Result<(), CoreError> {
        if self.poll.is_zero() {
            return Err(CoreError::InvalidOption {
                option: "poll",
                reason: "must be > 0".into(),
            });
        }
        Ok(())
    }

    fn settings(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("toy_poll_seconds".into(), self.poll.as_secs_f64().into());
        m
    }

    fn executor(&self, env: &BackendEnv<'_>) -> Result<Arc<dyn Executor>, CoreError> {
        Ok(Arc::new(self.batch_executor(env)))
    }
}

/// The model every task evaluates: this program builds it before `optimize_run`, so a task
/// (this program re-executed) finds it.
fn model() -> Result<LossDefinition, CoreError> {
    loss("toy-bowl")
        .description("a noisy bowl with its minimum at x = 0.3")
        .param("x", (0.0, 1.0))
        .build(|p, seed, _ctx| Ok(((p.f64("x")? - 0.3).powi(2) + (seed % 5) as f64 * 1e-3).into()))
}

fn study_options(root: &Path, scheduler: ToyScheduler) -> RunOptions {
    RunOptions {
        mode: ExecutionMode::Distributed,
        scheduler: scheduler.into(),
        run_root: root.to_path_buf(),
        n_trials: 12,
        n_seeds: Some(40),
        chunk_size: Some(10),
        max_concurrent_trials: 2,
        ..RunOptions::default()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let model = model()?;
    let scheduler = ToyScheduler::new(Duration::from_millis(200));
    let root = std::env::temp_dir().join("slurptuna-custom-scheduler");
    let r = optimize_run(&model, study_options(&root, scheduler))?;
    println!(
        "best x = {:.4} (value {:.6}) after {} trials on the toy scheduler; run dir {}",
        r.best_params.f64("x")?,
        r.best_value,
        r.n_complete,
        r.run_dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use slurptuna::testing::{executor_suite, suite_loss, ExecutorHarness};
    use slurptuna::{DistributedOptions, WorkerCommand};

    /// The worker side: the tests start this test program again with `--exact
    /// tests::serve_as_worker`, so that only this test runs; in such a task it evaluates its
    /// chunk and exits the process (inside `optimize_run`), otherwise it does nothing.
    #[test]
    fn serve_as_worker() {
        if slurptuna::batch::is_batch_worker() {
            let _suite = suite_loss();
            let model = model().unwrap();
            let _ = optimize_run(&model, RunOptions::default());
            unreachable!("a worker exits inside optimize_run");
        }
    }

    fn worker_args() -> Vec<OsString> {
        [
            "--exact",
            "tests::serve_as_worker",
            "--nocapture",
            "--test-threads=1",
        ]
        .map(OsString::from)
        .to_vec()
    }

    fn scheduler() -> ToyScheduler {
        ToyScheduler {
            worker_args: Some(worker_args()),
            ..ToyScheduler::new(Duration::from_millis(50))
        }
    }

    #[test]
    fn the_toy_scheduler_passes_the_executor_suite() {
        let dir = tempfile::tempdir().unwrap();
        let toy = scheduler();
        let worker = WorkerCommand {
            program: std::env::current_exe().unwrap(),
            args: Vec::new(),
            cwd: dir.path().to_path_buf(),
        };
        let loss = suite_loss();
        let env = BackendEnv {
            loss: &loss,
            worker: &worker,
            worker_parallelism: 2,
            keep_jobs_on_interrupt: false,
            distributed: &DistributedOptions::seed_defaults(),
        };
        let exec = toy.batch_executor(&env);
        let running = || toy.client.running();
        let harness = ExecutorHarness {
            leftovers: Some(&running),
            start_timeout: Duration::from_secs(60),
            grace: Duration::from_secs(10),
            ..ExecutorHarness::new(&exec, dir.path())
        };
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(executor_suite(&harness)).unwrap();
        assert!(toy.client.running().is_empty());
    }

    #[test]
    fn a_study_runs_end_to_end_on_the_toy_scheduler() {
        let dir = tempfile::tempdir().unwrap();
        let toy = scheduler();
        let client = toy.client.clone();
        let opts = RunOptions {
            progress: false,
            ..study_options(dir.path(), toy)
        };
        let r = optimize_run(&model().unwrap(), opts).unwrap();
        assert_eq!(r.n_complete, 12);
        assert!(
            (r.best_params.f64("x").unwrap() - 0.3).abs() < 0.15,
            "{}",
            r.best_params
        );
        // Every trial ran as job arrays of the toy scheduler, one task per chunk.
        let trial = r.run_dir.join("trials/trial_00000");
        assert!(trial.join("task.json").is_file() && trial.join("jobs.json").is_file());
        assert_eq!(std::fs::read_dir(trial.join("chunks")).unwrap().count(), 4);
        assert!(client.running().is_empty(), "{:?}", client.running());
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(r.run_dir.join("meta.json")).unwrap())
                .unwrap();
        assert_eq!(
            (meta["mode"].as_str(), meta["backend"].as_str()),
            (Some("distributed"), Some("toy"))
        );
        assert_eq!(meta["toy_poll_seconds"], 0.05);
    }
}
