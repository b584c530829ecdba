//! The facade's error: wraps each crate's error and adds the run-level failures.

use std::path::PathBuf;

use slurptuna_core::CoreError;

use crate::result::MultiOptimizeResult;

/// Everything `optimize_run` / `optimize_entries` can fail with.
///
/// Validation errors ([`Error::Core`] with `InvalidOption` / `InvalidParam`) happen before anything
/// is written to disk. A scheduler's own errors arrive as [`CoreError::Executor`] with the
/// scheduler's error as the source (downcast it, e.g. to `slurm::SlurmError`).
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
    /// Some entries of `optimize_entries` failed; the others finished, are on disk, and their
    /// results are in `finished`.
    #[error("{} of {} entries failed: {}", failures.len(), finished.n_entries, failures.iter().map(|(id, e)| format!("'{id}': {e}")).collect::<Vec<_>>().join("; "))]
    EntriesFailed {
        /// The entries that finished (`results_by_entry` and the other maps hold only them;
        /// `entries` lists every entry, in input order).
        finished: Box<MultiOptimizeResult>,
        /// `(entry id, error)` of each failed entry, in input order.
        failures: Vec<(String, Box<Error>)>,
    },
    /// DISTRIBUTED mode was asked for, but there is no scheduler: this build has none compiled
    /// in and none was given.
    #[error("option 'mode': DISTRIBUTED needs a scheduler, and this build has none: enable a scheduler feature of the slurptuna crate (e.g. 'slurm') or set 'scheduler'")]
    NoScheduler,
    /// The async runtime could not be started.
    #[error("could not start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// A study file (`slurptuna::study`), or a file it names (the `[entries]` CSV), is invalid:
    /// where and what. Nothing was run and no run directory was created.
    #[error("{}:{line}:{column}: {}{message}", path.display(), key_prefix(key))]
    StudyFile {
        /// The file, as given (the CSV: relative to the study file's folder as given).
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// The key at fault, dotted as `--set` takes it (`run.n_trials`, `params.lr`); empty for
        /// a TOML syntax error.
        key: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// A `--set key=value` override of a study file is invalid (an unknown key, a wrong value).
    #[error("--set {set}: {}{message}", key_prefix(key))]
    StudyOverride {
        /// The override, as given.
        set: String,
        /// The key at fault, dotted (`run.n_trials`).
        key: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// The study file could not be read.
    #[error("cannot read the study file {}: {source}", path.display())]
    StudyRead {
        /// The file, as given.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An export (`slurptuna::export`) could not be written, or the run has nothing to export
    /// in that format (e.g. `npy` of a run that kept no per-seed values).
    #[error("cannot export to {}: {source}", path.display())]
    Export {
        /// The output file.
        path: PathBuf,
        /// Why (an I/O error, or a message as `std::io::Error::other`).
        source: std::io::Error,
    },
    /// The HTML report could not be written (feature `report`).
    #[error("cannot write the report {}: {source}; check that its folder exists and is writable", path.display())]
    Report {
        /// The report file, as given.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
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

/// `"[run] n_trials: "` for the key `run.n_trials` (`"[run]: "` for a table, nothing for none).
fn key_prefix(key: &str) -> String {
    match key.split_once('.') {
        _ if key.is_empty() => String::new(),
        Some((table, rest)) => format!("[{table}] {rest}: "),
        None => format!("[{key}]: "),
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
