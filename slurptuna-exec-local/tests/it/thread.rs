use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use slurptuna_core::{loss, Context, ExecError, Executor, SeedSpec, TrialNumber};
use slurptuna_exec_local::ThreadExecutor;

use crate::losses;
use crate::support::{job, seeds, within, x, CollectSink};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_seeds_give_exactly_their_values_in_order() {
    within(async {
        let exec = ThreadExecutor::new(losses::affine(), 3);
        let sink = CollectSink::default();
        let spec = seeds(&[100, 7, 3, 55], 3);
        exec.evaluate(job("affine", 4, x(0.3), &spec, Some("p01")), &sink)
            .await
            .unwrap();
        let ctx = |s| Context::new(Some("p01".into()), TrialNumber(4), s);
        let want: Vec<f64> = [100, 7, 3, 55]
            .iter()
            .map(|&s| losses::affine_value(0.3, s, &ctx(s)))
            .collect();
        let r = sink.results();
        assert_eq!(r.len(), 2, "chunks [100, 7, 3] and [55]");
        assert_eq!(sink.trial_values(TrialNumber(4)), want);
        let mean = want.iter().sum::<f64>() / 4.0;
        assert!((sink.trial_stats(TrialNumber(4)).mean() - mean).abs() < 1e-9);
        assert_eq!(sink.trial_stats(TrialNumber(4)).count(), 4);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_seed_fails_the_trial_naming_the_seed() {
    within(async {
        let exec = ThreadExecutor::new(losses::crashy(), 2);
        for (list, seed, text) in [
            (&[12u64, 13, 15][..], 13, "unlucky seed 13"),
            (&[14u64][..], 14, "panicking for seed 14"),
        ] {
            let sink = CollectSink::default();
            let e = exec
                .evaluate(job("crashy", 0, x(0.1), &seeds(list, 10), None), &sink)
                .await
                .unwrap_err();
            let ExecError::Trial(f) = e else {
                panic!("expected a trial failure, got {e:?}")
            };
            assert!(f.reason.contains(&format!("seed {seed}")), "{}", f.reason);
            assert!(f.reason.contains(text), "{}", f.reason);
            assert_eq!(f.chunk.map(|c| c.0), Some(0));
            assert!(sink.results().is_empty());
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_for_another_loss_is_fatal() {
    let exec = ThreadExecutor::new(losses::affine(), 1);
    let e = exec
        .evaluate(
            job("crashy", 0, x(0.1), &seeds(&[1], 1), None),
            &CollectSink::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ExecError::Fatal(_)), "{e:?}");
    assert!(crate::support::chain(&e).contains("'crashy'"), "{e}");
}

static CALLS: AtomicUsize = AtomicUsize::new(0);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_future_stops_the_work() {
    within(async {
        let l = loss("thread-counting")
            .description("counts its calls")
            .param("x", (0.0, 1.0))
            .build(|_, seed, _| {
                CALLS.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
                Ok((seed as f64).into())
            })
            .unwrap();
        let exec = ThreadExecutor::new(l, 2);
        let spec = SeedSpec {
            n_seeds: Some(200),
            chunk_size: Some(100),
            ..SeedSpec::default()
        };
        let sink = CollectSink::default();
        let run = exec.evaluate(job("thread-counting", 0, x(0.5), &spec, None), &sink);
        assert!(tokio::time::timeout(Duration::from_millis(150), run)
            .await
            .is_err());
        // Seeds already running finish; no new one starts.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let settled = CALLS.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(CALLS.load(Ordering::SeqCst), settled);
        assert!(settled > 0 && settled < 50, "{settled} seeds ran");
        assert!(sink.results().is_empty());
    })
    .await;
}
