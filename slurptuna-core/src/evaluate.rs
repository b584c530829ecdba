//! The one seed-evaluation routine, shared by the local executor, process workers and Slurm workers.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::loss::{Context, LossDefinition};
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
        Ok(Ok(v)) => {
            let x = v.total();
            if x.is_nan() {
                Err(SeedFailure::NotANumber { seed })
            } else {
                Ok(x)
            }
        }
    }
}

/// What one evaluation thread returns: `(position, value)` pairs and its first failure.
type ThreadPart = (Vec<(usize, f64)>, Option<(usize, SeedFailure)>);

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
    if threads == 1 {
        let mut out = Vec::with_capacity(seeds.len());
        for &seed in seeds {
            if cancel.load(Ordering::Relaxed) {
                return Err(SeedFailure::Cancelled);
            }
            out.push(eval_one(task, seed)?);
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
                        let Some(&seed) = seeds.get(i) else {
                            return (done, None);
                        };
                        match eval_one(task, seed) {
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
            out[i] = v;
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
}
