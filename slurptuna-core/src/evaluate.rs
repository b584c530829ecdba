//! The one seed-evaluation routine, shared by the local executor, process workers and Slurm workers.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::loss::{BatchLoss, BatchRequest, Context, LossDefinition, LossValue};
use crate::params::Params;
use crate::seeds::SeedLayout;
use crate::stats::SeedStats;
use crate::trial::{ChunkIndex, TrialNumber};

/// Why evaluating a seed failed; the trial fails with this reason.
#[derive(Clone, Debug, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SeedFailure {
    /// The loss returned `Err`.
    #[error("seed {seed}: loss returned an error: {message}")]
    Error {
        /// The seed.
        seed: u64,
        /// The error's message (with its sources).
        message: String,
    },
    /// The loss panicked.
    #[error("seed {seed}: loss panicked: {message}")]
    Panic {
        /// The seed.
        seed: u64,
        /// The panic payload.
        message: String,
    },
    /// The loss returned NaN (or a list/map whose mean is NaN, e.g. an empty one).
    #[error("seed {seed}: loss returned NaN")]
    NotANumber {
        /// The seed.
        seed: u64,
    },
    /// A batch loss ([`crate::BatchLoss`]) failed as a whole: its command exited, hung or broke
    /// the protocol. `message` says how (and carries the tail of the command's stderr).
    #[error("loss failed: {message}")]
    Batch {
        /// What happened.
        message: String,
    },
    /// Evaluation was cancelled before all seeds ran.
    #[error("cancelled")]
    Cancelled,
}

/// The result of one chunk of seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChunkResult {
    /// Statistics over the chunk's seeds, folded in seed order.
    pub stats: SeedStats,
    /// Per-seed values, in seed order, when `keep_seed_values` is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<f64>>,
}

/// Which loss call a batch of seeds belongs to.
#[derive(Clone, Debug)]
pub struct SeedTask<'a> {
    /// The loss.
    pub loss: &'a LossDefinition,
    /// The trial's parameters.
    pub params: &'a Params,
    /// The entry being fitted, if any.
    pub entry_id: Option<Arc<str>>,
    /// The trial number (given to the loss in its [`Context`]).
    pub trial: TrialNumber,
    /// The trial's directory, where a batch loss may keep its log (created on demand), if the
    /// run has one.
    pub trial_dir: Option<&'a Path>,
}

/// `e`'s message followed by those of its sources, separated by `: `.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

fn eval_one(task: &SeedTask<'_>, seed: u64) -> Result<f64, SeedFailure> {
    let ctx = Context::new(task.entry_id.clone(), task.trial, seed);
    match catch_unwind(AssertUnwindSafe(|| task.loss.call(task.params, seed, &ctx))) {
        Err(p) => Err(SeedFailure::Panic {
            seed,
            message: panic_message(p.as_ref()),
        }),
        Ok(Err(e)) => Err(SeedFailure::Error {
            seed,
            message: error_chain(e.as_ref()),
        }),
        Ok(Ok(v)) => checked(&v, seed),
    }
}

fn checked(v: &LossValue, seed: u64) -> Result<f64, SeedFailure> {
    let x = v.total();
    if x.is_nan() {
        Err(SeedFailure::NotANumber { seed })
    } else {
        Ok(x)
    }
}

fn eval_batch(
    task: &SeedTask<'_>,
    batch: &dyn BatchLoss,
    seeds: &[u64],
    cancel: &AtomicBool,
) -> Result<Vec<f64>, SeedFailure> {
    let request = BatchRequest {
        params: task.params,
        seeds,
        entry_id: task.entry_id.as_deref(),
        trial: task.trial,
        trial_dir: task.trial_dir,
    };
    let values = match catch_unwind(AssertUnwindSafe(|| batch.evaluate_batch(&request, cancel))) {
        Err(p) => {
            return Err(SeedFailure::Batch {
                message: format!("batch loss panicked: {}", panic_message(p.as_ref())),
            })
        }
        Ok(r) => r?,
    };
    if values.len() != seeds.len() {
        return Err(SeedFailure::Batch {
            message: format!(
                "batch loss returned {} values for {} seeds",
                values.len(),
                seeds.len()
            ),
        });
    }
    values
        .iter()
        .zip(seeds)
        .map(|(v, &seed)| checked(v, seed))
        .collect()
}

