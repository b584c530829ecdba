//! The conversation with the workers: a trial's chunks split into batches, each batch sent to a
//! worker and its replies read by batch id, and the values put back in seed order.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use slurptuna_core::{
    ChunkIndex, ChunkResult, ChunkSink, CoreError, Delivery, ExecError, FailureKind, SeedFailure,
    SeedStats, TrialFailure, TrialJob,
};
use tokio::task::JoinSet;

use super::process::Worker;
use super::supervisor::finish_in_background;
use super::{PoolInner, EXECUTOR};
use crate::error::LocalError;
use crate::protocol::{encode, from_bits, BatchId, BatchRequest, Reply, Request};

/// Why a batch produced no values.
enum BatchFailure {
    /// The loss failed for a seed (the worker is fine).
    Seed(SeedFailure),
    /// The worker died; the reason names the seed, trial and signal.
    Crashed(String),
    /// The pool cannot go on.
    Fatal(CoreError),
}

fn fatal(e: LocalError) -> BatchFailure {
    BatchFailure::Fatal(e.into_core(EXECUTOR))
}

/// Evaluates `job` on the pool: every chunk split into one batch per worker, the batches run
/// concurrently, and each chunk handed to `sink` once all its batches are back.
pub(super) async fn evaluate(
    pool: &Arc<PoolInner>,
    job: TrialJob,
    sink: &dyn ChunkSink,
) -> Result<(), ExecError> {
    struct Assembly {
        values: Vec<f64>,
        missing: usize,
    }
    let mut pending: BTreeMap<ChunkIndex, Assembly> = BTreeMap::new();
    // Dropping the set (this future dropped, or an early return) aborts the batches still
    // running, which kills their workers.
    let mut set = JoinSet::new();
    for &chunk in &job.chunks {
        let seeds: Vec<u64> = job.layout.chunk_seeds(chunk).collect();
        let ranges = split(seeds.len(), pool.cfg.workers);
        pending.insert(
            chunk,
            Assembly {
                values: vec![f64::NAN; seeds.len()],
                missing: ranges.len(),
            },
        );
        for range in ranges {
            let req = BatchRequest {
                batch: BatchId(pool.next_batch.fetch_add(1, Ordering::SeqCst)),
                loss: job.loss_name.clone(),
                entry_id: job.entry_id.as_deref().map(str::to_string),
                trial: job.trial.0,
                params: job.params.clone(),
                seeds: seeds[range.clone()].to_vec(),
            };
            let pool = pool.clone();
            set.spawn(async move { (chunk, range, run_batch(pool, req, chunk).await) });
        }
    }
    let internal = |detail: String| {
        ExecError::Fatal(
            LocalError::Internal {
                executor: EXECUTOR,
                detail,
            }
            .into_core(EXECUTOR),
        )
    };
    while let Some(joined) = set.join_next().await {
        let (chunk, range, outcome) = joined
            .map_err(|e| internal(format!("a batch task of trial {} failed: {e}", job.trial)))?;
        let values = match outcome {
            Ok(values) => values,
            Err(BatchFailure::Seed(SeedFailure::Cancelled)) => {
                return Err(ExecError::Fatal(CoreError::Cancelled))
            }
            Err(BatchFailure::Seed(failure)) => {
                return Err(ExecError::Trial(TrialFailure {
                    kind: FailureKind::Loss,
                    reason: failure.to_string(),
                    chunk: Some(chunk),
                    state: None,
                }))
            }
            Err(BatchFailure::Crashed(reason)) => {
                return Err(ExecError::Trial(TrialFailure {
                    kind: FailureKind::Crashed,
                    reason,
                    chunk: Some(chunk),
                    state: None,
                }))
            }
            Err(BatchFailure::Fatal(e)) => return Err(ExecError::Fatal(e)),
        };
        let Some(assembly) = pending.get_mut(&chunk) else {
            return Err(internal(format!("a result for unknown chunk {chunk}")));
        };
        let Some(slot) = assembly.values.get_mut(range.clone()) else {
            return Err(internal(format!(
                "seed positions {range:?} outside chunk {chunk}"
            )));
        };
        slot.copy_from_slice(&values);
        assembly.missing -= 1;
        if assembly.missing == 0 {
            if let Some(done) = pending.remove(&chunk) {
                let result = ChunkResult {
                    stats: SeedStats::from_values(&done.values),
                    values: job.keep_seed_values.then_some(done.values),
                };
                if sink.chunk_done(job.trial, chunk, result)? == Delivery::Stop {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// Runs one batch on a worker lent by the pool, handing the worker back if it is still usable.
async fn run_batch(
    pool: Arc<PoolInner>,
    req: BatchRequest,
    chunk: ChunkIndex,
) -> Result<Vec<f64>, BatchFailure> {
    let mut lease = pool.acquire().await.map_err(fatal)?;
    let Some(worker) = lease.worker.as_mut() else {
        return Err(fatal(LocalError::Internal {
            executor: EXECUTOR,
            detail: "a lease without a worker".into(),
        }));
    };
    let (outcome, healthy) = converse(&pool, worker, &req, chunk).await;
    if healthy {
        lease.release();
    }
    outcome
}

/// Runs one batch on one worker; returns the values and whether the worker is still usable.
async fn converse(
    pool: &PoolInner,
    worker: &mut Worker,
    req: &BatchRequest,
    chunk: ChunkIndex,
) -> (Result<Vec<f64>, BatchFailure>, bool) {
    let pid = worker.proc.pid;
    if !worker.losses.contains(&req.loss) {
        let e = LocalError::LossNotRegistered {
            requested: req.loss.clone(),
            program: pool.cfg.program.clone(),
            pid,
            argv: worker.argv.clone(),
            registered: worker.losses.clone(),
        };
        return (Err(fatal(e)), true);
    }
    let protocol = |detail: String| (Err(fatal(LocalError::Protocol { pid, detail })), false);
    let line = match encode(&Request::Batch(req.clone())) {
        Ok(line) => line,
        Err(e) => return protocol(format!("could not encode a request: {e}")),
    };
    let mut current_seed = None;
    // A failed write means the worker is gone: the reply pipe closes and we land in the crash
    // report below, which says how it ended.
    if worker.proc.send(&line).is_ok() {
        while let Some(msg) = worker.replies.recv().await {
            match msg {
                Ok(Reply::Start { batch, seed }) if batch == req.batch => {
                    current_seed = Some(seed);
                }
                Ok(Reply::Done { batch, value_bits }) if batch == req.batch => {
                    if value_bits.len() != req.seeds.len() {
                        return protocol(format!(
                            "batch {} has {} seeds but the worker returned {} values",
                            batch.0,
                            req.seeds.len(),
                            value_bits.len()
                        ));
                    }
                    return (Ok(from_bits(&value_bits)), true);
                }
                Ok(Reply::Failed { batch, failure }) if batch == req.batch => {
                    return (Err(BatchFailure::Seed(failure)), true);
                }
                Ok(Reply::UnknownLoss {
                    batch,
                    requested,
                    registered,
                    argv,
                }) if batch == req.batch => {
                    let e = LocalError::LossNotRegistered {
                        requested,
                        program: pool.cfg.program.clone(),
                        pid,
                        argv,
                        registered,
                    };
                    return (Err(fatal(e)), true);
                }
                Ok(other) => {
                    return protocol(format!(
                        "unexpected message while waiting for batch {}: {other:?}",
                        req.batch.0
                    ))
                }
                Err(garbled) => return protocol(garbled),
            }
        }
    }
    let (status, stderr) = finish_in_background(&worker.proc, pool.shutdown_grace).await;
    if pool.closed.load(Ordering::SeqCst) {
        return (Err(BatchFailure::Fatal(CoreError::Cancelled)), false);
    }
    let reason = match current_seed {
        Some(seed) => format!(
            "seed {seed}: worker process {pid} died with {status} while evaluating it (trial {}, chunk {chunk}); the worker is replaced{stderr}",
            req.trial
        ),
        None => format!(
            "worker process {pid} died with {status} before starting a seed of trial {} (chunk {chunk}, seeds {:?}); the worker is replaced{stderr}",
            req.trial, req.seeds
        ),
    };
    tracing::warn!(pid, trial = req.trial, "{reason}");
    (Err(BatchFailure::Crashed(reason)), false)
}

/// Splits `n` positions into at most `parts` contiguous, near-equal ranges.
fn split(n: usize, parts: usize) -> Vec<Range<usize>> {
    let parts = parts.clamp(1, n.max(1));
    let (base, extra) = (n / parts, n % parts);
    let mut out = Vec::with_capacity(parts);
    let mut start = 0;
    for i in 0..parts {
        let len = base + usize::from(i < extra);
        if len > 0 {
            out.push(start..start + len);
        }
        start += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_every_position_once_in_order() {
        for n in 1..40 {
            for parts in 1..9 {
                let r = split(n, parts);
                assert_eq!(r.len(), parts.min(n));
                assert_eq!(r[0].start, 0);
                assert_eq!(r.last().unwrap().end, n);
                assert!(r.windows(2).all(|w| w[0].end == w[1].start));
                let (min, max) = r.iter().fold((usize::MAX, 0), |(a, b), x| {
                    (a.min(x.len()), b.max(x.len()))
                });
                assert!(max - min <= 1, "{n} {parts} {r:?}");
            }
        }
    }
}
