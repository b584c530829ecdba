//! `FakeExecutor`: an in-process [`Executor`] scripted through a [`FakeExecutorHandle`].

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::error::CoreError;
use crate::evaluate::{evaluate_chunk, SeedTask};
use crate::executor::{
    ChunkSink, Delivery, ExecError, Executor, FailureKind, TrialFailure, TrialJob,
};
use crate::loss::LossDefinition;
use crate::trial::{ChunkIndex, TrialNumber};

/// What a scripted trial does.
#[derive(Clone, Debug)]
enum Script {
    /// Deliver `delivered` chunks, then fail the trial with `reason`.
    Fail { delivered: usize, reason: String },
    /// Deliver `delivered` chunks, then stop the run.
    Fatal { delivered: usize },
}

#[derive(Debug, Default)]
struct Inner {
    scripts: BTreeMap<TrialNumber, Script>,
    delay: Duration,
    calls: Vec<(TrialNumber, Vec<ChunkIndex>)>,
}

/// An [`Executor`] that evaluates chunks in-process, one after another, as its
/// [`FakeExecutorHandle`] scripts it. Every call is recorded.
#[derive(Clone, Debug)]
pub struct FakeExecutor {
    loss: LossDefinition,
    inner: Arc<Mutex<Inner>>,
}

/// Scripts a [`FakeExecutor`] and reads its record of calls (the tower-test pattern).
#[derive(Clone, Debug)]
pub struct FakeExecutorHandle {
    inner: Arc<Mutex<Inner>>,
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeExecutor {
    /// An executor of `loss` and the handle that scripts it.
    pub fn new(loss: LossDefinition) -> (FakeExecutor, FakeExecutorHandle) {
        let inner = Arc::new(Mutex::new(Inner::default()));
        (
            FakeExecutor {
                loss,
                inner: inner.clone(),
            },
            FakeExecutorHandle { inner },
        )
    }
}

impl FakeExecutorHandle {
    /// Makes trial `n` fail with `reason` before delivering anything.
    pub fn fail_trial(&self, n: u64, reason: &str) {
        self.fail_after(n, 0, reason);
    }

    /// Makes trial `n` deliver its first `delivered` chunks, then fail with `reason`.
    pub fn fail_after(&self, n: u64, delivered: usize, reason: &str) {
        lock(&self.inner).scripts.insert(
            TrialNumber(n),
            Script::Fail {
                delivered,
                reason: reason.to_string(),
            },
        );
    }

    /// Makes trial `n` deliver its first `delivered` chunks, then return a fatal error.
    pub fn fatal_after(&self, n: u64, delivered: usize) {
        lock(&self.inner)
            .scripts
            .insert(TrialNumber(n), Script::Fatal { delivered });
    }

    /// Waits `delay` before evaluating each chunk (cancellable: dropping the future stops it).
    pub fn delay(&self, delay: Duration) {
        lock(&self.inner).delay = delay;
    }

    /// `(trial, chunks)` of every `evaluate` call, in order.
    pub fn calls(&self) -> Vec<(TrialNumber, Vec<ChunkIndex>)> {
        lock(&self.inner).calls.clone()
    }
}

#[async_trait]
impl Executor for FakeExecutor {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn evaluate(&self, job: TrialJob, sink: &dyn ChunkSink) -> Result<(), ExecError> {
        let (script, delay) = {
            let mut g = lock(&self.inner);
            g.calls.push((job.trial, job.chunks.clone()));
            (g.scripts.get(&job.trial).cloned(), g.delay)
        };
        let stop_after = match &script {
            Some(Script::Fail { delivered, .. } | Script::Fatal { delivered }) => *delivered,
            None => usize::MAX,
        };
        let task = SeedTask {
            loss: &self.loss,
            params: &job.params,
            entry_id: job.entry_id.clone(),
            trial: job.trial,
            trial_dir: None,
        };
        let never = AtomicBool::new(false);
        for &c in job.chunks.iter().take(stop_after) {
            if delay.is_zero() {
                // Let other tasks run between chunks, as a real backend would.
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(delay).await;
            }
            let r = evaluate_chunk(&task, &job.layout, c, 1, job.keep_seed_values, &never)
                .map_err(|f| ExecError::Trial(TrialFailure::loss(f.to_string()).in_chunk(c)))?;
            if sink.chunk_done(job.trial, c, r)? == Delivery::Stop {
                return Ok(());
            }
        }
        match script {
            Some(Script::Fail { reason, .. }) => Err(ExecError::Trial(TrialFailure::new(
                FailureKind::Other,
                reason,
            ))),
            Some(Script::Fatal { .. }) => Err(ExecError::Fatal(CoreError::Executor {
                executor: "fake",
                source: format!("trial {}: fatal (scripted)", job.trial).into(),
            })),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{executor_suite, suite_loss, ExecutorHarness};

    /// Delivers the first chunk of every trial twice.
    struct Stutter(FakeExecutor);

    #[async_trait]
    impl Executor for Stutter {
        fn name(&self) -> &'static str {
            "stutter"
        }
        async fn evaluate(&self, job: TrialJob, sink: &dyn ChunkSink) -> Result<(), ExecError> {
            if let Some(&c) = job.chunks.first() {
                let task = SeedTask {
                    loss: &self.0.loss,
                    params: &job.params,
                    entry_id: job.entry_id.clone(),
                    trial: job.trial,
                    trial_dir: None,
                };
                let never = AtomicBool::new(false);
                if let Ok(r) = evaluate_chunk(&task, &job.layout, c, 1, true, &never) {
                    let _ = sink.chunk_done(job.trial, c, r);
                }
            }
            self.0.evaluate(job, sink).await
        }
    }

