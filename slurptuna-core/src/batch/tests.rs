//! Tests of the batch executor over a scripted in-memory client (no processes).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::files::{
    chunk_path, failure_path, read_json, write_json, ChunkFile, FailureFile, JobsFile, FORMAT,
};
use super::*;
use crate::testing::RecordingSink;
use crate::{
    ChunkIndex, ChunkResult, CoreError, ExecError, Executor, FailureKind, Params, SeedLayout,
    SeedSpec, SeedStats, TrialJob, TrialNumber, WorkerCommand,
};

/// What the scripted client does with a submission: the states its tasks report from then on
/// (keyed by array index), after writing whatever files it likes.
type OnSubmit = Box<dyn Fn(&ArraySubmission) -> Vec<(u64, TaskState)> + Send + Sync>;

#[derive(Default)]
struct Inner {
    next_job: u64,
    submissions: Vec<(JobId, ArraySubmission)>,
    states: HashMap<(JobId, Option<u64>), TaskState>,
    calls: Vec<String>,
    failing_state_calls: u32,
    submit_errors: Vec<ClientError>,
    found: HashMap<String, Vec<JobId>>,
    max_array_size: Option<u64>,
}

struct Scripted {
    inner: Mutex<Inner>,
    on_submit: OnSubmit,
}

impl Scripted {
    fn new(on_submit: OnSubmit) -> Arc<Scripted> {
        Arc::new(Scripted {
            inner: Mutex::new(Inner {
                next_job: 70,
                ..Default::default()
            }),
            on_submit,
        })
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }
    fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }
    fn submissions(&self) -> Vec<(JobId, ArraySubmission)> {
        self.lock().submissions.clone()
    }
}

#[async_trait]
impl BatchClient for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }
    fn task_index_env(&self) -> &'static str {
        "SCRIPTED_INDEX"
    }
    async fn submit(&self, sub: &ArraySubmission) -> Result<JobId, ClientError> {
        let mut g = self.lock();
        g.calls.push("submit".into());
        if !g.submit_errors.is_empty() {
            return Err(g.submit_errors.remove(0));
        }
        let job = JobId(g.next_job);
        g.next_job += 1;
        g.submissions.push((job, sub.clone()));
        drop(g);
        let states = (self.on_submit)(sub);
        let mut g = self.lock();
        for (t, s) in states {
            g.states.insert((job, Some(t)), s);
        }
        Ok(job)
    }
    async fn states(&self, jobs: &[JobId]) -> Result<Vec<TaskStatus>, ClientError> {
        let mut g = self.lock();
        g.calls.push(format!("states {jobs:?}"));
        if g.failing_state_calls > 0 {
            g.failing_state_calls -= 1;
            return Err(ClientError::transient("controller unreachable"));
        }
        Ok(g.states
            .iter()
            .filter(|((j, _), _)| jobs.contains(j))
            .map(|(&(job, task), state)| TaskStatus {
                job,
                task,
                state: state.clone(),
                detail: None,
            })
            .collect())
    }
    async fn cancel(&self, targets: &[TaskRef]) -> Result<(), ClientError> {
        let mut g = self.lock();
        g.calls.push(format!("cancel {targets:?}"));
        for t in targets {
            for ((job, task), s) in g.states.iter_mut() {
                if *job == t.job && (t.task.is_none() || *task == t.task) && s.is_active() {
                    *s = TaskState::Ended {
                        kind: FailureKind::Scheduler,
                        label: "CANCELLED".into(),
                    };
                }
            }
        }
        Ok(())
    }
    async fn find(&self, name: &str) -> Result<Vec<JobId>, ClientError> {
        let mut g = self.lock();
        g.calls.push(format!("find {name}"));
        Ok(g.found.get(name).cloned().unwrap_or_default())
    }
    async fn max_array_size(&self) -> Result<u64, ClientError> {
        match self.lock().max_array_size {
            Some(n) => Ok(n),
            None => Err(ClientError::fatal("no such setting")),
        }
    }
}

