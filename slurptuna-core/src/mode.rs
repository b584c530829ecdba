//! Optimisation direction and execution mode.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// Whether lower or higher trial values are better.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Lower is better (the default).
    #[default]
    Minimize,
    /// Higher is better.
    Maximize,
}

impl Direction {
    /// True when `a` is strictly better than `b` in this direction.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Direction::Minimize => a < b,
            Direction::Maximize => a > b,
        }
    }

    /// `"minimize"` or `"maximize"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Minimize => "minimize",
            Direction::Maximize => "maximize",
        }
    }
}

impl FromStr for Direction {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, CoreError> {
        match s.to_ascii_lowercase().as_str() {
            "minimize" | "min" => Ok(Direction::Minimize),
            "maximize" | "max" => Ok(Direction::Maximize),
            _ => Err(CoreError::Parse {
                what: "direction",
                value: s.to_string(),
                expected: "minimize, maximize",
            }),
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where seeds are evaluated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionMode {
    /// In this process, on threads or local worker processes.
    #[default]
    Single,
    /// As Slurm job arrays, one task per chunk of seeds.
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
/// use slurptuna_core::{execution_mode, ExecutionMode};
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
