//! Trial identities, states and records.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::params::Params;
use crate::stats::SeedStats;

/// The number of a trial within one run (0-based, never reused).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct TrialNumber(pub u64);

impl fmt::Display for TrialNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl PartialEq<u64> for TrialNumber {
    fn eq(&self, other: &u64) -> bool {
        self.0 == *other
    }
}

impl From<TrialNumber> for u64 {
    fn from(n: TrialNumber) -> u64 {
        n.0
    }
}

/// The index of a chunk of seeds within a trial (0-based; a Slurm array task id).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ChunkIndex(pub u64);

impl fmt::Display for ChunkIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a trial stands. Values belong to `Complete` only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TrialState {
    /// Asked and being evaluated.
    Running,
    /// Every seed evaluated; the trial's value is `stats.mean()`.
    Complete {
        /// Statistics over all seeds of the trial.
        stats: SeedStats,
    },
    /// The trial could not produce a value; it is recorded and the study goes on.
    Failed {
        /// Why (seed, message, scheduler state...).
        reason: String,
    },
}

impl TrialState {
    /// `RUNNING`, `COMPLETE` or `FAILED`.
    pub fn label(&self) -> &'static str {
        match self {
            TrialState::Running => "RUNNING",
            TrialState::Complete { .. } => "COMPLETE",
            TrialState::Failed { .. } => "FAILED",
        }
    }
}

/// One trial: its number, parameters and state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    /// The trial number.
    pub number: TrialNumber,
    /// The parameters the sampler proposed.
    pub params: Params,
    /// Running, complete (with statistics) or failed (with the reason).
    #[serde(flatten)]
    pub state: TrialState,
}

impl TrialRecord {
    /// The trial's value (mean over seeds) when complete.
    pub fn value(&self) -> Option<f64> {
        match &self.state {
            TrialState::Complete { stats } => Some(stats.mean()),
            _ => None,
        }
    }

    /// True once the trial is complete or failed.
    pub fn is_finished(&self) -> bool {
        !matches!(self.state, TrialState::Running)
    }
}

/// The key a stored chunk result carries: a hash of the loss, entry, trial number, parameters
/// and the chunk's seeds (see `TrialJob::chunk_key`). A stored result whose key differs from the
/// one a trial expects is stale and recomputed.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChunkKey(String);

impl ChunkKey {
    /// A key from its text (as stored in journals and chunk files).
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChunkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ChunkKey {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}
