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
///
/// A `Pruned` trial was stopped by a seed race (see [`crate::racing`]): with error at most α its
/// mean over all seeds is worse than the best completed value. It has no value; its estimate is
/// in [`RaceOutcome`].
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
    /// A seed race stopped the trial early: it is worse than the best, with error at most α.
    Pruned {
        /// The race's statistics at the prune.
        race: Box<RaceOutcome>,
    },
}

/// How a seed race ended a trial ([`TrialState::Pruned`]): the statistics of the decisive look.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RaceOutcome {
    /// n, the seeds of the evaluated prefix at the prune (census included).
    pub seeds: u64,
    /// μ̂, the control-variate estimate of the trial's mean over all seeds.
    pub estimate: f64,
    /// The confidence bound on the better side (L_n when minimising, U_n when maximising).
    pub bound: f64,
    /// β̂, the clipped control-variate coefficient.
    pub beta: f64,
    /// The best COMPLETE value the bound was compared with.
    pub threshold: f64,
    /// The control trial (the incumbent when the trial started).
    pub control: TrialNumber,
    /// The false-elimination level α of the race.
    pub alpha: f64,
    /// Raw statistics over every seed evaluated (the prefix and any chunk that finished beyond
    /// it).
    pub stats: SeedStats,
    /// The intermediate estimate at each look: (seeds of the prefix, μ̂).
    #[serde(default)]
    pub looks: Vec<(u64, f64)>,
}

impl TrialState {
    /// `RUNNING`, `COMPLETE`, `FAILED` or `PRUNED`.
    pub fn label(&self) -> &'static str {
        match self {
            TrialState::Running => "RUNNING",
            TrialState::Complete { .. } => "COMPLETE",
            TrialState::Failed { .. } => "FAILED",
            TrialState::Pruned { .. } => "PRUNED",
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

    /// True once the trial is complete, failed or pruned.
    pub fn is_finished(&self) -> bool {
        !matches!(self.state, TrialState::Running)
    }

    /// The race outcome of a pruned trial.
    pub fn pruned(&self) -> Option<&RaceOutcome> {
        match &self.state {
            TrialState::Pruned { race } => Some(race),
            _ => None,
        }
    }

    /// Seeds evaluated for this finished trial's value: all of them when complete, the race's
    /// when pruned, none otherwise.
    pub fn seeds_evaluated(&self) -> u64 {
        match &self.state {
            TrialState::Complete { stats } => stats.count(),
            TrialState::Pruned { race } => race.stats.count(),
            _ => 0,
        }
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
