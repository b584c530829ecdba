//! [`ThreadExecutor`]: seeds evaluated on threads of this process.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use slurptuna_core::{
    evaluate_chunk, ChunkSink, CoreError, ExecError, Executor, FailureKind, LossDefinition,
    SeedFailure, SeedTask, TrialFailure, TrialJob,
};

use crate::error::LocalError;

/// Evaluates a trial's chunks one after another, each over `worker_parallelism` threads with
/// [`evaluate_chunk`], on a blocking thread so the async runtime stays free.
///
/// Several `evaluate` calls may run at once. Dropping an `evaluate` future sets the cancel flag
/// of its evaluation: no seed starts after that (a seed already running finishes on its own).
#[derive(Clone, Debug)]
pub struct ThreadExecutor {
    loss: LossDefinition,
    worker_parallelism: usize,
}

impl ThreadExecutor {
    /// An executor for `loss` using `worker_parallelism` threads per chunk.
    ///
    /// `worker_parallelism` is validated (> 0) with the other run options before an executor is
    /// built; here 0 cannot mean "no threads", so it runs one.
    ///
    /// ```
    /// use slurptuna_core::{loss, Executor};
    /// use slurptuna_exec_local::ThreadExecutor;
    /// let l = loss("doc-bowl").description("a bowl").param("x", (0.0, 1.0))
    ///     .build(|p, _, _| Ok(p.f64("x")?.powi(2).into())).unwrap();
    /// let exec = ThreadExecutor::new(l, 4);
    /// assert_eq!((exec.name(), exec.worker_parallelism()), ("threads", 4));
    /// ```
    pub fn new(loss: LossDefinition, worker_parallelism: usize) -> Self {
        Self {
            loss,
            worker_parallelism: worker_parallelism.max(1),
        }
    }

    /// Threads per chunk.
    pub fn worker_parallelism(&self) -> usize {
        self.worker_parallelism
    }

    /// The loss this executor evaluates.
    pub fn loss(&self) -> &LossDefinition {
        &self.loss
    }
}

/// Sets the flag when dropped: the evaluation it guards stops before its next seed.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[async_trait]
impl Executor for ThreadExecutor {
    fn name(&self) -> &'static str {
        "threads"
    }

    async fn evaluate(&self, job: TrialJob, sink: &dyn ChunkSink) -> Result<(), ExecError> {
        if job.loss_name != self.loss.name() {
            return Err(ExecError::Fatal(
                LocalError::WrongLoss {
                    expected: self.loss.name().to_string(),
                    requested: job.loss_name.clone(),
                }
                .into_core("threads"),
            ));
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let _guard = CancelOnDrop(cancel.clone());
        for &chunk in &job.chunks {
            let (loss, params, entry_id, layout, flag) = (
                self.loss.clone(),
                job.params.clone(),
                job.entry_id.clone(),
                job.layout.clone(),
                cancel.clone(),
            );
            let (trial, parallelism, keep, dir) = (
                job.trial,
                self.worker_parallelism,
                job.keep_seed_values,
                job.trial_dir.clone(),
            );
            let outcome = tokio::task::spawn_blocking(move || {
                let task = SeedTask {
                    loss: &loss,
                    params: &params,
                    entry_id,
                    trial,
                    trial_dir: dir.as_deref(),
                };
                evaluate_chunk(&task, &layout, chunk, parallelism, keep, &flag)
            })
            .await
            .map_err(|e| {
                ExecError::Fatal(
                    LocalError::Internal {
                        executor: "threads",
                        detail: format!("evaluation thread of trial {trial} failed: {e}"),
                    }
                    .into_core("threads"),
                )
            })?;
            match outcome {
                Ok(result) => sink.chunk_done(job.trial, chunk, result)?,
                Err(SeedFailure::Cancelled) => return Err(ExecError::Fatal(CoreError::Cancelled)),
                Err(failure) => {
                    return Err(ExecError::Trial(TrialFailure {
                        kind: FailureKind::Loss,
                        reason: failure.to_string(),
                        chunk: Some(chunk),
                        state: None,
                    }))
                }
            }
        }
        Ok(())
    }
}