/// Evaluates one unit of work: one call per seed, or one batch call for a batch loss.
fn eval_unit(
    task: &SeedTask<'_>,
    seeds: &[u64],
    cancel: &AtomicBool,
) -> Result<Vec<f64>, SeedFailure> {
    match task.loss.batch() {
        Some(b) => eval_batch(task, b, seeds, cancel),
        None => seeds.iter().map(|&s| eval_one(task, s)).collect(),
    }
}

/// What one evaluation thread returns: `(position, value)` pairs and its first failure.
type ThreadPart = (Vec<(usize, Vec<f64>)>, Option<(usize, SeedFailure)>);

/// Evaluates the loss on `seeds` with up to `parallelism` threads and returns the values in
/// seed order (independent of the thread count).
///
/// A panic or `Err` from the loss, or a NaN, stops the evaluation; the failure reported is that of
/// the earliest failing seed among those evaluated. `cancel` is checked before every seed.
pub fn evaluate_seeds(
    task: &SeedTask<'_>,
    seeds: &[u64],
    parallelism: usize,
    cancel: &AtomicBool,
) -> Result<Vec<f64>, SeedFailure> {
    let threads = parallelism.max(1).min(seeds.len().max(1));
    // A unit is what one thread takes at a time: one seed, or one batch for a batch loss.
    let unit = match task.loss.batch() {
        Some(b) => seeds.len().div_ceil(threads).clamp(1, b.max_batch().max(1)),
        None => 1,
    };
    let units: Vec<&[u64]> = seeds.chunks(unit).collect();
    let threads = threads.min(units.len().max(1));
    if threads == 1 {
        let mut out = Vec::with_capacity(seeds.len());
        for part in units {
            if cancel.load(Ordering::Relaxed) {
                return Err(SeedFailure::Cancelled);
            }
            match task.loss.batch() {
                Some(b) => out.extend(eval_batch(task, b, part, cancel)?),
                None => {
                    for &seed in part {
                        out.push(eval_one(task, seed)?);
                    }
                }
            }
        }
        return Ok(out);
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let parts: Vec<ThreadPart> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        if stop.load(Ordering::Relaxed) {
                            return (done, None);
                        }
                        if cancel.load(Ordering::Relaxed) {
                            return (done, Some((usize::MAX, SeedFailure::Cancelled)));
                        }
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(part) = units.get(i) else {
                            return (done, None);
                        };
                        match eval_unit(task, part, cancel) {
                            Ok(v) => done.push((i, v)),
                            Err(f) => {
                                stop.store(true, Ordering::Relaxed);
                                return (done, Some((i, f)));
                            }
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    (
                        Vec::new(),
                        Some((
                            usize::MAX,
                            SeedFailure::Panic {
                                seed: 0,
                                message: "evaluation thread died".into(),
                            },
                        )),
                    )
                })
            })
            .collect()
    });
    let mut out = vec![f64::NAN; seeds.len()];
    let mut first_failure: Option<(usize, SeedFailure)> = None;
    for (done, failure) in parts {
        for (i, v) in done {
            out[i * unit..i * unit + v.len()].copy_from_slice(&v);
        }
        if let Some((i, f)) = failure {
            if first_failure.as_ref().is_none_or(|(j, _)| i < *j) {
                first_failure = Some((i, f));
            }
        }
    }
    match first_failure {
        Some((_, f)) => Err(f),
        None => Ok(out),
    }
}

