use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use slurptuna_core::{ExecError, Executor, Params, SeedSpec, TrialFailure, TrialNumber};
use slurptuna_exec_local::{process_is_running, LocalError, ThreadExecutor};

use crate::losses;
use crate::support::{chain, job, pool, pool_with, seeds, wait_until, within, x, CollectSink};

fn trial_failure(e: ExecError) -> TrialFailure {
    match e {
        ExecError::Trial(f) => f,
        other => panic!("expected a trial failure, got {}", chain(&other)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_and_threads_give_bit_identical_values_for_explicit_seeds() {
    within(async {
        let spec = seeds(&[100, 7, 3, 55], 3);
        let threads = CollectSink::default();
        ThreadExecutor::new(losses::affine(), 2)
            .evaluate(job("affine", 5, x(-0.4), &spec, Some("p01")), &threads)
            .await
            .unwrap();
        let procs = CollectSink::default();
        let exec = pool(3);
        exec.evaluate(job("affine", 5, x(-0.4), &spec, Some("p01")), &procs)
            .await
            .unwrap();
        assert_eq!(procs.results().len(), 2);
        assert_eq!(procs.results(), threads.results());
        let bits = |v: Vec<f64>| v.into_iter().map(f64::to_bits).collect::<Vec<_>>();
        assert_eq!(
            bits(procs.trial_values(TrialNumber(5))),
            bits(threads.trial_values(TrialNumber(5)))
        );
        assert_eq!(exec.worker_pids().len(), 3);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prints_of_the_loss_do_not_disturb_the_results() {
    within(async {
        let spec = SeedSpec {
            n_seeds: Some(12),
            chunk_size: Some(5),
            ..SeedSpec::default()
        };
        let threads = CollectSink::default();
        ThreadExecutor::new(losses::noisy(), 1)
            .evaluate(job("noisy", 0, x(0.2), &spec, None), &threads)
            .await
            .unwrap();
        let procs = CollectSink::default();
        pool(2)
            .evaluate(job("noisy", 0, x(0.2), &spec, None), &procs)
            .await
            .unwrap();
        assert_eq!(procs.results(), threads.results());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_fails_the_trial_naming_seed_and_signal_and_the_next_trial_works() {
    within(async {
        let exec = pool(2);
        // Seeds 0..10 in one chunk: the second worker's batch starts with seed 7, which aborts.
        let spec = SeedSpec {
            n_seeds: Some(10),
            chunk_size: Some(10),
            ..SeedSpec::default()
        };
        let sink = CollectSink::default();
        let f = trial_failure(
            exec.evaluate(job("crashy", 1, x(0.5), &spec, None), &sink)
                .await
                .unwrap_err(),
        );
        eprintln!("abort: {}", f.reason);
        assert!(f.reason.contains("seed 7"), "{}", f.reason);
        assert!(f.reason.contains("SIGABRT"), "{}", f.reason);
        assert!(f.reason.contains("trial 1"), "{}", f.reason);
        assert_eq!(f.chunk.map(|c| c.0), Some(0));
        assert!(sink.results().is_empty());
        assert!(exec.worker_pids().len() <= 2);

        let next = seeds(&[20, 21, 22, 23, 24, 25], 4);
        let threads = CollectSink::default();
        ThreadExecutor::new(losses::crashy(), 1)
            .evaluate(job("crashy", 2, x(0.5), &next, None), &threads)
            .await
            .unwrap();
        let procs = CollectSink::default();
        exec.evaluate(job("crashy", 2, x(0.5), &next, None), &procs)
            .await
            .unwrap();
        assert_eq!(procs.results(), threads.results());
        assert_eq!(exec.worker_pids().len(), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segfault_fails_the_trial_naming_the_signal() {
    within(async {
        let exec = pool(1);
        let sink = CollectSink::default();
        let f = trial_failure(
            exec.evaluate(job("crashy", 9, x(0.5), &seeds(&[3, 8], 2), None), &sink)
                .await
                .unwrap_err(),
        );
        eprintln!("segfault: {}", f.reason);
        assert!(f.reason.contains("seed 8"), "{}", f.reason);
        assert!(f.reason.contains("SIGSEGV"), "{}", f.reason);
        assert!(f.reason.contains("trial 9"), "{}", f.reason);
        exec.evaluate(job("crashy", 10, x(0.5), &seeds(&[3], 1), None), &sink)
            .await
            .unwrap();
        assert_eq!(sink.results().len(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_errors_and_panics_fail_the_trial_but_keep_the_worker() {
    within(async {
        let exec = pool_with(losses::crashy(), 1, &[]);
        exec.start_workers().await.unwrap();
        let before = exec.worker_pids();
        for (list, text) in [
            (
                &[12u64, 13, 15][..],
                "seed 13: loss returned an error: unlucky seed 13",
            ),
            (
                &[14u64][..],
                "seed 14: loss panicked: panicking for seed 14",
            ),
        ] {
            let f = trial_failure(
                exec.evaluate(
                    job("crashy", 0, x(0.1), &seeds(list, 10), None),
                    &CollectSink::default(),
                )
                .await
                .unwrap_err(),
            );
            assert_eq!(f.reason, text);
        }
        assert_eq!(exec.worker_pids(), before);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_trials_get_their_own_results() {
    within(async {
        let exec = Arc::new(pool(3));
        let sink = Arc::new(CollectSink::default());
        let threads = CollectSink::default();
        let reference = ThreadExecutor::new(losses::affine(), 1);
        let entries = ["p01", "participant-2", "c"];
        let mut tasks = Vec::new();
        for trial in 0..24u64 {
            let params: Params = x(-1.0 + trial as f64 / 12.0);
            let spec = if trial % 2 == 0 {
                seeds(&[100, 7, 3, 55, 9, 1000 + trial], 4)
            } else {
                SeedSpec {
                    n_seeds: Some(7),
                    chunk_size: Some(3),
                    ..SeedSpec::default()
                }
            };
            let entry = Some(entries[trial as usize % 3]);
            reference
                .evaluate(job("affine", trial, params.clone(), &spec, entry), &threads)
                .await
                .unwrap();
            let (exec, sink) = (exec.clone(), sink.clone());
            let j = job("affine", trial, params, &spec, entry);
            tasks.push(tokio::spawn(async move { exec.evaluate(j, &*sink).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let (got, want) = (sink.results(), threads.results());
        assert_eq!(got.len(), want.len());
        assert_eq!(got, want);
        assert!(exec.worker_pids().len() <= 3);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_future_kills_its_workers_and_later_trials_work() {
    within(async {
        let exec = pool(2);
        let mut ms = Params::new();
        ms.insert("ms", 400i64);
        let spec = SeedSpec {
            n_seeds: Some(8),
            chunk_size: Some(8),
            ..SeedSpec::default()
        };
        let sink = CollectSink::default();
        let mut busy = Vec::new();
        tokio::select! {
            r = exec.evaluate(job("sleepy", 0, ms, &spec, None), &sink) => {
                panic!("the slow trial finished first: {r:?}")
            }
            _ = async {
                assert!(wait_until(Duration::from_secs(20), || exec.worker_pids().len() == 2).await);
                tokio::time::sleep(Duration::from_millis(200)).await;
                busy = exec.worker_pids();
            } => {}
        }
        assert_eq!(busy.len(), 2);
        assert!(
            wait_until(Duration::from_secs(10), || busy.iter().all(|&p| !process_is_running(p))).await,
            "workers {busy:?} still running after their trial was dropped"
        );
        assert!(sink.results().is_empty());

        let after = CollectSink::default();
        exec.evaluate(job("affine", 1, x(0.0), &seeds(&[1, 2, 3], 3), None), &after)
            .await
            .unwrap();
        assert_eq!(after.results().len(), 1);
        let fresh: BTreeSet<u32> = exec.worker_pids().into_iter().collect();
        assert!(busy.iter().all(|p| !fresh.contains(p)));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_leaves_no_process_behind() {
    within(async {
        let exec = pool(2);
        let sink = CollectSink::default();
        exec.evaluate(
            job("forker", 0, x(0.0), &seeds(&[1, 2, 3, 4], 4), None),
            &sink,
        )
        .await
        .unwrap();
        let grandchildren: Vec<u32> = sink
            .trial_values(TrialNumber(0))
            .iter()
            .map(|&v| v as u32)
            .collect();
        let workers = exec.worker_pids();
        assert_eq!(workers.len(), 2);
        assert!(grandchildren.iter().all(|&p| process_is_running(p)));

        exec.shutdown(false).await.unwrap();
        assert!(exec.worker_pids().is_empty());
        assert!(
            workers.iter().all(|&p| !process_is_running(p)),
            "{workers:?}"
        );
        // The loss's own children died with their worker's process group (init reaps them).
        assert!(
            wait_until(Duration::from_secs(5), || grandchildren
                .iter()
                .all(|&p| !process_is_running(p)))
            .await,
            "children of the loss {grandchildren:?} survived the shutdown"
        );
        let e = exec
            .evaluate(job("affine", 1, x(0.0), &seeds(&[1], 1), None), &sink)
            .await
            .unwrap_err();
        assert!(matches!(e, ExecError::Fatal(_)));
        assert!(chain(&e).contains("shut down"), "{}", chain(&e));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_executor_kills_its_workers() {
    within(async {
        let exec = pool(2);
        exec.start_workers().await.unwrap();
        let workers = exec.worker_pids();
        assert_eq!(workers.len(), 2);
        drop(exec);
        assert!(
            workers.iter().all(|&p| !process_is_running(p)),
            "{workers:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_exits_early_is_a_clear_error() {
    within(async {
        let exec = pool_with(losses::affine(), 1, &["--exit-early"]);
        let e = exec
            .evaluate(
                job("affine", 0, x(0.0), &seeds(&[1], 1), None),
                &CollectSink::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, ExecError::Fatal(_)));
        let text = chain(&e);
        eprintln!("exit early: {text}");
        for part in [
            "exited with exit code 3 before reaching the slurptuna worker entry point",
            "--exit-early",
            "exiting before the worker entry point",
        ] {
            assert!(text.contains(part), "missing {part:?} in: {text}");
        }
        assert!(exec.worker_pids().is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_the_loss_is_a_clear_error() {
    within(async {
        let exec = pool_with(losses::affine(), 2, &["--no-losses"]);
        let e = exec.start_workers().await.unwrap_err();
        assert!(matches!(e, LocalError::LossNotRegistered { .. }), "{e}");
        let text = e.to_string();
        eprintln!("no loss: {text}");
        for part in ["'affine'", "--no-losses", "registered there: []"] {
            assert!(text.contains(part), "missing {part:?} in: {text}");
        }
        // Through evaluate, the same error stops the run.
        let e = exec
            .evaluate(
                job("affine", 0, x(0.0), &seeds(&[1, 2], 2), None),
                &CollectSink::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, ExecError::Fatal(_)));
        assert!(
            chain(&e).contains("has no loss named 'affine'"),
            "{}",
            chain(&e)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_never_answers_times_out_and_is_killed() {
    within(async {
        let exec = pool_with(losses::affine(), 1, &["--hang"])
            .with_startup_timeout(Duration::from_millis(800));
        let e = exec.start_workers().await.unwrap_err();
        assert!(matches!(e, LocalError::HandshakeTimeout { .. }), "{e}");
        assert!(e.to_string().contains("within 0.8 s"), "{e}");
        let LocalError::HandshakeTimeout { pid, .. } = e else {
            unreachable!()
        };
        assert!(!process_is_running(pid));
        assert!(exec.worker_pids().is_empty());
    })
    .await;
}
