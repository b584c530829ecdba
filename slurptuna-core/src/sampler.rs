//! The `Sampler` trait: propose the next parameters from the history.

use std::fmt;
use std::sync::Arc;

use crate::error::Result;
use crate::mode::Direction;
use crate::params::Params;
use crate::space::ParamSpace;
use crate::trial::{TrialNumber, TrialRecord};

/// Everything a sampler may look at when proposing a trial: plain data, no storage handle.
#[derive(Clone, Copy, Debug)]
pub struct AskContext<'a> {
    /// The parameter space.
    pub space: &'a ParamSpace,
    /// Whether lower or higher values are better.
    pub direction: Direction,
    /// The number of the trial being proposed.
    pub trial: TrialNumber,
    /// Finished trials (complete and failed), in trial-number order.
    pub history: &'a [TrialRecord],
    /// Parameters of trials still being evaluated (for the constant liar).
    pub running: &'a [Params],
}

impl AskContext<'_> {
    /// Finished trials that completed with a finite or infinite (not NaN) value.
    pub fn completed(&self) -> impl Iterator<Item = (&TrialRecord, f64)> {
        self.history
            .iter()
            .filter_map(|t| t.value().filter(|v| !v.is_nan()).map(|v| (t, v)))
    }
}

/// Proposes parameters.
///
/// # Contract
/// - `ask` returns parameters with exactly the names of `ctx.space`, each legal for its
///   distribution (bounds, grid, type).
/// - `ask` is a pure function of the sampler's configuration (including its seed) and `ctx`: it
///   keeps no hidden state between calls. Random draws are seeded from the sampler seed and
///   `ctx.trial`, so a resumed run, given the same history, proposes what an uninterrupted run
///   would have proposed.
/// - Failed trials are in `ctx.history` (a sampler may skip them); trials in `ctx.running` have no
///   value yet, and a sampler should avoid proposing what is already running.
pub trait Sampler: Send + Sync + fmt::Debug {
    /// A short name for logs and `meta.json` (`"tpe"`, `"random"`, `"qmc"`).
    fn name(&self) -> &'static str;

    /// Proposes the parameters of trial `ctx.trial`.
    fn ask(&self, ctx: &AskContext<'_>) -> Result<Params>;
}

impl<S: Sampler + ?Sized> Sampler for Box<S> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn ask(&self, ctx: &AskContext<'_>) -> Result<Params> {
        (**self).ask(ctx)
    }
}

impl<S: Sampler + ?Sized> Sampler for Arc<S> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn ask(&self, ctx: &AskContext<'_>) -> Result<Params> {
        (**self).ask(ctx)
    }
}

impl<S: Sampler + ?Sized> Sampler for &S {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn ask(&self, ctx: &AskContext<'_>) -> Result<Params> {
        (**self).ask(ctx)
    }
}
