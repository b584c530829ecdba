//! **slurptuna**: hyperparameter optimisation for models whose loss must be averaged over many
//! random seeds.
//!
//! Per trial, a sampler (TPE by default) proposes parameters, the loss runs for every seed, and the
//! mean is the trial's value. [`optimize_run`] fits one shared study; [`optimize_entries`] fits one
//! study per entry (participant, condition). Seeds run in this process on threads or worker
//! processes ([`ExecutionMode::Single`]), or as Slurm job arrays ([`ExecutionMode::Distributed`],
//! cargo feature `slurm`, on by default). Every run is recorded in a run directory that survives
//! crashes: re-running the same call resumes it.
//!
//! This crate is the public API and the only one users name; it holds the controller loop and
//! re-exports the domain types. It is **not** where samplers, executors or storage are implemented
//! (see `slurptuna-sampler`, `slurptuna-exec-local`, `slurptuna-exec-slurm`, `slurptuna-store`).
//!
//! ```no_run
//! use slurptuna::{loss, optimize_run, search_param, RunOptions};
//!
//! let model = loss("toy")
//!     .description("recover alpha and beta")
//!     .param("alpha", (0.0, 1.0))
//!     .param("lr", search_param().range(1e-4, 1e-1).dtype("log"))
//!     .build(|p, seed, _ctx| {
//!         let noise = (seed % 10) as f64 * 1e-3;
//!         Ok(((p.f64("alpha")? - 0.3).abs() + p.f64("lr")? * 0.01 + noise).into())
//!     })?;
//! let r = optimize_run(&model, RunOptions { n_trials: 40, n_seeds: Some(10), ..Default::default() })?;
//! println!("best {} at {}", r.best_value, r.best_params);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Worker mode: a worker process is this same program re-executed by slurptuna. When it reaches
//! `optimize_run` / `optimize_entries`, the call evaluates the seeds it was given and exits the
//! process, so the program must build the same losses before that call (keep
//! `forward_sys_argv_to_workers` on if the loss depends on the command line).

mod controller;
mod entries;
mod error;
mod options;
mod progress;
mod result;
mod run;
mod signals;
mod validate;
mod worker;

pub use entries::optimize_entries;
pub use error::{Error, Result};
pub use options::{EntriesOptions, RunOptions, SamplerChoice};
pub use result::{MultiOptimizeResult, OptimizeResult};
pub use run::optimize_run;

#[doc(inline)]
pub use slurptuna_core::{
    execution_mode, loss, search_param, AskContext, Context, Direction, Distribution,
    ExecutionMode, LossBuilder, LossDefinition, LossResult, LossValue, ParamSpace, ParamValue,
    Params, Sampler, SearchParam, SeedStats, TrialNumber, TrialRecord, TrialState,
};

/// The samplers, for use with [`SamplerChoice::Custom`] or on their own.
pub mod samplers {
    pub use slurptuna_sampler::*;
}

/// The Slurm backend (DISTRIBUTED mode).
#[cfg(feature = "slurm")]
pub use slurptuna_exec_slurm as slurm;

#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
