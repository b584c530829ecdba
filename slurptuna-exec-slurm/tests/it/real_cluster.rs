//! Against a real Slurm (`cargo xtask slurm up`). They run when `sinfo` answers; with
//! `SLURPTUNA_TEST_SLURM=1` a missing cluster fails them; otherwise they print a visible
//! "skipped: no Slurm" and return. Every test uses its own job-name prefix, cancels what it
//! submitted, and checks that `squeue` shows no job of it afterwards.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use slurptuna_core::testing::{executor_suite, ExecutorHarness};
use slurptuna_core::{ChunkIndex, Executor, FailureKind, SeedSpec, TrialJob};
use slurptuna_exec_slurm::{CliSlurm, JobId, SlurmClient, SlurmExecutor, TaskRef};

use crate::support::*;

/// True when a cluster answers. Panics when `SLURPTUNA_TEST_SLURM=1` and none does.
pub(crate) fn cluster(test: &str) -> bool {
    static ANSWERS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let answers = *ANSWERS.get_or_init(sinfo_answers);
    if answers {
        return true;
    }
    if std::env::var("SLURPTUNA_TEST_SLURM").as_deref() == Ok("1") {
        panic!("SLURPTUNA_TEST_SLURM=1 but no Slurm cluster answers `sinfo`: start one with `cargo xtask slurm up`");
    }
    eprintln!("skipped: no Slurm ({test}; start one with `cargo xtask slurm up`)");
    false
}

/// Runs `sinfo -h` with a 10 s deadline (a half-configured client can retry for a minute).
fn sinfo_answers() -> bool {
    let Ok(mut child) = Command::new("sinfo")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

/// Options for the real cluster, with a job-name prefix unique to the test (and no QoS, which
/// a cluster with accounting may not know).
pub(crate) fn real_options(tag: &str) -> TestOptions {
    options().with(|o| {
        o.slurm.result_check_interval = Duration::from_millis(50);
        o.slurm.job_name_prefix = prefix(tag);
        o.distributed.poll_interval = Duration::from_millis(300);
        o.distributed.attempt_timeout = Duration::from_secs(240);
        o.distributed.resources.time_limit = Duration::from_secs(120);
        o.distributed.resources.qos = None;
    })
}

/// An executor on the real cluster whose tasks run the fixture program in `cwd`.
fn real_executor(cwd: &std::path::Path, opts: TestOptions) -> SlurmExecutor {
    opts.executor(worker(cwd), 1, Arc::new(CliSlurm::new()))
}

fn prefix(tag: &str) -> String {
    format!("it{}-{tag}", std::process::id())
}

/// Job ids (with their names) that `squeue` still lists with our prefix.
fn our_jobs(tag: &str) -> Vec<String> {
    let out = Command::new("squeue")
        .args(["-h", "-o", "%i %j"])
        .output()
        .expect("squeue runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|n| n.starts_with(&prefix(tag)))
        })
        .map(str::to_string)
        .collect()
}

