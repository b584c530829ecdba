use std::sync::Arc;
use std::time::{Duration, Instant};

use slurptuna_core::testing::{executor_suite, ExecutorHarness};
use slurptuna_core::{ChunkIndex, CoreError, ExecError, Executor, FailureKind, SeedSpec, TrialJob};
use slurptuna_exec_slurm::{
    FakeCall, FakeSlurm, FakeSlurmHandle, FakeSubmitError, JobState, SlurmExecutor,
};

use crate::support::*;

fn setup(
    opts: impl FnOnce(&mut TestOptions),
) -> (tempfile::TempDir, SlurmExecutor, FakeSlurmHandle) {
    setup_with(opts, 1)
}

/// A fake cluster and an executor on it whose tasks evaluate with `worker_parallelism`
/// threads.
fn setup_with(
    opts: impl FnOnce(&mut TestOptions),
    worker_parallelism: usize,
) -> (tempfile::TempDir, SlurmExecutor, FakeSlurmHandle) {
    losses();
    let dir = tempfile::tempdir().unwrap();
    let (fake, handle) = FakeSlurm::new();
    let exec =
        options()
            .with(opts)
            .executor(worker(dir.path()), worker_parallelism, Arc::new(fake));
    (dir, exec, handle)
}

/// After a test: nothing of it is left pending or running.
async fn assert_clean(h: &FakeSlurmHandle) {
    let idle = h.wait_idle(Duration::from_secs(5)).await;
    if !idle {
        h.cancel_all();
    }
    assert!(idle, "tasks left behind: {:?}", h.live_tasks());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_trials_of_four_chunks_match_in_process_bit_for_bit() {
    let (dir, exec, h) = setup(|o| o.distributed.array_parallelism_limit = Some(5));
    let sink = Collect::default();
    let jobs: Vec<TrialJob> = (0..3)
        .map(|t| {
            job(
                "fx-quad",
                None,
                t,
                0.1 + 0.3 * t as f64,
                &spec16(),
                dir.path(),
            )
        })
        .collect();
    let started = Instant::now();
    let results = within(60, futures_join(&exec, &jobs, &sink)).await;
    let elapsed = started.elapsed();
    for r in results {
        r.unwrap();
    }
    for j in &jobs {
        let got = sink.merged(j.trial.0);
        let want = in_process(j);
        assert_eq!(got.count(), 16);
        assert_eq!(
            got.mean().to_bits(),
            want.mean().to_bits(),
            "trial {}",
            j.trial
        );
        assert_eq!(sink.chunks(j.trial.0).len(), 4);
    }
    // array_parallelism_limit caps tasks across all trials of the executor.
    assert!(h.peak_running() <= 5, "peak {}", h.peak_running());
    // One squeue per poll interval covers all live jobs (plus a little slack for start-up).
    let queues = h
        .calls()
        .iter()
        .filter(|c| matches!(c, FakeCall::Queue(_)))
        .count();
    let polls = (elapsed.as_secs_f64() / 0.15).ceil() as usize;
    assert!(queues <= polls + 3, "{queues} squeue calls in {elapsed:?}");
    // Every seed evaluated exactly once.
    let mut e = evals(dir.path());
    e.sort_unstable();
    let mut want: Vec<(u64, u64)> = (0..3).flat_map(|t| (0..16).map(move |s| (t, s))).collect();
    want.sort_unstable();
    assert_eq!(e, want);
    assert_clean(&h).await;
}

async fn futures_join(
    exec: &SlurmExecutor,
    jobs: &[TrialJob],
    sink: &Collect,
) -> Vec<Result<(), ExecError>> {
    let a = exec.evaluate(jobs[0].clone(), sink);
    let b = exec.evaluate(jobs[1].clone(), sink);
    let c = exec.evaluate(jobs[2].clone(), sink);
    let (a, b, c) = tokio::join!(a, b, c);
    vec![a, b, c]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_non_contiguous_seeds_and_a_short_last_chunk() {
    let (dir, exec, h) = setup(|_| {});
    let spec = SeedSpec {
        seeds: Some(vec![100, 7, 3, 55, 9, 1000, 42]),
        chunk_size: Some(3),
        ..Default::default()
    };
    let j = job("fx-quad", Some("p1"), 0, 0.42, &spec, dir.path());
    assert_eq!(j.layout.num_chunks(), 3);
    let sink = Collect::default();
    within(60, exec.evaluate(j.clone(), &sink)).await.unwrap();
    let got = sink.merged(0);
    assert_eq!(got.count(), 7);
    assert_eq!(got.mean().to_bits(), in_process(&j).mean().to_bits());
    let mut seeds: Vec<u64> = evals(dir.path()).into_iter().map(|(_, s)| s).collect();
    seeds.sort_unstable();
    assert_eq!(seeds, vec![3, 7, 9, 42, 55, 100, 1000]);
    assert_clean(&h).await;
}

/// Runs a trial of `loss` expected to fail on every attempt; returns the failure, the time the
/// evaluation took, and the submissions.
async fn failing_trial(
    loss: &str,
    opts: impl FnOnce(&mut TestOptions),
) -> (
    slurptuna_core::TrialFailure,
    Vec<Vec<u64>>,
    tempfile::TempDir,
) {
    let (dir, exec, h) = setup(opts);
    let j = job(loss, None, 7, 0.5, &spec16(), dir.path());
    let sink = Collect::default();
    let f = trial_failure(within(60, exec.evaluate(j, &sink)).await);
    let subs: Vec<Vec<u64>> = h.submissions().into_iter().map(|(_, a)| a).collect();
    assert_eq!(subs.len(), 2, "one retry: {subs:?}");
    // The retry resubmits only chunks that had no result.
    let delivered: Vec<u64> = sink.chunks(7).keys().map(|c| c.0).collect();
    assert!(
        subs[1].iter().all(|c| !delivered.contains(c)),
        "{subs:?} {delivered:?}"
    );
    assert_clean(&h).await;
    // The study goes on: the same executor completes the next trial.
    let next = job("fx-quad", None, 8, 0.5, &spec16(), dir.path());
    within(60, exec.evaluate(next, &sink)).await.unwrap();
    assert_eq!(sink.chunks(8).len(), 4);
    assert_clean(&h).await;
    (f, subs, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_exiting_non_zero_fails_the_trial_after_one_retry() {
    let (f, subs, _dir) = failing_trial("fx-exit", |_| {}).await;
    assert_eq!(f.state.as_deref(), Some("FAILED"), "{}", f.reason);
    assert_eq!(f.kind, FailureKind::Scheduler, "{}", f.reason);
    assert_eq!(f.chunk, Some(ChunkIndex(1)));
    assert!(f.reason.contains("after 2 attempts"), "{}", f.reason);
    assert!(
        f.reason.contains("exiting with status 3 at seed 5"),
        "stderr tail missing: {}",
        f.reason
    );
    assert!(subs[1].contains(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_loss_fails_the_trial_with_the_panic_message() {
    let (f, _, _dir) = failing_trial("fx-panic", |_| {}).await;
    assert_eq!(f.state.as_deref(), Some("FAILED"));
    // The worker's failure record says the loss failed, not the task.
    assert_eq!(f.kind, FailureKind::Loss, "{}", f.reason);
    assert!(
        f.reason
            .contains("seed 6: loss panicked: fx-panic: deliberate panic at seed 6"),
        "{}",
        f.reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_killed_at_its_time_limit_is_a_timeout() {
    let (f, _, _dir) = failing_trial("fx-sleep", |o| {
        o.distributed.resources.time_limit = Duration::from_secs(1);
    })
    .await;
    assert_eq!(f.state.as_deref(), Some("TIMEOUT"), "{}", f.reason);
    assert_eq!(f.kind, FailureKind::TimeLimit, "{}", f.reason);
    assert_eq!(f.chunk, Some(ChunkIndex(0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attempt_timeout_cancels_and_fails_the_chunk() {
    let (f, _, _dir) = failing_trial("fx-sleep", |o| {
        o.distributed.attempt_timeout = Duration::from_millis(800);
    })
    .await;
    assert_eq!(f.kind, FailureKind::AttemptTimeout, "{}", f.reason);
    assert_eq!(f.state, None, "not a state Slurm reported: {}", f.reason);
    assert!(f.reason.contains("queue time counts"), "{}", f.reason);
}

/// Cancels (or makes vanish) chunk 2 of each submitted array from outside; checks that each is
/// noticed within one poll and that the trial then fails with `kind` and Slurm's `state`.
async fn external_kill(vanish: bool, kind: FailureKind, state: Option<&str>) {
    let (dir, exec, h) = setup(|_| {});
    let j = job("fx-slow", None, 3, 0.5, &spec16(), dir.path());
    let sink = Collect::default();
    let hh = h.clone();
    let killer = async move {
        let mut notice = Vec::new();
        for n in 1..=2 {
            wait_for(20, "a submission", || hh.submissions().len() >= n).await;
            let (job_id, _) = hh.submissions()[n - 1].clone();
            wait_for(20, "task 2 running", || {
                hh.task_states(job_id)
                    .iter()
                    .any(|(t, s)| *t == 2 && *s == JobState::Running)
            })
            .await;
            let at = Instant::now();
            if vanish {
                hh.vanish(job_id, 2);
            } else {
                hh.set_state(job_id, 2, JobState::Cancelled);
            }
            // Noticed when the executor reacts: a resubmission, or scancel of the others.
            let calls_before = hh.calls().len();
            wait_for(20, "a reaction", || {
                hh.calls()[calls_before..]
                    .iter()
                    .any(|c| matches!(c, FakeCall::Submit { .. } | FakeCall::Cancel(_)))
            })
            .await;
            notice.push(at.elapsed());
        }
        notice
    };
    let (r, notice) = within(60, async { tokio::join!(exec.evaluate(j, &sink), killer) }).await;
    let f = trial_failure(r);
    assert_eq!(f.kind, kind, "{}", f.reason);
    assert_eq!(f.state.as_deref(), state, "{}", f.reason);
    assert_eq!(f.chunk, Some(ChunkIndex(2)));
    for n in notice {
        // poll interval 150 ms + one result check; generous slack for a loaded machine.
        assert!(n < Duration::from_millis(900), "noticed after {n:?}");
    }
    assert_clean(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_cancelled_from_outside_is_noticed_within_one_poll() {
    external_kill(false, FailureKind::Scheduler, Some("CANCELLED")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_vanishing_from_the_queue_is_noticed_within_one_poll() {
    external_kill(true, FailureKind::Vanished, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_accounting_a_vanished_task_reports_its_final_state() {
    let (dir, exec, h) = setup(|o| o.distributed.trial_retry_attempts = 0);
    h.set_accounting(true);
    let j = job("fx-slow", None, 3, 0.5, &spec16(), dir.path());
    let sink = Collect::default();
    let hh = h.clone();
    let killer = async move {
        wait_for(20, "task 1 running", || {
            hh.submissions().first().is_some_and(|(job, _)| {
                hh.task_states(*job)
                    .iter()
                    .any(|(t, s)| *t == 1 && *s == JobState::Running)
            })
        })
        .await;
        let job = hh.submissions()[0].0;
        hh.vanish(job, 1);
    };
    let (r, ()) = within(60, async { tokio::join!(exec.evaluate(j, &sink), killer) }).await;
    let f = trial_failure(r);
    assert_eq!(f.state.as_deref(), Some("CANCELLED"), "{}", f.reason);
    assert_eq!(f.kind, FailureKind::Scheduler, "{}", f.reason);
    assert!(h
        .calls()
        .iter()
        .any(|c| matches!(c, FakeCall::Accounting(_))));
    assert_clean(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_resubmits_only_the_failed_chunk_while_the_others_run_on() {
    let (dir, exec, h) = setup(|o| o.distributed.fail_on_chunk_error = false);
    let j = job("fx-flaky", None, 4, 0.2, &spec16(), dir.path());
    let sink = Collect::default();
    within(60, exec.evaluate(j.clone(), &sink)).await.unwrap();
    let subs = h.submissions();
    assert_eq!(subs.len(), 2, "{subs:?}");
    assert_eq!(subs[0].1, vec![0, 1, 2, 3]);
    assert_eq!(subs[1].1, vec![1], "only the failed chunk is resubmitted");
    assert_eq!(
        sink.merged(4).mean().to_bits(),
        in_process(&j).mean().to_bits()
    );
    // No chunk of another task was cancelled or recomputed.
    assert!(!h.calls().iter().any(|c| matches!(c, FakeCall::Cancel(_))));
    let e = evals(dir.path());
    for s in (0..4).chain(8..16) {
        assert_eq!(e.iter().filter(|(_, x)| *x == s).count(), 1, "seed {s}");
    }
    assert_clean(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_on_chunk_error_cancels_the_others_and_retries_only_missing_chunks() {
    let (dir, exec, h) = setup(|_| {});
    h.set_max_running(1); // chunk 0 finishes, chunk 1 fails, 2 and 3 are still pending
    let j = job("fx-flaky", None, 4, 0.2, &spec16(), dir.path());
    let sink = Collect::default();
    within(60, exec.evaluate(j.clone(), &sink)).await.unwrap();
    let subs = h.submissions();
    assert_eq!(subs.len(), 2, "{subs:?}");
    assert_eq!(
        subs[1].1,
        vec![1, 2, 3],
        "chunk 0 had a result: not resubmitted"
    );
    assert!(h.calls().iter().any(|c| matches!(c, FakeCall::Cancel(_))));
    assert_eq!(
        sink.merged(4).mean().to_bits(),
        in_process(&j).mean().to_bits()
    );
    let e = evals(dir.path());
    assert_eq!(
        e.iter().filter(|(_, s)| *s < 4).count(),
        4,
        "chunk 0 ran once"
    );
    assert_clean(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_evaluation_cancels_its_tasks() {
    let (dir, exec, h) = setup(|_| {});
    let j = job("fx-slow", None, 1, 0.5, &spec16(), dir.path());
    let sink = Collect::default();
    {
        let fut = exec.evaluate(j, &sink);
        let hh = h.clone();
        tokio::select! {
            _ = fut => panic!("should still be running"),
            _ = wait_for(20, "running tasks", move || !hh.live_tasks().is_empty()) => {}
        }
    }
    assert_clean(&h).await;
    assert!(h.calls().iter().any(|c| matches!(c, FakeCall::Cancel(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_everything_or_keeps_jobs_for_a_resume() {
    for keep in [false, true] {
        let (dir, exec, h) = setup(|_| {});
        let exec = Arc::new(exec);
        let j = job("fx-slow", None, 1, 0.5, &spec16(), dir.path());
        let e2 = exec.clone();
        let task = tokio::spawn(async move {
            let sink = Collect::default();
            e2.evaluate(j, &sink).await
        });
        let hh = h.clone();
        within(
            20,
            wait_for(20, "running tasks", move || !hh.live_tasks().is_empty()),
        )
        .await;
        exec.shutdown(keep).await.unwrap();
        let r = within(10, task).await.unwrap();
        assert!(
            matches!(r, Err(ExecError::Fatal(CoreError::Cancelled))),
            "{r:?}"
        );
        if keep {
            assert!(
                !h.live_tasks().is_empty(),
                "keep_jobs must leave the jobs running"
            );
            assert!(!h.calls().iter().any(|c| matches!(c, FakeCall::Cancel(_))));
            h.cancel_all();
        }
        assert_clean(&h).await;
        // After shutdown no new work starts.
        let again = job("fx-quad", None, 2, 0.5, &spec16(), dir.path());
        let r = exec.evaluate(again, &Collect::default()).await;
        assert!(
            matches!(r, Err(ExecError::Fatal(CoreError::Cancelled))),
            "{r:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_controller_is_resumed_by_re_adopting_live_jobs() {
    let (dir, exec, h) = setup(|_| {});
    h.set_max_running(1);
    let j = job("fx-slow", None, 5, 0.5, &spec16(), dir.path());
    let sink = Collect::default();
    {
        let mut fut = Box::pin(exec.evaluate(j.clone(), &sink));
        let s2 = sink.clone();
        tokio::select! {
            _ = &mut fut => panic!("should still be running"),
            _ = wait_for(30, "the first chunk", move || s2.len() >= 1) => {}
        }
        // SIGKILL: the controller's code stops here; nothing is cancelled or cleaned up.
        std::mem::forget(fut);
    }
    drop(exec);
    assert!(!h.live_tasks().is_empty());
    let submits_before = h.submissions().len();
    // A new controller (fresh executor, same cluster) evaluates the same trial again; the
    // store still lists every chunk as missing, so the stored chunk comes from its file.
    let exec2 = resumed(dir.path(), &h);
    let sink2 = Collect::default();
    within(60, exec2.evaluate(j.clone(), &sink2)).await.unwrap();
    assert_eq!(
        h.submissions().len(),
        submits_before,
        "live jobs must be re-adopted, not resubmitted"
    );
    assert_each_seed_once(&sink2, &j, dir.path());
    assert_clean(&h).await;

    // Resumed again with every chunk done: nothing is submitted at all.
    let exec3 = resumed(dir.path(), &h);
    let sink3 = Collect::default();
    within(20, exec3.evaluate(j, &sink3)).await.unwrap();
    assert_eq!(sink3.chunks(5).len(), 4);
    assert_eq!(h.submissions().len(), submits_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_before_recording_a_submission_finds_it_by_name() {
    let (dir, exec, h) = setup(|_| {});
    h.set_max_running(1);
    let j = job("fx-slow", None, 7, 0.5, &spec16(), dir.path());
    // sbatch accepts the array, but the controller dies before it learns the job id.
    h.hang_after_next_submit();
    {
        let sink = Collect::default();
        let mut fut = Box::pin(exec.evaluate(j.clone(), &sink));
        let h2 = h.clone();
        tokio::select! {
            _ = &mut fut => panic!("should hang in sbatch"),
            _ = wait_for(30, "the submission", move || h2.submissions().len() == 1) => {}
        }
        std::mem::forget(fut);
    }
    drop(exec);
    assert!(!h.live_tasks().is_empty());
    let exec2 = resumed(dir.path(), &h);
    let sink2 = Collect::default();
    within(60, exec2.evaluate(j.clone(), &sink2)).await.unwrap();
    assert_eq!(
        h.submissions().len(),
        1,
        "the unrecorded array must be found by its name, not submitted again"
    );
    assert!(h.calls().iter().any(|c| matches!(c, FakeCall::Find(_))));
    assert_each_seed_once(&sink2, &j, dir.path());
    assert_clean(&h).await;
}

/// The 16 seeds (4 chunks) of trial `j` were delivered to `sink`, equal to the in-process
/// result, and each was evaluated exactly once in `cwd`.
fn assert_each_seed_once(sink: &Collect, j: &TrialJob, cwd: &std::path::Path) {
    let t = j.trial.0;
    assert_eq!(sink.chunks(t).len(), 4);
    assert_eq!(
        sink.merged(t).mean().to_bits(),
        in_process(j).mean().to_bits()
    );
    let mut e = evals(cwd);
    e.sort_unstable();
    assert_eq!(
        e,
        (0..16).map(|s| (t, s)).collect::<Vec<_>>(),
        "a seed was evaluated twice or not at all"
    );
}

/// A new controller's executor (fresh, same options) on the cluster behind `h`.
fn resumed(cwd: &std::path::Path, h: &FakeSlurmHandle) -> SlurmExecutor {
    options().executor(worker(cwd), 1, Arc::new(FakeSlurm::from_handle(h)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_controller_resubmits_only_missing_chunks_when_the_jobs_are_gone() {
    let (dir, exec, h) = setup(|_| {});
    h.set_max_running(1);
    let j = job("fx-slow", None, 6, 0.5, &spec16(), dir.path());
    let sink = Collect::default();
    {
        let mut fut = Box::pin(exec.evaluate(j.clone(), &sink));
        let s2 = sink.clone();
        tokio::select! {
            _ = &mut fut => panic!("should still be running"),
            _ = wait_for(30, "two chunks", move || s2.len() >= 2) => {}
        }
        std::mem::forget(fut);
    }
    drop(exec);
    // The cluster lost the jobs (e.g. an administrator cancelled them).
    h.cancel_all();
    assert_clean(&h).await;
    let done: Vec<ChunkIndex> = sink.chunks(6).keys().copied().collect();
    let missing: Vec<u64> = (0..4).filter(|c| !done.contains(&ChunkIndex(*c))).collect();
    let mut resumed = j.clone();
    resumed.chunks = missing.iter().map(|&c| ChunkIndex(c)).collect();
    let exec2 = self::resumed(dir.path(), &h);
    within(60, exec2.evaluate(resumed, &sink)).await.unwrap();
    let subs = h.submissions();
    let last = &subs.last().unwrap().1;
    assert!(
        last.iter().all(|c| missing.contains(c)),
        "{last:?} vs missing {missing:?}"
    );
    assert_eq!(sink.chunks(6).len(), 4);
    assert_eq!(
        sink.merged(6).mean().to_bits(),
        in_process(&j).mean().to_bits()
    );
    let e = evals(dir.path());
    for c in &done {
        for s in j.layout.chunk_seeds(*c) {
            assert_eq!(
                e.iter().filter(|(_, x)| *x == s).count(),
                1,
                "stored chunk {c} recomputed"
            );
        }
    }
    assert_clean(&h).await;
}

const HOSTILE: &str =
    "p 1 'single' \"double\" $(touch pwned) `touch pwned2`; rm -rf nothing\nline two\t%A %% \\";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_entry_ids_and_arguments_are_data_never_shell() {
    let (dir, exec, h) = setup(|_| {});
    let j = job("fx-quad", Some(HOSTILE), 9, 0.25, &spec16(), dir.path());
    let sink = Collect::default();
    within(60, exec.evaluate(j.clone(), &sink)).await.unwrap();
    // The loss value depends on every byte of the entry id: it arrived intact.
    assert_eq!(
        sink.merged(9).mean().to_bits(),
        in_process(&j).mean().to_bits()
    );
    for p in ["pwned", "pwned2"] {
        assert!(!dir.path().join(p).exists(), "{p} was created");
        assert!(
            !j.trial_dir.as_ref().unwrap().join(p).exists(),
            "{p} was created"
        );
    }
    let FakeCall::Submit { argv, .. } = h
        .calls()
        .into_iter()
        .find(|c| matches!(c, FakeCall::Submit { .. }))
        .unwrap()
    else {
        unreachable!()
    };
    let name = argv
        .iter()
        .find_map(|a| a.to_str()?.strip_prefix("--job-name=").map(str::to_string))
        .unwrap();
    assert!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)),
        "{name:?}"
    );
    assert!(
        argv.iter().any(|a| a == "a b $(touch pwned)"),
        "forwarded argv stays one argument"
    );
    assert_clean(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_loss_names_the_request_the_argv_and_the_losses_found() {
    let (dir, exec, h) = setup(|o| o.distributed.trial_retry_attempts = 0);
    let j = job("fx-not-built", None, 0, 0.5, &spec16(), dir.path());
    let f = trial_failure(within(60, exec.evaluate(j, &Collect::default())).await);
    for want in ["fx-not-built", "fx-quad", "--from-test", "after 1 attempt"] {
        assert!(f.reason.contains(want), "{want} missing from: {}", f.reason);
    }
    assert_clean(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrays_beyond_max_array_size_are_split() {
    let (dir, exec, h) = setup(|_| {});
    h.set_max_array_size(3);
    let spec = SeedSpec {
        n_seeds: Some(14),
        chunk_size: Some(2),
        ..Default::default()
    };
    let j = job("fx-quad", None, 0, 0.5, &spec, dir.path());
    let sink = Collect::default();
    within(60, exec.evaluate(j.clone(), &sink)).await.unwrap();
    let arrays: Vec<Vec<u64>> = h.submissions().into_iter().map(|(_, a)| a).collect();
    assert_eq!(arrays, vec![vec![0, 1, 2], vec![0, 1, 2], vec![0]]);
    assert_eq!(sink.chunks(0).len(), 7);
    assert_eq!(
        sink.merged(0).mean().to_bits(),
        in_process(&j).mean().to_bits()
    );
    assert_clean(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_limits_back_off_and_a_rejected_qos_is_fatal() {
    let (dir, exec, h) = setup(|o| o.distributed.resources.qos = Some("short".into()));
    h.fail_next_submit(FakeSubmitError::SubmitLimit);
    let j = job("fx-quad", None, 0, 0.5, &spec16(), dir.path());
    let sink = Collect::default();
    within(60, exec.evaluate(j, &sink)).await.unwrap();
    // The refused array of 4 tasks comes back as waves of 2 after a pause.
    assert_eq!(arrays(&h), [(false, 4), (true, 2), (true, 2)]);
    h.fail_next_submit(FakeSubmitError::InvalidQos);
    let r = exec
        .evaluate(job("fx-quad", None, 1, 0.5, &spec16(), dir.path()), &sink)
        .await;
    match r {
        Err(ExecError::Fatal(e)) => {
            let msg = format!(
                "{e}: {}",
                std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            );
            assert!(
                msg.contains("--qos=short") && msg.contains("slurm_qos"),
                "{msg}"
            );
        }
        other => panic!("expected a fatal error, got {other:?}"),
    }
    assert_clean(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_whose_answer_was_lost_is_found_by_name_not_submitted_twice() {
    let (dir, exec, h) = setup(|_| {});
    h.fail_next_submit(FakeSubmitError::LostAnswer);
    let j = job("fx-quad", None, 0, 0.5, &spec16(), dir.path());
    let sink = Collect::default();
    within(60, exec.evaluate(j, &sink)).await.unwrap();
    // sbatch "failed" but slurmctld had the array: it is adopted by its name, and its four
    // chunks ran once.
    assert_eq!(h.submissions().len(), 1, "{:?}", h.calls());
    assert!(h
        .calls()
        .iter()
        .any(|c| matches!(c, slurptuna_exec_slurm::FakeCall::Find(_))));
    assert_eq!(sink.chunks(0).len(), 4);
    assert_clean(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_values_are_kept_when_asked() {
    let (dir, exec, h) = setup_with(|_| {}, 3);
    let mut j = job("fx-quad", None, 0, 0.5, &spec16(), dir.path());
    j.keep_seed_values = true;
    let sink = Collect::default();
    within(60, exec.evaluate(j, &sink)).await.unwrap();
    for (c, r) in sink.chunks(0) {
        assert_eq!(r.values.as_ref().map(Vec::len), Some(4), "chunk {c}");
    }
    assert_clean(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_fail_on_chunk_error_only_the_failing_chunk_is_retried_before_failing() {
    let (f, subs, _dir) = failing_trial("fx-exit", |o| {
        o.distributed.fail_on_chunk_error = false;
    })
    .await;
    assert_eq!(subs[1], vec![1], "only chunk 1 is retried");
    assert_eq!(f.state.as_deref(), Some("FAILED"));
    assert_eq!(f.kind, FailureKind::Scheduler);
    assert!(f.reason.contains("after 2 attempts"), "{}", f.reason);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_executor_conformance_suite_passes_on_the_fake_cluster() {
    let (dir, exec, h) = setup(|_| {});
    let hh = h.clone();
    let leftovers =
        move || -> Vec<String> { hh.live_tasks().iter().map(|t| t.to_string()).collect() };
    let harness = ExecutorHarness {
        executor: &exec,
        dir: &dir.path().join("suite"),
        start_timeout: Duration::from_secs(30),
        grace: Duration::from_secs(10),
        leftovers: Some(&leftovers),
    };
    let r = within(300, executor_suite(&harness)).await;
    h.cancel_all();
    r.unwrap();
    assert_clean(&h).await;
}

/// 40 chunks of one seed each, 0..40.
fn spec40() -> SeedSpec {
    SeedSpec {
        n_seeds: Some(40),
        chunk_size: Some(1),
        ..Default::default()
    }
}

/// The submitted arrays: (accepted, tasks).
fn arrays(h: &FakeSlurmHandle) -> Vec<(bool, usize)> {
    h.calls()
        .iter()
        .filter_map(|c| match c {
            FakeCall::Submit { job, array, .. } => Some((job.is_some(), array.len())),
            _ => None,
        })
        .collect()
}

/// Three trials of 40 one-seed chunks on a cluster reporting a submit limit of 5, with
/// `configure` applied to the options: every chunk lands with the in-process values, no array
/// is refused, and neither an array nor the queue ever holds more than `cap` tasks.
async fn three_trials_under_a_reported_limit(configure: impl FnOnce(&mut TestOptions), cap: usize) {
    let (dir, exec, h) = setup(configure);
    h.set_max_submit_jobs(5, true);
    let sink = Collect::default();
    let jobs: Vec<TrialJob> = (0..3)
        .map(|t| {
            job(
                "fx-quad",
                None,
                t,
                0.2 + 0.3 * t as f64,
                &spec40(),
                dir.path(),
            )
        })
        .collect();
    for r in within(120, futures_join(&exec, &jobs, &sink)).await {
        r.unwrap();
    }
    for j in &jobs {
        assert_eq!(sink.merged(j.trial.0).count(), 40);
        assert_eq!(
            sink.merged(j.trial.0).mean().to_bits(),
            in_process(j).mean().to_bits()
        );
    }
    let a = arrays(&h);
    assert!(a.iter().all(|&(ok, n)| ok && n <= cap), "{a:?}");
    assert_eq!(a.iter().map(|&(_, n)| n).sum::<usize>(), 120);
    assert!(h.peak_live() <= cap as u64, "peak {}", h.peak_live());
    assert_clean(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reported_submit_limit_is_never_exceeded_nor_refused() {
    three_trials_under_a_reported_limit(|_| {}, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_queued_tasks_caps_the_queue_below_the_clusters_limit() {
    three_trials_under_a_reported_limit(|o| o.distributed.max_queued_tasks = Some(3), 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hidden_submit_limit_is_learned_from_refusals_in_waves() {
    let (dir, exec, h) = setup(|_| {});
    h.set_max_submit_jobs(5, false);
    let sink = Collect::default();
    let j = job("fx-quad", None, 0, 0.7, &spec40(), dir.path());
    within(120, exec.evaluate(j.clone(), &sink)).await.unwrap();
    assert_eq!(sink.merged(0).count(), 40);
    assert_eq!(
        sink.merged(0).mean().to_bits(),
        in_process(&j).mean().to_bits()
    );
    let a = arrays(&h);
    // Refused at 40, 20 and 10 tasks; after that never more than 5 tasks in one array, and
    // every chunk accepted exactly once.
    assert_eq!(&a[..3], [(false, 40), (false, 20), (false, 10)], "{a:?}");
    assert!(a[3..].iter().all(|&(_, n)| n <= 5), "{a:?}");
    assert_eq!(a.iter().filter(|x| x.0).map(|x| x.1).sum::<usize>(), 40);
    assert!(h.peak_live() <= 5, "peak {}", h.peak_live());
    assert_clean(&h).await;
}
