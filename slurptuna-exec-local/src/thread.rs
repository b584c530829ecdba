//! [`ThreadExecutor`]: seeds evaluated on threads of this process.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use slurptuna_core::{
    evaluate_chunk, ChunkIndex, ChunkResult, ChunkSink, CoreError, Delivery, ExecError, Executor,
    FailureKind, LossDefinition, SeedFailure, SeedTask, TrialFailure, TrialJob,
};

use crate::error::LocalError;

/// The longest a chunk may have taken for the next one to be evaluated inline (see
/// [`ThreadExecutor`]).
const INLINE_CHUNK_BUDGET: Duration = Duration::from_micros(200);

/// Evaluates a trial's chunks one after another, each over `worker_parallelism` threads with
/// [`evaluate_chunk`], on a blocking thread so the async runtime stays free.
///
/// A loss that takes microseconds is not worth a thread hand-off per chunk: with
/// `worker_parallelism = 1`, once a chunk of this loss has been seen to take less than
/// 200 µs, later chunks are evaluated inline on the calling task (a chunk that turns out
/// slower sends the next ones back to a blocking thread). Values are the same either way: the
/// same routine evaluates them. A batch loss (a command) always runs on a blocking thread: it
/// waits on another process, and a command that hangs must not hold the task that would see a
/// Ctrl-C and cancel it.
///
/// Several `evaluate` calls may run at once. Dropping an `evaluate` future sets the cancel flag
/// of its evaluation: no seed starts after that (a seed already running finishes on its own).
#[derive(Clone, Debug)]
pub struct ThreadExecutor {
    loss: Arc<LossDefinition>,
    worker_parallelism: usize,
    /// Nanoseconds the last chunk took (`u64::MAX`: not measured yet).
    last_chunk_nanos: Arc<AtomicU64>,
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
            loss: Arc::new(loss),
            worker_parallelism: worker_parallelism.max(1),
            last_chunk_nanos: Arc::new(AtomicU64::new(u64::MAX)),
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
impl ThreadExecutor {
    /// Whether the next chunk is evaluated on the calling task (see the type's documentation).
    fn inline(&self) -> bool {
        // Never a batch loss (a command): it waits on another process, and a command that hangs
        // must not hold the task that would see a Ctrl-C and cancel it.
        self.worker_parallelism == 1
            && !self.loss.is_batch()
            && self.last_chunk_nanos.load(Ordering::Relaxed) < INLINE_CHUNK_BUDGET.as_nanos() as u64
    }

    async fn on_blocking_thread(
        &self,
        job: &TrialJob,
        chunk: ChunkIndex,
        cancel: &Arc<AtomicBool>,
    ) -> Result<Result<ChunkResult, SeedFailure>, ExecError> {
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
        let last = self.last_chunk_nanos.clone();
        tokio::task::spawn_blocking(move || {
            let task = SeedTask {
                loss: &loss,
                params: &params,
                entry_id,
                trial,
                trial_dir: dir.as_deref(),
            };
            let started = Instant::now();
            let r = evaluate_chunk(&task, &layout, chunk, parallelism, keep, &flag);
            record(&last, started.elapsed());
            r
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
        })
    }
}

fn record(last: &AtomicU64, took: Duration) {
    let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX - 1);
    last.store(nanos, Ordering::Relaxed);
}

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

    async fn shutdown(&self, _keep_jobs: bool) -> Result<(), CoreError> {
        if let Some(batch) = self.loss.batch() {
            batch.release();
        }
        Ok(())
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
            let outcome = if self.inline() {
                let task = SeedTask {
                    loss: &self.loss,
                    params: &job.params,
                    entry_id: job.entry_id.clone(),
                    trial: job.trial,
                    trial_dir: job.trial_dir.as_deref(),
                };
                let started = Instant::now();
                let r = evaluate_chunk(&task, &job.layout, chunk, 1, job.keep_seed_values, &cancel);
                record(&self.last_chunk_nanos, started.elapsed());
                r
            } else {
                self.on_blocking_thread(&job, chunk, &cancel).await?
            };
            match outcome {
                Ok(result) => {
                    if sink.chunk_done(job.trial, chunk, result)? == Delivery::Stop {
                        // The guard raises the cancel flag for anything still running.
                        return Ok(());
                    }
                }
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