fn tempdir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!(
        "slurptuna-batch-exec-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Trial 2: 6 seeds in chunks of 2, every chunk requested, its directory under `dir`.
fn job(dir: Option<&Path>) -> TrialJob {
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

fn config() -> BatchConfig {
    BatchConfig {
        poll_interval: Duration::from_millis(20),
        result_check_interval: Duration::from_millis(5),
        ..Default::default()
    }
}

fn worker(dir: &Path) -> WorkerCommand {
    WorkerCommand {
        program: "/bin/true".into(),
        args: vec!["--flag".into()],
        cwd: dir.to_path_buf(),
    }
}

fn executor(client: &Arc<Scripted>, cfg: BatchConfig, dir: &Path) -> BatchExecutor {
    BatchExecutor::new(client.clone(), cfg, worker(dir), 1)
}

fn write_result(j: &TrialJob, c: ChunkIndex) {
    let dir = j.trial_dir.as_ref().unwrap().join("chunks");
    std::fs::create_dir_all(&dir).unwrap();
    let f = ChunkFile {
        format: FORMAT,
        chunk: c,
        key: j.chunk_key(c).as_str().to_string(),
        result: ChunkResult {
            stats: SeedStats::from_values(&[1.0, 2.0]),
            values: None,
        },
    };
    write_json(&chunk_path(&dir, c), &f).unwrap();
}

/// A client whose tasks all complete at once, writing the results of `j`.
fn completing(j: &TrialJob) -> Arc<Scripted> {
    let j = j.clone();
    Scripted::new(Box::new(move |sub| {
        let offset = sub
            .env
            .iter()
            .find(|(k, _)| k == CHUNK_OFFSET_ENV)
            .map_or(0, |(_, v)| v.parse::<u64>().unwrap());
        sub.array
            .iter()
            .map(|&t| {
                write_result(&j, ChunkIndex(t + offset));
                (t, TaskState::Completed)
            })
            .collect()
    }))
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

fn trial_failure(r: Result<(), ExecError>) -> crate::TrialFailure {
    match r {
        Err(ExecError::Trial(f)) => f,
        other => panic!("expected a trial failure, got {other:?}"),
    }
}

fn jobs_json(j: &TrialJob) -> JobsFile {
    read_json(
        &j.trial_dir.as_ref().unwrap().join("jobs.json"),
        "job record",
    )
    .unwrap()
    .unwrap()
}

#[tokio::test]
async fn nothing_to_do_asks_the_scheduler_nothing() {
    let d = tempdir("nothing");
    let c = Scripted::new(Box::new(|_| unreachable!()));
    let exec = executor(&c, config(), &d);
    let mut j = job(Some(&d));
    j.chunks.clear();
    exec.evaluate(j, &RecordingSink::for_job(&job(Some(&d))))
        .await
        .unwrap();
    assert!(c.calls().is_empty());
    assert_eq!(exec.name(), "scripted");
}

#[tokio::test]
async fn invalid_options_and_a_missing_directory_are_fatal_and_named() {
    let d = tempdir("invalid");
    let c = Scripted::new(Box::new(|_| unreachable!()));
    let bad = BatchConfig {
        array_parallelism_limit: Some(0),
        ..config()
    };
    let j = job(Some(&d));
    let m = fatal_message(
        executor(&c, bad, &d)
            .evaluate(j.clone(), &RecordingSink::for_job(&j))
            .await,
    );
    assert!(m.contains("array_parallelism_limit"), "{m}");
    let exec = BatchExecutor::new(c.clone(), config(), worker(&d), 0);
    let m = fatal_message(exec.evaluate(j.clone(), &RecordingSink::for_job(&j)).await);
    assert!(m.contains("worker_parallelism"), "{m}");
    let m = fatal_message(
        executor(&c, config(), &d)
            .evaluate(job(None), &RecordingSink::for_job(&j))
            .await,
    );
    assert!(m.contains("scratch_dir"), "{m}");
    assert!(c.calls().is_empty());
}

#[tokio::test]
async fn stored_results_are_delivered_without_submitting() {
    let d = tempdir("stored");
    let j = job(Some(&d));
    for c in j.layout.chunks() {
        write_result(&j, c);
    }
    let c = Scripted::new(Box::new(|_| unreachable!()));
    let sink = RecordingSink::for_job(&j);
    executor(&c, config(), &d).evaluate(j, &sink).await.unwrap();
    assert_eq!(sink.order().len(), 3);
    assert!(c.calls().is_empty(), "{:?}", c.calls());
}

#[tokio::test]
async fn a_stale_result_is_recomputed_and_the_submission_is_recorded() {
    let d = tempdir("stale");
    let j = job(Some(&d));
    write_result(&j, ChunkIndex(0));
    let mut other = j.clone();
    other.params.insert("x", 0.9);
    write_result(&other, ChunkIndex(1));
    let c = completing(&j);
    let sink = RecordingSink::for_job(&j);
    let exec = executor(&c, config(), &d);
    exec.evaluate(j.clone(), &sink).await.unwrap();
    assert_eq!(sink.delivered(j.trial).len(), 3);
    assert!(sink.problems().is_empty(), "{:?}", sink.problems());
    let subs = c.submissions();
    assert_eq!(subs.len(), 1);
    let (id, sub) = &subs[0];
    assert_eq!(sub.array, vec![1, 2]);
    assert!(sub.env.is_empty());
    let tdir = j.trial_dir.clone().unwrap();
    assert_eq!(sub.script, tdir.join("chunk_task.sh"));
    assert_eq!(sub.script_args[0], tdir.join("task.json").into_os_string());
    assert_eq!(sub.script_args[1], "/bin/true");
    assert_eq!(sub.script_args[2], "--flag");
    assert_eq!(sub.output, tdir.join("logs/chunk_%A_%a.out"));
    assert_eq!(sub.error, tdir.join("logs/chunk_%A_%a.err"));
    assert!(
        sub.job_name.starts_with("slurptuna-unit-t2-"),
        "{}",
        sub.job_name
    );
    let rec = jobs_json(&j);
    assert_eq!(rec.jobs[0].job, *id);
    assert_eq!(rec.jobs[0].chunks, vec![ChunkIndex(1), ChunkIndex(2)]);
    assert!(rec.pending.is_empty());
    // The task file names this scheduler's index variable.
    let task = std::fs::read_to_string(tdir.join("task.json")).unwrap();
    assert!(
        task.contains(r#""task_index_env":"SCRIPTED_INDEX""#),
        "{task}"
    );
}

#[tokio::test]
async fn arrays_beyond_the_maximum_size_are_split_with_an_offset() {
    let d = tempdir("split");
    let mut j = job(Some(&d));
    j.layout = Arc::new(
        SeedLayout::resolve(
            &SeedSpec {
                n_seeds: Some(10),
                chunk_size: Some(2),
                ..Default::default()
            },
            0,
        )
        .unwrap(),
    );
    j.chunks = j.layout.chunks().collect();
    let c = completing(&j);
    c.lock().max_array_size = Some(2);
    let sink = RecordingSink::for_job(&j);
    executor(&c, config(), &d).evaluate(j, &sink).await.unwrap();
    assert_eq!(sink.order().len(), 5);
    type Env = Vec<(String, String)>;
    let arrays: Vec<(Vec<u64>, Env)> = c
        .submissions()
        .into_iter()
        .map(|(_, s)| (s.array, s.env))
        .collect();
    let off = |n: &str| vec![(CHUNK_OFFSET_ENV.to_string(), n.to_string())];
    assert_eq!(
        arrays,
        vec![
            (vec![0, 1], vec![]),
            (vec![0, 1], off("2")),
            (vec![0], off("4"))
        ]
    );
}

#[tokio::test]
async fn failing_state_polls_stop_the_run_after_a_few_in_a_row() {
    let d = tempdir("states");
    let j = job(Some(&d));
    let c = Scripted::new(Box::new(|sub| {
        sub.array.iter().map(|&t| (t, TaskState::Active)).collect()
    }));
    c.lock().failing_state_calls = MAX_STATE_ERRORS;
    let m = fatal_message(
        executor(&c, config(), &d)
            .evaluate(j.clone(), &RecordingSink::for_job(&j))
            .await,
    );
    assert!(
        m.contains("controller unreachable") && m.contains("scripted"),
        "{m}"
    );
    let states = c.calls().iter().filter(|s| s.starts_with("states")).count();
    assert_eq!(states, MAX_STATE_ERRORS as usize);
}

#[tokio::test]
async fn client_errors_are_retried_by_kind() {
    let d = tempdir("submit");
    let j = job(Some(&d));
    // A transient failure is retried (after 1 s)...
    let c = completing(&j);
    c.lock().submit_errors = vec![ClientError::transient("sbatch: timeout")];
    let sink = RecordingSink::for_job(&j);
    executor(&c, config(), &d)
        .evaluate(j.clone(), &sink)
        .await
        .unwrap();
    assert_eq!(c.calls().iter().filter(|s| *s == "submit").count(), 2);
    // ...a fatal one is not, and its pending record is dropped.
    let d = tempdir("submit-fatal");
    let j = job(Some(&d));
    let c = completing(&j);
    c.lock().submit_errors = vec![ClientError::fatal("sbatch: command not found")];
    let m = fatal_message(
        executor(&c, config(), &d)
            .evaluate(j.clone(), &RecordingSink::for_job(&j))
            .await,
    );
    assert!(
        m.contains("executor 'scripted' failed: sbatch: command not found"),
        "{m}"
    );
    assert_eq!(c.calls(), vec!["submit"]);
    assert_eq!(jobs_json(&j), JobsFile::default());
}

#[tokio::test]
async fn scheduler_ends_become_typed_failures_with_the_schedulers_label() {
    let d = tempdir("timeout");
    let j = job(Some(&d));
    let c = Scripted::new(Box::new(|sub| {
        sub.array
            .iter()
            .map(|&t| {
                (
                    t,
                    TaskState::Ended {
                        kind: FailureKind::TimeLimit,
                        label: "TIMEOUT".into(),
                    },
                )
            })
            .collect()
    }));
    let f = trial_failure(
        executor(&c, config(), &d)
            .evaluate(j.clone(), &RecordingSink::for_job(&j))
            .await,
    );
    assert_eq!(f.kind, FailureKind::TimeLimit);
    assert_eq!(f.state.as_deref(), Some("TIMEOUT"));
    assert_eq!(f.chunk, Some(ChunkIndex(0)));
    assert!(f.reason.contains("after 2 attempts"), "{}", f.reason);
    // The second attempt (job 71) is the one reported.
    assert!(
        f.reason.contains("scripted task 71_0 ended TIMEOUT"),
        "{}",
        f.reason
    );
    assert_eq!(c.submissions().len(), 2);
}

#[tokio::test]
async fn a_loss_failure_record_makes_a_loss_failure() {
    let d = tempdir("loss");
    let j = job(Some(&d));
    let jj = j.clone();
    let c = Scripted::new(Box::new(move |sub| {
        let dir = jj.trial_dir.as_ref().unwrap().join("chunks");
        let f = FailureFile {
            chunk: ChunkIndex(1),
            key: jj.chunk_key(ChunkIndex(1)).as_str().to_string(),
            reason: "seed 3: loss returned an error: no".into(),
        };
        write_json(&failure_path(&dir, ChunkIndex(1)), &f).unwrap();
        sub.array
            .iter()
            .map(|&t| {
                if t == 1 {
                    let label = "FAILED".to_string();
                    (
                        t,
                        TaskState::Ended {
                            kind: FailureKind::Scheduler,
                            label,
                        },
                    )
                } else {
                    (t, TaskState::Active)
                }
            })
            .collect()
    }));
    let cfg = BatchConfig {
        trial_retry_attempts: 0,
        ..config()
    };
    let f = trial_failure(
        executor(&c, cfg, &d)
            .evaluate(j.clone(), &RecordingSink::for_job(&j))
            .await,
    );
    assert_eq!(f.kind, FailureKind::Loss);
    assert_eq!(f.state.as_deref(), Some("FAILED"));
    assert!(f.reason.contains("after 1 attempt: "), "{}", f.reason);
    assert!(
        f.reason.contains("seed 3: loss returned an error"),
        "{}",
        f.reason
    );
    // The trial's other tasks were cancelled.
    assert!(
        c.calls().iter().any(|s| s.starts_with("cancel")),
        "{:?}",
        c.calls()
    );
}

#[tokio::test]
async fn vanished_and_result_less_tasks_and_the_attempt_timeout_are_typed() {
    for (case, kind) in [
        ("vanished", FailureKind::Vanished),
        ("no result", FailureKind::NoResult),
        ("timeout", FailureKind::AttemptTimeout),
    ] {
        let d = tempdir("kinds");
        let j = job(Some(&d));
        let c = Scripted::new(Box::new(move |sub| match case {
            "vanished" => vec![],
            "no result" => sub
                .array
                .iter()
                .map(|&t| (t, TaskState::Completed))
                .collect(),
            _ => sub.array.iter().map(|&t| (t, TaskState::Active)).collect(),
        }));
        let cfg = BatchConfig {
            trial_retry_attempts: 0,
            attempt_timeout: Duration::from_millis(200),
            ..config()
        };
        let f = trial_failure(
            executor(&c, cfg, &d)
                .evaluate(j.clone(), &RecordingSink::for_job(&j))
                .await,
        );
        assert_eq!(f.kind, kind, "{case}: {}", f.reason);
        assert_eq!(f.state, None, "{case}");
        if kind == FailureKind::AttemptTimeout {
            assert!(f.reason.contains("queue time counts"), "{}", f.reason);
            assert!(
                c.calls().iter().any(|s| s.starts_with("cancel")),
                "{:?}",
                c.calls()
            );
        }
    }
}

#[tokio::test]
async fn a_resumed_trial_adopts_live_jobs_and_finds_unrecorded_ones_by_name() {
    let d = tempdir("adopt");
    let j = job(Some(&d));
    // A first controller submits chunks 0..3 as one array, and is dropped (keeping its jobs).
    let c = Scripted::new(Box::new(|sub| {
        sub.array.iter().map(|&t| (t, TaskState::Active)).collect()
    }));
    let exec = executor(&c, config(), &d).keep_jobs_on_cancel(true);
    let sink = RecordingSink::for_job(&j);
    {
        let run = exec.evaluate(j.clone(), &sink);
        tokio::pin!(run);
        tokio::select! {
            r = &mut run => panic!("finished: {r:?}"),
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    let (first, _) = c.submissions()[0].clone();
    // As if a second array (for nothing new) had been submitted but not recorded: pending.
    let mut rec = jobs_json(&j);
    let mut pending = rec.jobs[0].clone();
    pending.chunks = vec![ChunkIndex(2)];
    rec.pending.push(super::files::PendingRecord {
        name: "lost-array".into(),
        offset: 0,
        chunks: pending.chunks.clone(),
        task_key: pending.task_key.clone(),
    });
    write_json(&j.trial_dir.as_ref().unwrap().join("jobs.json"), &rec).unwrap();
    c.lock().found.insert("lost-array".into(), vec![JobId(99)]);
    // Chunk 0 finished meanwhile; 1 and 2 are still running.
    write_result(&j, ChunkIndex(0));
    let exec2 = executor(&c, config(), &d);
    let sink2 = RecordingSink::for_job(&j);
    let jj = j.clone();
    let finisher = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        write_result(&jj, ChunkIndex(1));
        write_result(&jj, ChunkIndex(2));
    };
    let (r, ()) = tokio::join!(exec2.evaluate(j.clone(), &sink2), finisher);
    r.unwrap();
    assert_eq!(sink2.order().len(), 3);
    assert_eq!(
        c.submissions().len(),
        1,
        "live jobs are adopted, not resubmitted"
    );
    assert!(
        c.calls().contains(&"find lost-array".to_string()),
        "{:?}",
        c.calls()
    );
    let rec = jobs_json(&j);
    assert!(rec.pending.is_empty());
    assert_eq!(
        rec.jobs.iter().map(|r| r.job).collect::<Vec<_>>(),
        vec![first, JobId(99)]
    );
    // Nothing was cancelled: the first executor kept its jobs.
    assert!(
        !c.calls().iter().any(|s| s.starts_with("cancel")),
        "{:?}",
        c.calls()
    );
}

#[tokio::test]
async fn dropping_an_evaluation_cancels_its_tasks_and_shutdown_stops_everything() {
    let d = tempdir("drop");
    let j = job(Some(&d));
    let c = Scripted::new(Box::new(|sub| {
        sub.array.iter().map(|&t| (t, TaskState::Active)).collect()
    }));
    let exec = executor(&c, config(), &d);
    {
        let sink = RecordingSink::for_job(&j);
        let run = exec.evaluate(j.clone(), &sink);
        tokio::pin!(run);
        tokio::select! {
            r = &mut run => panic!("finished: {r:?}"),
            () = tokio::time::sleep(Duration::from_millis(60)) => {}
        }
    }
    let (job_id, _) = c.submissions()[0].clone();
    for _ in 0..100 {
        if c.calls().iter().any(|s| s.starts_with("cancel")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cancels: Vec<String> = c
        .calls()
        .into_iter()
        .filter(|s| s.starts_with("cancel"))
        .collect();
    assert_eq!(cancels.len(), 1, "{cancels:?}");
    assert!(
        cancels[0].contains(&format!("job: JobId({})", job_id.0)),
        "{cancels:?}"
    );
    exec.shutdown(false).await.unwrap();
    let r = exec.evaluate(j.clone(), &RecordingSink::for_job(&j)).await;
    assert!(
        matches!(r, Err(ExecError::Fatal(CoreError::Cancelled))),
        "{r:?}"
    );
}
