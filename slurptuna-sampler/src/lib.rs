//! Samplers for slurptuna: they propose the parameters of the next trial from the finished
//! trials and the trials still running, behind core's [`slurptuna_core::Sampler`] trait.
//!
//! - [`TpeSampler`] (configured by [`TpeConfig`]): the Tree-structured Parzen Estimator of
//!   Optuna 5.0 — multivariate, constant liar, Optuna's bandwidths, weights and priors —
//!   implemented natively with every candidate-independent term precomputed, so a proposal
//!   costs microseconds to a few milliseconds even with thousands of trials.
//! - [`RandomSampler`]: independent uniform draws.
//! - [`QmcSampler`]: a scrambled Sobol sequence.
//!
//! Every sampler is a pure function of its seed and the [`slurptuna_core::AskContext`]: the
//! draws of trial `t` come from a random stream keyed by (seed, `t`) only, so a resumed run
//! proposes exactly what an uninterrupted run would have.
//!
//! This crate is **not** the place for running trials, storing them or choosing the sampler
//! of a run: the `slurptuna` facade does that (TPE by default). It does no I/O.
//!
//! ```
//! use slurptuna_core::{
//!     search_param, AskContext, Direction, ParamSpace, Params, Sampler, SeedStats, TrialNumber,
//!     TrialRecord, TrialState,
//! };
//! use slurptuna_sampler::TpeSampler;
//!
//! let space = ParamSpace::new([("x", search_param().range(-5.0, 5.0))]).unwrap();
//! let sampler = TpeSampler::new(42);
//! let mut history: Vec<TrialRecord> = Vec::new();
//! for t in 0..40 {
//!     let ctx = AskContext {
//!         space: &space,
//!         direction: Direction::Minimize,
//!         trial: TrialNumber(t),
//!         history: &history,
//!         running: &[],
//!     };
//!     let params: Params = sampler.ask(&ctx).unwrap();
//!     let x = params.f64("x").unwrap();
//!     let stats = SeedStats::from_values(&[(x - 1.0).powi(2)]);
//!     history.push(TrialRecord { number: TrialNumber(t), params, state: TrialState::Complete { stats } });
//! }
//! let best = history.iter().filter_map(|t| t.value()).fold(f64::INFINITY, f64::min);
//! assert!(best < 0.05, "best {best}");
//! ```

mod above;
mod dims;
mod error;
mod math;
mod memo;
mod parzen;
mod qmc;
mod random;
mod tpe;

pub use error::SamplerError;
pub use qmc::QmcSampler;
pub use random::RandomSampler;
pub use tpe::{Gamma, PrunedRank, Startup, TpeConfig, TpeSampler, Weights};
