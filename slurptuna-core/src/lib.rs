//! The vocabulary and rules of slurptuna: parameters and search spaces, loss definitions, seed
//! layouts and statistics, trial records, and the traits the backends implement.
//!
//! - [`Sampler`] proposes parameters from plain data ([`AskContext`]); implementations live in
//!   `slurptuna-sampler`.
//! - [`Executor`] evaluates the seeds of one trial; implementations live in `slurptuna-exec-local`
//!   (threads, worker processes) and the scheduler crates (`slurptuna-exec-slurm`).
//! - [`Store`] keeps a run durable; the on-disk implementation lives in `slurptuna-store`.
//! - [`Backend`] is an execution backend as a value (its options, validated by itself, and the
//!   executor it builds from the scheduler-independent [`DistributedOptions`]).
//!
//! [`evaluate_seeds`] is the one routine that runs a loss over seeds (panics and errors caught per
//! seed); every executor and worker uses it. [`SeedStats`] merges chunk statistics exactly.
//!
//! Features: `fs` (the one atomic-write helper every writer of shared files uses), `batch` (the
//! scheduler-independent layer of batch schedulers: [`batch::BatchClient`] is what a scheduler
//! implements, [`batch::BatchExecutor`] does the rest), `testing` (in-memory twins and the
//! conformance suites every implementation of a trait runs, in [`testing`]).
//!
//! This crate is **not** for processes or schedulers: it spawns nothing and knows no scheduler's
//! commands, options or states, and without features it does no I/O at all, so the domain model
//! is deterministic and testable in memory. Users should depend on the `slurptuna` facade, which
//! re-exports what they need.
//!
//! ```
//! use slurptuna_core::{loss, search_param, SeedLayout, SeedSpec};
//! let l = loss("bowl")
//!     .description("a quadratic bowl")
//!     .param("x", (0.0, 1.0))
//!     .param("n", search_param().range(1, 8).dtype("int"))
//!     .build(|p, seed, _ctx| Ok(((p.f64("x")? - 0.3).powi(2) + seed as f64 * 1e-3).into()))
//!     .unwrap();
//! let layout = SeedLayout::resolve(&SeedSpec { n_seeds: Some(4), ..Default::default() }, l.seed_start()).unwrap();
//! assert_eq!(layout.num_chunks(), 1);
//! ```

mod backend;
#[cfg(feature = "batch")]
pub mod batch;
mod error;
mod evaluate;
mod executor;
#[cfg(feature = "fs")]
pub mod fs;
mod hash;
pub mod json;
mod loss;
mod mode;
mod params;
pub mod racing;
mod sampler;
mod seeds;
mod space;
mod stats;
mod store;
mod time;
mod trial;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use backend::{
    positive_duration, Backend, BackendEnv, DistributedOptions, MemorySize, TaskResources,
    WorkerCommand,
};
pub use error::{BoxError, CoreError, Result};
pub use evaluate::{evaluate_chunk, evaluate_seeds, ChunkResult, SeedFailure, SeedTask};
pub use executor::{
    chunk_key, ChunkSink, Delivery, ExecError, Executor, FailureKind, TrialFailure, TrialJob,
    TrialKeys,
};
pub use hash::{fingerprint_hex, Fnv64};
pub use loss::{
    loss, registered_loss, registered_loss_names, validate_name, BatchLoss, BatchRequest, Context,
    LossBuilder, LossDefinition, LossFn, LossResult, LossValue,
};
pub use mode::Direction;
pub use params::{ParamValue, Params};
pub use sampler::{AskContext, Sampler};
pub use seeds::{SeedLayout, SeedList, SeedSpec, DEFAULT_CHUNK_SIZE, DEFAULT_NUM_CHUNKS};
pub use space::{search_param, Bound, Distribution, Dtype, DtypeName, ParamSpace, SearchParam};
pub use stats::SeedStats;
pub use store::{
    best_of, ResumeRecord, RunHistory, RunMeta, RunSummary, Store, StoredChunk, TrialEvent,
    TrialTimes, ValidatedBest, ValidatedTrial, Validation,
};
pub use time::format_utc;
pub use trial::{ChunkIndex, ChunkKey, RaceOutcome, TrialNumber, TrialRecord, TrialState};

/// Version of the run-directory format written by this release.
pub const RUN_FORMAT_VERSION: u32 = 1;
