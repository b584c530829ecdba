//! [`CommandLoss`]: a loss that is an external program (Python, R, Julia, MATLAB, shell) speaking
//! slurptuna's JSON line protocol, kept running for many batches.
//!
//! Protocol (one JSON object per line, UTF-8):
//! - slurptuna writes one request per batch on the command's stdin:
//!   `{"trial": 3, "entry_id": "p01" | null, "params": {"alpha": 0.31}, "seeds": [0, 1, 2]}`;
//! - the command answers every seed of the batch with one line on stdout, in any order:
//!   `{"seed": 0, "value": 0.12}` (a number, an object of named numbers whose mean is used, or an
//!   array of numbers) or `{"seed": 0, "error": "message"}`;
//! - EOF on stdin means exit.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use slurptuna_core::{BatchLoss, BatchRequest, LossValue, SeedFailure};

use crate::error::LocalError;

/// Default for [`CommandSpec::startup_timeout`].
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How to run a command loss: the `[loss]` table of a study file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandSpec {
    /// Program and arguments (no shell). A relative program path containing `/` is resolved
    /// against `cwd`; a bare name is looked up on `PATH`.
    pub argv: Vec<String>,
    /// Working directory of the command (default: the controller's).
    pub cwd: Option<PathBuf>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// How long one batch may take before the command is killed and the trial fails (default:
    /// no limit).
    pub batch_timeout: Option<Duration>,
    /// How long a freshly started command may take to answer its first batch, on top of
    /// `batch_timeout` (default [`DEFAULT_STARTUP_TIMEOUT`]).
    pub startup_timeout: Duration,
    /// The most seeds per request (default: a chunk's share per worker).
    pub batch_size: Option<usize>,
}

impl CommandSpec {
    /// A spec running `argv` with every other field at its default.
    pub fn new(argv: Vec<String>) -> Self {
        CommandSpec {
            argv,
            cwd: None,
            env: BTreeMap::new(),
            batch_timeout: None,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            batch_size: None,
        }
    }
}

/// A [`BatchLoss`] that runs an external command (see the module documentation for the
/// protocol). Build the loss with `loss(name)...build_batch(CommandLoss::new(spec)?)`.
#[derive(Debug)]
pub struct CommandLoss {
    spec: CommandSpec,
}

impl CommandLoss {
    /// Checks `spec` (non-empty argv, positive timeouts and batch size); starts nothing.
    pub fn new(spec: CommandSpec) -> Result<CommandLoss, LocalError> {
        if spec.argv.is_empty() {
            return Err(LocalError::InvalidOption {
                option: "command",
                reason: "the command is empty: give the program and its arguments, e.g. [\"python3\", \"model.py\"]".into(),
            });
        }
        Ok(CommandLoss { spec })
    }

    /// The spec it runs.
    pub fn spec(&self) -> &CommandSpec {
        &self.spec
    }
}

impl BatchLoss for CommandLoss {
    fn evaluate_batch(
        &self,
        _request: &BatchRequest<'_>,
        _cancel: &AtomicBool,
    ) -> Result<Vec<LossValue>, SeedFailure> {
        Err(SeedFailure::Batch {
            message: format!("command {:?}: not running", self.spec.argv),
        })
    }
}
