//! The in-process executors of slurptuna (SINGLE mode): they evaluate the seeds of a trial on
//! this machine, either on threads of the controller ([`ThreadExecutor`]) or on a persistent pool
//! of worker processes that re-execute the user's own program ([`ProcessExecutor`], the
//! `use_processes = true` mode, configured by [`ProcessPoolConfig`]).
//!
//! Both implement `slurptuna_core::Executor` over the one seed-evaluation routine of core
//! (`evaluate_chunk` / `evaluate_seeds`), so they produce bit-identical values: the process pool
//! splits a chunk's seeds into batches over its workers and puts the values back in seed order.
//! The pool exists for losses that may crash the process (abort, segfault, foreign code): such a
//! crash fails its trial with a reason naming the seed and the signal, the dead worker is
//! replaced, and the controller goes on. Every batch carries its own id, so concurrent trials
//! never receive each other's results.
//!
//! The worker side is [`is_pool_worker`] and [`serve_pool_worker`], which the `slurptuna` facade
//! calls at the start of `optimize_run` / `optimize_entries`. Errors of the executors themselves
//! (a worker program that never reaches that entry point, a missing loss) are [`LocalError`]s.
//!
//! A loss may also be an external program — Python, R, Julia, a shell script — speaking a JSON
//! line protocol on its stdin and stdout: [`CommandLoss`] (configured by [`CommandSpec`]) is a
//! `slurptuna_core::BatchLoss` that keeps one such process per concurrent caller running for
//! many batches, so both executors (and Slurm workers) evaluate it like any other loss. A command
//! that crashes, hangs past its timeout or breaks the protocol fails its trial with a reason
//! naming the command, the trial and the tail of its stderr, and is replaced; its stray output
//! goes to the trial's `loss.log`. The protocol is described in the [`command`] module.
//!
//! This crate is **not** for choosing parameters, storing runs or talking to Slurm: it only runs
//! seeds. The process pool is Unix-only (process groups, signals, a dedicated reply pipe): on
//! other systems [`ProcessExecutor::new`] returns an error and only [`ThreadExecutor`] works.
//!
//! ```
//! use slurptuna_core::{loss, ChunkIndex, ChunkResult, ChunkSink, CoreError, Delivery, Executor,
//!     Params, SeedLayout, SeedSpec, TrialJob, TrialNumber};
//! use slurptuna_exec_local::ThreadExecutor;
//! use std::sync::{Arc, Mutex};
//!
//! struct Collect(Mutex<Vec<ChunkResult>>);
//! impl ChunkSink for Collect {
//!     fn chunk_done(&self, _: TrialNumber, _: ChunkIndex, r: ChunkResult) -> Result<Delivery, CoreError> {
//!         self.0.lock().unwrap().push(r);
//!         Ok(Delivery::Continue)
//!     }
//! }
//!
//! let l = loss("lib-doc").description("x plus seed").param("x", (0.0, 1.0))
//!     .build(|p, seed, _| Ok((p.f64("x")? + seed as f64).into())).unwrap();
//! let layout = SeedLayout::resolve(&SeedSpec { seeds: Some(vec![100, 7, 3, 55]), ..Default::default() }, 0).unwrap();
//! let job = TrialJob {
//!     loss_name: "lib-doc".into(), entry_id: None, trial: TrialNumber(0),
//!     params: [("x", 0.5)].into_iter().collect::<Params>(),
//!     chunks: layout.chunks().collect(), layout: Arc::new(layout),
//!     trial_dir: None, keep_seed_values: true,
//! };
//! let sink = Collect(Mutex::new(Vec::new()));
//! let exec = ThreadExecutor::new(l, 2);
//! tokio::runtime::Runtime::new().unwrap().block_on(exec.evaluate(job, &sink)).unwrap();
//! let r = &sink.0.lock().unwrap()[0];
//! assert_eq!(r.values.as_deref(), Some(&[100.5, 7.5, 3.5, 55.5][..]));
//! assert_eq!(r.stats.mean(), 41.75);
//! ```

pub mod command;
mod error;
// The platform layer: process groups, signals and the reply pipe on Unix; elsewhere stubs that
// make ProcessExecutor::new fail clearly.
#[cfg(unix)]
#[path = "unix.rs"]
mod os;
#[cfg(not(unix))]
#[path = "unsupported.rs"]
mod os;
mod pool;
mod protocol;
mod thread;
mod worker;

pub use command::{CommandLoss, CommandSpec, COMMAND_LOG_FILE, DEFAULT_STARTUP_TIMEOUT};
pub use error::LocalError;
#[cfg(unix)]
pub use os::process_is_running;
pub use pool::{ProcessExecutor, ProcessPoolConfig};
pub use thread::ThreadExecutor;
pub use worker::{is_pool_worker, serve_pool_worker, POOL_REPLY_FD_ENV, POOL_WORKER_ENV};
