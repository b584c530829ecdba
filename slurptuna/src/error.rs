//! The facade's error: wraps each crate's error and adds the run-level failures.

use std::path::PathBuf;

use slurptuna_core::CoreError;

/// Everything `optimize_run` / `optimize_entries` can fail with.
///
/// Validation errors ([`Error::Core`] with `InvalidOption` / `InvalidParam`) happen before anything
/// is written to disk.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Invalid options or parameters, sampler or backend failures from the domain layer.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The run directory could not be created, locked, read or written.
    #[error(transparent)]
    Store(#[from] slurptuna_store::StoreError),
    /// The local executor (threads / worker processes) failed.
    #[error(transparent)]
    Local(#[from] slurptuna_exec_local::LocalError),
    /// The Slurm backend failed.
    #[cfg(feature = "slurm")]
    #[error(transparent)]
    Slurm(#[from] slurptuna_exec_slurm::SlurmError),
    /// The stored run cannot be resumed with these settings.
    #[error("cannot resume run {run_dir}: {}; use another run_name (or run_root) for a new run", differences.join("; "))]
    ResumeMismatch {
        /// The run directory.
        run_dir: PathBuf,
        /// What differs between the stored run and this call.
        differences: Vec<String>,
    },
    /// Every trial failed: there is no best value.
    #[error(
        "no trial completed in {run_dir}: {n_failed} trial(s) failed; last failure: {last_failure}"
    )]
    NoTrialCompleted {
        /// The run directory (the failures are recorded in its journal).
        run_dir: PathBuf,
        /// Number of failed trials.
        n_failed: u64,
        /// The reason of the last failed trial.
        last_failure: String,
    },
    /// Some entries of `optimize_entries` failed; the others finished and are on disk.
    #[error("{} of {n_entries} entries failed: {}", failures.len(), failures.iter().map(|(id, e)| format!("'{id}': {e}")).collect::<Vec<_>>().join("; "))]
    EntriesFailed {
        /// Number of entries.
        n_entries: usize,
        /// `(entry id, error)` of each failed entry, in input order.
        failures: Vec<(String, Box<Error>)>,
        /// The parent directory (its `summary.json` lists the entries that finished).
        run_dir: PathBuf,
    },
    /// DISTRIBUTED mode was asked for but this build has no Slurm backend.
    #[error("option 'mode': DISTRIBUTED needs the 'slurm' feature of the slurptuna crate, which this build does not have")]
    SlurmNotCompiled,
    /// The async runtime could not be started.
    #[error("could not start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// The run was interrupted (Ctrl-C / SIGTERM); re-run the same command to resume.
    #[error("interrupted; the run in {run_dir} is saved: re-run the same command to resume")]
    Interrupted {
        /// The run directory.
        run_dir: PathBuf,
    },
}

impl Error {
    pub(crate) fn option(option: &'static str, reason: impl Into<String>) -> Self {
        Error::Core(CoreError::option(option, reason))
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