/// Cancels anything left with our prefix, then asserts that nothing of the test remains.
pub(crate) async fn assert_no_jobs_left(tag: &str) {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let left = our_jobs(tag);
        if left.is_empty() {
            return;
        }
        if Instant::now() > end {
            let ids: Vec<String> = left
                .iter()
                .filter_map(|l| l.split_whitespace().next().map(str::to_string))
                .collect();
            let _ = Command::new("scancel").args(&ids).status();
            panic!("jobs of {tag} left in the queue: {left:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_study_of_three_trials_matches_in_process() {
    if !cluster("real_study_of_three_trials_matches_in_process") {
        return;
    }
    losses();
    let tag = "study";
    let dir = tempfile::tempdir().unwrap();
    let exec = real_executor(dir.path(), real_options(tag));
    let sink = Collect::default();
    let jobs: Vec<TrialJob> = (0..3)
        .map(|t| {
            job(
                "fx-quad",
                None,
                t,
                0.2 * (t + 1) as f64,
                &spec16(),
                dir.path(),
            )
        })
        .collect();
    let explicit = SeedSpec {
        seeds: Some(vec![100, 7, 3, 55, 9, 1000, 42]),
        chunk_size: Some(3),
        ..Default::default()
    };
    let odd = job("fx-quad", Some("p 1"), 3, 0.7, &explicit, dir.path());
    let (a, b, c, d) = within(120, async {
        tokio::join!(
            exec.evaluate(jobs[0].clone(), &sink),
            exec.evaluate(jobs[1].clone(), &sink),
            exec.evaluate(jobs[2].clone(), &sink),
            exec.evaluate(odd.clone(), &sink),
        )
    })
    .await;
    for r in [a, b, c, d] {
        r.unwrap();
    }
    for j in jobs.iter().chain([&odd]) {
        assert_eq!(
            sink.merged(j.trial.0).mean().to_bits(),
            in_process(j).mean().to_bits(),
            "trial {}",
            j.trial
        );
    }
    assert_eq!(sink.merged(3).count(), 7);
    assert_no_jobs_left(tag).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_failures_are_detected_retried_and_reported() {
    if !cluster("real_failures_are_detected_retried_and_reported") {
        return;
    }
    losses();
    let tag = "fail";
    let dir = tempfile::tempdir().unwrap();
    let exec = real_executor(dir.path(), real_options(tag));
    let sink = Collect::default();
    let exit = job("fx-exit", None, 0, 0.5, &spec16(), dir.path());
    let panic = job("fx-panic", None, 1, 0.5, &spec16(), dir.path());
    let ok = job("fx-quad", None, 2, 0.5, &spec16(), dir.path());
    let (e, p, o) = within(120, async {
        tokio::join!(
            exec.evaluate(exit, &sink),
            exec.evaluate(panic, &sink),
            exec.evaluate(ok.clone(), &sink)
        )
    })
    .await;
    let e = trial_failure(e);
    assert_eq!(e.state.as_deref(), Some("FAILED"), "{}", e.reason);
    assert!(
        e.reason.contains("after 2 attempts") && e.reason.contains("exiting with status 3"),
        "{}",
        e.reason
    );
    assert_eq!(e.kind, FailureKind::Scheduler, "{}", e.reason);
    let p = trial_failure(p);
    assert_eq!(p.state.as_deref(), Some("FAILED"), "{}", p.reason);
    assert_eq!(p.kind, FailureKind::Loss, "{}", p.reason);
    assert!(
        p.reason.contains("deliberate panic at seed 6"),
        "{}",
        p.reason
    );
    // The study goes on: the healthy trial next to them completed.
    o.unwrap();
    assert_eq!(
        sink.merged(2).mean().to_bits(),
        in_process(&ok).mean().to_bits()
    );
    assert_no_jobs_left(tag).await;
}

/// The job ids a trial's job record (`jobs.json`) lists, in submission order (empty while
/// there is none).
fn recorded_jobs(jobs_file: &std::path::Path) -> Vec<u64> {
    let rec: serde_json::Value = std::fs::read(jobs_file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    rec["jobs"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["job"].as_u64()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_scancel_from_outside_is_noticed_within_one_poll() {
    if !cluster("real_scancel_from_outside_is_noticed_within_one_poll") {
        return;
    }
    losses();
    let tag = "scancel";
    let dir = tempfile::tempdir().unwrap();
    let opts = real_options(tag);
    let poll = opts.distributed.poll_interval;
    let exec = real_executor(dir.path(), opts);
    let spec = SeedSpec {
        n_seeds: Some(160),
        chunk_size: Some(40),
        ..Default::default()
    };
    let j = job("fx-slow", None, 0, 0.5, &spec, dir.path());
    let jobs_file = j.trial_dir.as_ref().unwrap().join("jobs.json");
    let sink = Collect::default();
    let killer = async {
        let mut noticed = Vec::new();
        for n in 1..=2usize {
            // Wait for the n-th submission, then cancel its task for chunk 2: the first time once
            // it runs, the retry as soon as it is queued (under load, squeue can be slower than
            // a chunk, so waiting to see the retry running could miss it).
            let job_id = loop {
                if let Some(&id) = recorded_jobs(&jobs_file).get(n - 1) {
                    break JobId(id);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            let client = CliSlurm::new();
            loop {
                let s = client.queue(&[job_id]).await.unwrap();
                if s.iter().any(|t| {
                    t.task == Some(2)
                        && (n == 2 || t.state == slurptuna_exec_slurm::JobState::Running)
                }) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let at = Instant::now();
            client
                .cancel(&[TaskRef {
                    job: job_id,
                    task: Some(2),
                }])
                .await
                .unwrap();
            // Noticed when the executor records a new submission or the trial ends.
            loop {
                let subs = recorded_jobs(&jobs_file).len();
                if subs > n || (n == 2 && our_jobs(tag).is_empty()) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            noticed.push(at.elapsed());
        }
        noticed
    };
    let (r, noticed) = within(300, async { tokio::join!(exec.evaluate(j, &sink), killer) }).await;
    let f = trial_failure(r);
    // The retry's task may be cancelled while still pending; Slurm can drop a pending array task
    // from squeue before any poll sees it CANCELLED, and then it reads as vanished.
    let cancelled = f.state.as_deref() == Some("CANCELLED") && f.kind == FailureKind::Scheduler;
    assert!(
        cancelled || f.kind == FailureKind::Vanished,
        "{:?} {:?}: {}",
        f.kind,
        f.state,
        f.reason
    );
    assert_eq!(f.chunk, Some(ChunkIndex(2)));
    // Within one poll (plus the time squeue and sbatch take on a busy 2-core machine).
    assert!(noticed[0] < poll + Duration::from_secs(2), "{noticed:?}");
    assert_no_jobs_left(tag).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_requeued_task_reruns_its_chunk_without_an_attempt() {
    if !cluster("real_requeued_task_reruns_its_chunk_without_an_attempt") {
        return;
    }
    losses();
    let tag = "requeue";
    let dir = tempfile::tempdir().unwrap();
    let exec = real_executor(dir.path(), real_options(tag));
    let spec = SeedSpec {
        n_seeds: Some(160),
        chunk_size: Some(40),
        ..Default::default()
    };
    let j = job("fx-slow", None, 0, 0.5, &spec, dir.path());
    let jobs_file = j.trial_dir.as_ref().unwrap().join("jobs.json");
    let submissions = || recorded_jobs(&jobs_file);
    let sink = Collect::default();
    let requeuer = async {
        let job_id = loop {
            if let Some(&id) = submissions().first() {
                break JobId(id);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // Once task 1 runs (each task takes 6 s), requeue it as an admin or a preemption would.
        let client = CliSlurm::new();
        loop {
            let s = client.queue(&[job_id]).await.unwrap();
            if s.iter()
                .any(|t| t.task == Some(1) && t.state == slurptuna_exec_slurm::JobState::Running)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let out = Command::new("scontrol")
            .args(["requeue", &format!("{job_id}_1")])
            .output()
            .expect("scontrol runs");
        assert!(
            out.status.success(),
            "scontrol requeue: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        job_id
    };
    let (r, job_id) = within(300, async {
        tokio::join!(exec.evaluate(j.clone(), &sink), requeuer)
    })
    .await;
    r.unwrap();
    // Every chunk delivered once, with the in-process values: the requeued task ran its chunk
    // again and only the finished run published it.
    assert_eq!(sink.chunks(0).len(), 4);
    assert_eq!(sink.merged(0).count(), 160);
    assert_eq!(
        sink.merged(0).mean().to_bits(),
        in_process(&j).mean().to_bits()
    );
    // A requeue is not a failed attempt: nothing was resubmitted.
    assert_eq!(submissions(), vec![job_id.0]);
    // Slurm did requeue it (it keeps finished jobs for MinJobAge, 300 s).
    let shown = Command::new("scontrol")
        .args(["show", "job", &format!("{job_id}_1")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let restarts = shown
        .split_whitespace()
        .find_map(|w| w.strip_prefix("Restarts="));
    assert_eq!(restarts, Some("1"), "{shown}");
    assert_no_jobs_left(tag).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_time_limit_ends_as_timeout() {
    if !cluster("real_time_limit_ends_as_timeout") {
        return;
    }
    losses();
    let tag = "timeout";
    let dir = tempfile::tempdir().unwrap();
    // Slurm rounds --time up to a minute and checks limits every ~30 s: one attempt only.
    let opts = real_options(tag).with(|o| {
        o.distributed.resources.time_limit = Duration::from_secs(1);
        o.distributed.trial_retry_attempts = 0;
        o.distributed.poll_interval = Duration::from_secs(1);
    });
    let exec = real_executor(dir.path(), opts);
    let spec = SeedSpec {
        n_seeds: Some(4),
        chunk_size: Some(4),
        ..Default::default()
    };
    let j = job("fx-sleep", None, 0, 0.5, &spec, dir.path());
    let f = trial_failure(within(200, exec.evaluate(j, &Collect::default())).await);
    assert_eq!(f.state.as_deref(), Some("TIMEOUT"), "{}", f.reason);
    assert_eq!(f.kind, FailureKind::TimeLimit, "{}", f.reason);
    assert_no_jobs_left(tag).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_hostile_strings_run_correctly_and_execute_nothing() {
    if !cluster("real_hostile_strings_run_correctly_and_execute_nothing") {
        return;
    }
    losses();
    let tag = "hostile";
    let dir = tempfile::tempdir().unwrap();
    let exec = real_executor(dir.path(), real_options(tag));
    let entry = "p 1 'single' \"double\" $(touch pwned) `touch pwned2`; echo hi\nline two %A %% \\";
    let j = job("fx-quad", Some(entry), 0, 0.25, &spec16(), dir.path());
    let sink = Collect::default();
    within(120, exec.evaluate(j.clone(), &sink)).await.unwrap();
    assert_eq!(
        sink.merged(0).mean().to_bits(),
        in_process(&j).mean().to_bits()
    );
    for p in ["pwned", "pwned2"] {
        assert!(!dir.path().join(p).exists());
        assert!(!j.trial_dir.as_ref().unwrap().join(p).exists());
    }
    assert_no_jobs_left(tag).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_sigkilled_controller_resumes_without_recomputing() {
    if !cluster("real_sigkilled_controller_resumes_without_recomputing") {
        return;
    }
    let tag = "resume";
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let args: Vec<String> = ["controller", &d, "fx-slow", "0", "40", "10"]
        .map(String::from)
        .to_vec();
    let jobs_file = dir.path().join("trials/trial_00000/jobs.json");
    let mut first = Command::new(FIXTURE)
        .args(&args)
        .env("FIXTURE_JOB_PREFIX", prefix(tag))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once its array is submitted, while the tasks are queued or running.
    let end = Instant::now() + Duration::from_secs(60);
    while !jobs_file.exists() {
        if Instant::now() > end || first.try_wait().unwrap().is_some() {
            let _ = first.kill();
            panic!("the controller did not submit within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let live_after_kill = our_jobs(tag);
    let second = tokio::task::spawn_blocking(move || {
        Command::new(FIXTURE)
            .args(args)
            .env("FIXTURE_JOB_PREFIX", prefix(tag))
            .output()
            .unwrap()
    });
    let out = within(120, second).await.unwrap();
    assert!(
        out.status.success(),
        "second controller: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&jobs_file).unwrap()).unwrap();
    let records = records["jobs"].as_array().unwrap().clone();
    // Live jobs are re-adopted and finished ones delivered from their files: never resubmitted.
    assert_eq!(
        records.len(),
        1,
        "resubmitted (live after the kill: {live_after_kill:?}): {records:?}"
    );
    // Every chunk delivered by the second controller; every seed evaluated once.
    let delivered = std::fs::read_to_string(dir.path().join("delivered.log")).unwrap();
    let mut chunks: Vec<u64> = delivered
        .lines()
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect();
    chunks.sort_unstable();
    chunks.dedup();
    assert_eq!(chunks, vec![0, 1, 2, 3]);
    let mut e = evals(dir.path());
    e.sort_unstable();
    assert_eq!(
        e,
        (0..40).map(|s| (0, s)).collect::<Vec<_>>(),
        "a stored chunk was recomputed"
    );
    assert_no_jobs_left(tag).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_arrays_are_found_by_their_job_name() {
    if !cluster("real_arrays_are_found_by_their_job_name") {
        return;
    }
    losses();
    let tag = "find";
    let dir = tempfile::tempdir().unwrap();
    let exec = real_executor(dir.path(), real_options(tag));
    let j = job("fx-slow", None, 0, 0.5, &spec16(), dir.path());
    let sink = Collect::default();
    let listed = {
        let mut fut = Box::pin(exec.evaluate(j, &sink));
        tokio::select! {
            _ = &mut fut => panic!("the trial should still be running"),
            _ = wait_for(60, "the array in squeue", || !our_jobs(tag).is_empty()) => {}
        }
        our_jobs(tag)
    };
    // "123_4 name" or "123_[0-3] name": the array's id and its (unique) name.
    let (id, name) = listed[0].split_once(' ').unwrap();
    let array: u64 = id.split('_').next().unwrap().parse().unwrap();
    let found = CliSlurm::new().find(name.trim()).await.unwrap();
    assert_eq!(found, vec![JobId(array)], "{listed:?}");
    assert!(CliSlurm::new()
        .find(&format!("{name}-no-such-job"))
        .await
        .unwrap()
        .is_empty());
    exec.shutdown(false).await.unwrap();
    assert_no_jobs_left(tag).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_executor_conformance_suite() {
    if !cluster("real_executor_conformance_suite") {
        return;
    }
    let tag = "suite";
    let dir = tempfile::tempdir().unwrap();
    let exec = real_executor(dir.path(), real_options(tag));
    let leftovers = move || our_jobs(tag);
    let harness = ExecutorHarness {
        executor: &exec,
        dir: &dir.path().join("suite"),
        start_timeout: Duration::from_secs(90),
        grace: Duration::from_secs(30),
        leftovers: Some(&leftovers),
    };
    let r = within(900, executor_suite(&harness)).await;
    exec.shutdown(false).await.unwrap();
    r.unwrap();
    assert_no_jobs_left(tag).await;
}