    /// Evaluates on a detached thread, so that dropping the future does not stop the work.
    struct Detached(LossDefinition);

    #[async_trait]
    impl Executor for Detached {
        fn name(&self) -> &'static str {
            "detached"
        }
        async fn evaluate(&self, job: TrialJob, sink: &dyn ChunkSink) -> Result<(), ExecError> {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let loss = self.0.clone();
            let j = job.clone();
            std::thread::spawn(move || {
                let task = SeedTask {
                    loss: &loss,
                    params: &j.params,
                    entry_id: j.entry_id.clone(),
                    trial: j.trial,
                    trial_dir: None,
                };
                let never = AtomicBool::new(false);
                for &c in &j.chunks {
                    let r = evaluate_chunk(&task, &j.layout, c, 1, j.keep_seed_values, &never);
                    if tx.send((c, r)).is_err() {
                        // The receiver is gone, yet this thread would go on in a real leak;
                        // keep evaluating to model it.
                        continue;
                    }
                }
            });
            while let Some((c, r)) = rx.recv().await {
                let r = r.map_err(|f| ExecError::Trial(TrialFailure::loss(f.to_string())))?;
                if sink.chunk_done(job.trial, c, r)? == Delivery::Stop {
                    return Ok(());
                }
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_fake_executor_passes_the_suite_and_broken_ones_fail_it() {
        let dir = std::env::temp_dir().join(format!("slurptuna-core-suite-{}", std::process::id()));
        let (fake, _handle) = FakeExecutor::new(suite_loss());
        executor_suite(&ExecutorHarness::new(&fake, &dir.join("fake")))
            .await
            .unwrap();

        let (inner, _) = FakeExecutor::new(suite_loss());
        let e = executor_suite(&ExecutorHarness::new(&Stutter(inner), &dir.join("stutter")))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("delivered twice"), "{e}");

        let e = executor_suite(&ExecutorHarness::new(
            &Detached(suite_loss()),
            &dir.join("detached"),
        ))
        .await
        .unwrap_err();
        assert!(e.to_string().contains("dropping the future"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_handle_scripts_partial_delivery_and_fatal_errors() {
        let dir = std::env::temp_dir();
        let (fake, handle) = FakeExecutor::new(suite_loss());
        handle.fail_after(1, 2, "node on fire");
        handle.fatal_after(2, 1);
        let job = crate::testing::suite_job(1, "value", 0.5, (0..8).collect(), 2, &dir).unwrap();
        let sink = crate::testing::RecordingSink::for_job(&job);
        match fake.evaluate(job, &sink).await {
            Err(ExecError::Trial(f)) => assert_eq!(f.reason, "node on fire"),
            other => panic!("{other:?}"),
        }
        assert_eq!(sink.order().len(), 2);
        let job = crate::testing::suite_job(2, "value", 0.5, (0..8).collect(), 2, &dir).unwrap();
        let sink = crate::testing::RecordingSink::for_job(&job);
        assert!(matches!(
            fake.evaluate(job, &sink).await,
            Err(ExecError::Fatal(_))
        ));
        assert_eq!(sink.order().len(), 1);
        assert_eq!(handle.calls().len(), 2);
    }
}
