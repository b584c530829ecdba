//! The one error type of `slurptuna-core`.

/// A boxed error from user code (a loss function) or from a backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with [`CoreError`] as the default error.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

/// Everything that can go wrong in the domain model.
///
/// Messages are lowercase, name the offending option or parameter, and say what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// A search parameter is malformed (bounds, step, log, choices...).
    #[error("parameter '{name}': {reason}")]
    InvalidParam {
        /// Parameter name as given by the user.
        name: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The parameter space as a whole is malformed (empty, duplicate names).
    #[error("parameter space: {0}")]
    InvalidSpace(String),
    /// A run option is out of range or contradicts another option.
    #[error("option '{option}': {reason}")]
    InvalidOption {
        /// Option name, as in `RunOptions`.
        option: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The loss definition is incomplete or malformed.
    #[error("loss definition: {0}")]
    InvalidLoss(String),
    /// A typed getter on [`crate::Params`] failed.
    #[error("parameter '{name}': {reason}")]
    ParamAccess {
        /// Parameter name looked up.
        name: String,
        /// Missing, or of another type.
        reason: String,
    },
    /// A string could not be parsed into an enum value.
    #[error("invalid {what} '{value}': expected one of {expected}")]
    Parse {
        /// What was being parsed (`direction`, `execution mode`).
        what: &'static str,
        /// The offending input.
        value: String,
        /// The accepted spellings.
        expected: &'static str,
    },
    /// A sampler could not propose parameters.
    #[error("sampler '{sampler}': {reason}")]
    Sampler {
        /// Sampler name.
        sampler: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// A storage backend failed.
    #[error("store '{store}' failed")]
    Store {
        /// Backend name.
        store: &'static str,
        /// The backend's own error.
        #[source]
        source: BoxError,
    },
    /// An executor backend failed (not a trial failure: infrastructure).
    #[error("executor '{executor}' failed")]
    Executor {
        /// Backend name.
        executor: &'static str,
        /// The backend's own error.
        #[source]
        source: BoxError,
    },
    /// The operation was cancelled (Ctrl-C, SIGTERM, or a dropped future).
    #[error("cancelled")]
    Cancelled,
    /// An implementation broke its trait's contract (found by a conformance suite of
    /// `testing`).
    #[error("{suite} suite, check '{check}': {detail}")]
    Conformance {
        /// `executor`, `sampler` or `store`.
        suite: &'static str,
        /// The check that failed.
        check: &'static str,
        /// What was expected and what happened.
        detail: String,
    },
    /// A task of a batch scheduler's job array started the worker side without what it needs
    /// (its task file, its task index, a task file of this format) or for a chunk its trial
    /// does not have.
    #[error("batch worker: {reason}")]
    Worker {
        /// What is missing or wrong, and what to do.
        reason: String,
    },
    /// A worker program did not build the loss its task asks for.
    #[error(
        "the worker program did not build the loss '{requested}' (argv: {argv:?}; losses it built: {available:?}): \
         build the loss before calling optimize_run, and keep forward_sys_argv_to_workers on if its name depends on the arguments"
    )]
    LossNotFound {
        /// The loss named in the task file.
        requested: String,
        /// The worker's own command line (the forwarded argv).
        argv: Vec<String>,
        /// `registered_loss_names()` in the worker.
        available: Vec<String>,
    },
    /// The loss failed on a seed of a batch worker's chunk (a failure record was written next
    /// to where the result would be, for the controller to report).
    #[error("chunk {chunk} of trial {trial} failed: {failure}")]
    ChunkFailed {
        /// The trial.
        trial: crate::trial::TrialNumber,
        /// The chunk.
        chunk: crate::trial::ChunkIndex,
        /// The failing seed and why.
        failure: crate::evaluate::SeedFailure,
    },
    /// A file (of a trial directory: task file, job record, chunk result) could not be read or
    /// written.
    #[error("{action} {path}")]
    Io {
        /// What was being done (`cannot write`, `cannot read`, `cannot create directory`).
        action: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file (of a trial directory) holds malformed JSON.
    #[error("malformed {what} in {path}: delete the file to have it rewritten")]
    Json {
        /// Which file (`task file`, `job record`, `chunk result`).
        what: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

impl CoreError {
    pub(crate) fn param(name: &str, reason: impl Into<String>) -> Self {
        CoreError::InvalidParam {
            name: name.to_string(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`CoreError::InvalidOption`].
    pub fn option(option: &'static str, reason: impl Into<String>) -> Self {
        CoreError::InvalidOption {
            option,
            reason: reason.into(),
        }
    }
}