/// Evaluates one chunk of `layout` and folds it into a [`ChunkResult`].
pub fn evaluate_chunk(
    task: &SeedTask<'_>,
    layout: &SeedLayout,
    chunk: ChunkIndex,
    parallelism: usize,
    keep_values: bool,
    cancel: &AtomicBool,
) -> Result<ChunkResult, SeedFailure> {
    let seeds: Vec<u64> = layout.chunk_seeds(chunk).collect();
    let values = evaluate_seeds(task, &seeds, parallelism, cancel)?;
    Ok(ChunkResult {
        stats: SeedStats::from_values(&values),
        values: keep_values.then_some(values),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::loss;

    fn toy() -> LossDefinition {
        loss("eval-toy")
            .description("d")
            .param("x", (0.0, 1.0))
            .build(|p, seed, _| {
                if seed == 13 {
                    panic!("unlucky {seed}");
                }
                if seed == 17 {
                    return Err("bad seed".into());
                }
                if seed == 19 {
                    return Ok(f64::NAN.into());
                }
                Ok((p.f64("x")? + seed as f64).into())
            })
            .unwrap()
    }

    #[test]
    fn values_in_order_for_any_parallelism() {
        let l = toy();
        let p: Params = [("x", 0.5)].into_iter().collect();
        let task = SeedTask {
            loss: &l,
            params: &p,
            entry_id: None,
            trial: TrialNumber(0),
            trial_dir: None,
        };
        let seeds: Vec<u64> = vec![100, 7, 3, 55];
        let no = AtomicBool::new(false);
        for par in [1, 2, 3, 8] {
            let v = evaluate_seeds(&task, &seeds, par, &no).unwrap();
            assert_eq!(v, vec![100.5, 7.5, 3.5, 55.5]);
        }
    }

    #[test]
    fn failures_name_the_seed() {
        let l = toy();
        let p: Params = [("x", 0.5)].into_iter().collect();
        let task = SeedTask {
            loss: &l,
            params: &p,
            entry_id: None,
            trial: TrialNumber(0),
            trial_dir: None,
        };
        let no = AtomicBool::new(false);
        for (seed, want) in [(13, "panicked: unlucky 13"), (17, "bad seed"), (19, "NaN")] {
            for par in [1, 4] {
                let e = evaluate_seeds(&task, &[1, 2, seed, 4], par, &no).unwrap_err();
                assert!(e.to_string().contains(want), "{e}");
                assert!(e.to_string().contains(&format!("seed {seed}")), "{e}");
            }
        }
        let yes = AtomicBool::new(true);
        assert_eq!(
            evaluate_seeds(&task, &[1], 1, &yes).unwrap_err(),
            SeedFailure::Cancelled
        );
    }

    struct Batched {
        calls: std::sync::Mutex<Vec<Vec<u64>>>,
    }

    impl crate::loss::BatchLoss for Batched {
        fn evaluate_batch(
            &self,
            r: &BatchRequest<'_>,
            _cancel: &AtomicBool,
        ) -> Result<Vec<LossValue>, SeedFailure> {
            self.calls.lock().unwrap().push(r.seeds.to_vec());
            if r.seeds.contains(&17) {
                return Err(SeedFailure::Error {
                    seed: 17,
                    message: "bad seed".into(),
                });
            }
            if r.seeds.contains(&23) {
                return Ok(vec![LossValue::Scalar(1.0)]);
            }
            let x = r.params.f64("x").unwrap();
            Ok(r.seeds
                .iter()
                .map(|&s| LossValue::Scalar(if s == 19 { f64::NAN } else { x + s as f64 }))
                .collect())
        }
        fn max_batch(&self) -> usize {
            3
        }
    }

    #[test]
    fn batch_losses_get_batches_and_values_come_back_in_order() {
        let l = loss("eval-batch")
            .description("d")
            .param("x", (0.0, 1.0))
            .build_batch(Batched {
                calls: Default::default(),
            })
            .unwrap();
        let p: Params = [("x", 0.5)].into_iter().collect();
        let task = SeedTask {
            loss: &l,
            params: &p,
            entry_id: None,
            trial: TrialNumber(0),
            trial_dir: None,
        };
        let seeds: Vec<u64> = (100..110).collect();
        let no = AtomicBool::new(false);
        for par in [1, 2, 4, 16] {
            let v = evaluate_seeds(&task, &seeds, par, &no).unwrap();
            assert_eq!(v, seeds.iter().map(|&s| s as f64 + 0.5).collect::<Vec<_>>());
        }
        for (bad, want) in [
            (17, "seed 17: loss returned an error: bad seed"),
            (19, "seed 19: loss returned NaN"),
            (23, "returned 1 values for"),
        ] {
            for par in [1, 3] {
                let e = evaluate_seeds(&task, &[1, 2, bad, 4], par, &no).unwrap_err();
                assert!(e.to_string().contains(want), "{e}");
            }
        }
        // A per-seed call of a batch loss is a batch of one.
        let ctx = Context::new(None, TrialNumber(0), 7);
        assert_eq!(l.call(&p, 7, &ctx).unwrap(), LossValue::Scalar(7.5));
    }
}
