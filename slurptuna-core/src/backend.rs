//! The `Backend` trait: an execution backend as a value, with its own options.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{BoxError, Result};
use crate::executor::Executor;
use crate::loss::LossDefinition;

/// How to start this program again as a worker: the program, its arguments, its working
/// directory. Workers are the user's own program; when it reaches `optimize_run` it sees that
/// it is a worker and evaluates what it was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerCommand {
    /// The program (by default the running one, `std::env::current_exe()`).
    pub program: PathBuf,
    /// Its arguments (the launcher's `argv[1..]` when `forward_sys_argv_to_workers`).
    pub args: Vec<OsString>,
    /// The working directory of the workers.
    pub cwd: PathBuf,
}

/// What a backend is given to build its executor for one `optimize_run` / `optimize_entries`
/// call (one executor serves every study of the call).
#[derive(Clone, Copy, Debug)]
pub struct BackendEnv<'a> {
    /// The loss being optimised (in-process backends call it; others re-execute
    /// [`BackendEnv::worker`], which builds it again).
    pub loss: &'a LossDefinition,
    /// How to start a worker.
    pub worker: &'a WorkerCommand,
    /// Seeds evaluated in parallel per worker.
    pub worker_parallelism: usize,
    /// On Ctrl-C / SIGTERM, leave work that outlives the controller (scheduler jobs) running for
    /// a resume instead of cancelling it.
    pub keep_jobs_on_interrupt: bool,
}

/// An execution backend as a value: its options (validated by the backend itself, with errors
/// naming the option) and the [`Executor`] it builds.
///
/// The `slurptuna` facade selects a backend per execution mode; each scheduler crate provides
/// one (`slurptuna-exec-slurm`'s `SlurmOptions`), and users may write their own.
///
/// # Contract
/// - `validate` has no side effects and checks every option; `executor` may assume it passed.
/// - `settings` are recorded in the run's `meta.json` under the keys given (a backend keeps the
///   names its users know, e.g. the seed's `slurm_qos`).
/// - `run_worker` returns `Some` only in a process started as one of this backend's own
///   workers (after doing the work); the facade then exits the process. Workers of the shared
///   batch layer (`batch` feature) and local pool workers are recognised by the facade itself.
pub trait Backend: Send + Sync + fmt::Debug {
    /// A short name for logs, errors and `meta.json` (`"slurm"`).
    fn name(&self) -> &'static str;

    /// Checks every option; an error names the offending one.
    fn validate(&self) -> Result<()>;

    /// The backend's settings as it wants them recorded in `meta.json`.
    fn settings(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::Map::new()
    }

    /// Builds the executor shared by every study of one call.
    fn executor(&self, env: &BackendEnv<'_>) -> Result<Arc<dyn Executor>>;

    /// Does a worker's job if this process is one of this backend's own workers.
    fn run_worker(&self) -> Option<std::result::Result<(), BoxError>> {
        None
    }
}

impl<B: Backend + ?Sized> Backend for Arc<B> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn validate(&self) -> Result<()> {
        (**self).validate()
    }
    fn settings(&self) -> serde_json::Map<String, serde_json::Value> {
        (**self).settings()
    }
    fn executor(&self, env: &BackendEnv<'_>) -> Result<Arc<dyn Executor>> {
        (**self).executor(env)
    }
    fn run_worker(&self) -> Option<std::result::Result<(), BoxError>> {
        (**self).run_worker()
    }
}
