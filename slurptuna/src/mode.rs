//! `ExecutionMode`: the seed's selector between SINGLE and DISTRIBUTED mode.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use slurptuna_core::CoreError;

/// Where seeds are evaluated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionMode {
    /// In this process, on threads or local worker processes.
    #[default]
    Single,
    /// As job arrays of the configured scheduler (`RunOptions::scheduler`), one task per chunk
    /// of seeds.
    Distributed,
}

impl ExecutionMode {
    /// `"single"` or `"distributed"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionMode::Single => "single",
            ExecutionMode::Distributed => "distributed",
        }
    }
}

impl fmt::Display for ExecutionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExecutionMode {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, CoreError> {
        execution_mode(s)
    }
}

/// Parses an execution mode, case-insensitively: `"single"` or `"distributed"`.
///
/// ```
/// use slurptuna::{execution_mode, ExecutionMode};
/// assert_eq!(execution_mode("SINGLE").unwrap(), ExecutionMode::Single);
/// let e = execution_mode("slurm").unwrap_err().to_string();
/// assert!(e.contains("single, distributed"));
/// ```
pub fn execution_mode(mode: &str) -> Result<ExecutionMode, CoreError> {
    match mode.to_ascii_lowercase().as_str() {
        "single" => Ok(ExecutionMode::Single),
        "distributed" => Ok(ExecutionMode::Distributed),
        _ => Err(CoreError::Parse {
            what: "execution mode",
            value: mode.to_string(),
            expected: "single, distributed",
        }),
    }
}
