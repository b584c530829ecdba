//! **slurptuna**: hyperparameter optimisation for models whose loss must be averaged over many
//! random seeds.
//!
//! Per trial, a sampler (TPE by default) proposes parameters, the loss runs for every seed, and the
//! mean is the trial's value. [`optimize_run`] fits one shared study; [`optimize_entries`] fits one
//! study per entry (participant, condition). Seeds run in this process on threads or worker
//! processes ([`ExecutionMode::Single`]), or as job arrays of a batch scheduler
//! ([`ExecutionMode::Distributed`]; Slurm with cargo feature `slurm`, on by default, or a
//! [`Scheduler`] of your own). Every run is recorded in a run directory that survives crashes:
//! re-running the same call resumes it. [`optimize_run_async`] and [`optimize_entries_async`]
//! are the same calls for async programs; the synchronous ones also work inside a tokio runtime.
//!
//! A study whose loss is an external command (Python, R, Julia, ...) can also be described in a
//! TOML study file and run with `slurptuna run study.toml` or [`study::StudyFile`].
//!
//! Cargo features: `slurm` (the Slurm scheduler, default), `study` (study files, default), `cli`
//! (the `slurptuna` command-line tool, default; it needs `study`), `testing` (the conformance
//! suites, for your own backends). With `--no-default-features` the library has SINGLE mode and
//! any scheduler you give it.
//!
//! This crate is the public API and the only one users name; it holds the controller loop and
//! re-exports the domain types. It is **not** where samplers, executors or storage are implemented
//! (see `slurptuna-sampler`, `slurptuna-exec-local`, `slurptuna-exec-slurm`, `slurptuna-store`),
//! and it installs no global state: no `tracing` subscriber (without one, progress is printed as
//! plain lines on stderr), only the Ctrl-C / SIGTERM handling a call needs while it runs.
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

mod backends;
mod controller;
mod entries;
mod error;
#[cfg(feature = "export")]
pub mod export;
pub mod inspect;
mod mode;
mod options;
mod progress;
#[cfg(feature = "report")]
pub mod report;
mod result;
mod run;
mod signals;
/// Study files: a study whose loss is an external command, described in TOML (feature `study`).
#[cfg(feature = "study")]
pub mod study;
mod validate;
mod worker;

/// The scheduler crates of this build (`slurptuna::slurm` with the `slurm` feature); empty in a
/// build without any.
#[allow(unused_imports, unreachable_pub)]
pub use backends::compiled::*;
pub use backends::Scheduler;
pub use entries::{optimize_entries, optimize_entries_async};
pub use error::{Error, Result};
pub use mode::{execution_mode, ExecutionMode};
pub use options::{Durability, EntriesOptions, Racing, RunOptions, SamplerChoice, ValidationSeeds};
pub use result::{MultiOptimizeResult, OptimizeResult};
pub use run::{optimize_run, optimize_run_async};
#[cfg(feature = "study")]
pub use study::{StudyFile, StudyOutcome};

#[doc(inline)]
pub use slurptuna_core::{
    loss, search_param, AskContext, Backend, BackendEnv, BatchLoss, BatchRequest, BoxError,
    ChunkIndex, ChunkKey, ChunkResult, ChunkSink, Context, CoreError, Direction,
    DistributedOptions, Distribution, Dtype, ExecError, Executor, FailureKind, LossBuilder,
    LossDefinition, LossResult, LossValue, MemorySize, ParamSpace, ParamValue, Params, Sampler,
    SearchParam, SeedFailure, SeedLayout, SeedStats, TaskResources, TrialFailure, TrialJob,
    TrialNumber, TrialRecord, TrialState, ValidatedBest, ValidatedTrial, WorkerCommand,
};

/// A loss that is an external command speaking slurptuna's JSON line protocol (see the README):
/// build it with `loss(name)...build_batch(CommandLoss::new(CommandSpec::new(argv))?)`.
#[doc(inline)]
pub use slurptuna_exec_local::{CommandLoss, CommandSpec};

/// The samplers, for use with [`SamplerChoice::Custom`] or on their own.
pub mod samplers {
    pub use slurptuna_sampler::*;
}

/// The shared batch-scheduler layer: implement [`batch::BatchClient`] for a scheduler and
/// [`batch::BatchExecutor`] does the rest (array bookkeeping, one poll for all jobs, retries,
/// adoption on resume, the worker side). See "Adding a scheduler" in ARCHITECTURE.md.
pub mod batch {
    #[doc(inline)]
    pub use slurptuna_core::batch::*;

    /// The attribute [`BatchClient`] implementations use (re-exported from `async-trait`).
    pub use async_trait::async_trait;
}

/// Test support (feature `testing`): in-memory twins and the conformance suites
/// (`executor_suite`, `sampler_suite`, `store_suite`) for your own backends. Not a stable API.
#[cfg(feature = "testing")]
pub mod testing {
    #[doc(inline)]
    pub use slurptuna_core::testing::*;
}

/// The README's examples, compiled as doctests (with the default features, which they use).
#[doc = include_str!("../../README.md")]
#[cfg(all(doctest, feature = "slurm"))]
pub struct ReadmeDoctests;
