//! The `Store` trait, the trial journal's events, and the run's metadata and summary documents.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::evaluate::ChunkResult;
use crate::mode::Direction;
use crate::params::Params;
use crate::space::ParamSpace;
use crate::stats::SeedStats;
use crate::trial::{ChunkIndex, ChunkKey, RaceOutcome, TrialNumber, TrialRecord, TrialState};

/// One record of a run's append-only journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TrialEvent {
    /// The sampler proposed `params` for `trial`; evaluation starts.
    Asked {
        /// Trial number.
        trial: TrialNumber,
        /// Proposed parameters.
        params: Params,
        /// The control of the trial's seed race (the incumbent when it started), when it races:
        /// its seeds are evaluated in the race's plan order ([`crate::racing::RacePlan`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        control: Option<TrialNumber>,
    },
    /// One chunk of seeds finished; `key` ties it to the trial's params and seeds
    /// (see `TrialJob::chunk_key`).
    ChunkDone {
        /// Trial number.
        trial: TrialNumber,
        /// Chunk index.
        chunk: ChunkIndex,
        /// Result key (hash of loss, entry, trial, params, seeds).
        key: ChunkKey,
        /// The chunk's statistics (and per-seed values when kept).
        #[serde(flatten)]
        result: ChunkResult,
    },
    /// Every seed evaluated; the trial's value is `stats.mean()`.
    Completed {
        /// Trial number.
        trial: TrialNumber,
        /// Statistics over all seeds.
        stats: SeedStats,
    },
    /// The trial failed; the study goes on.
    Failed {
        /// Trial number.
        trial: TrialNumber,
        /// Why.
        reason: String,
    },
    /// A seed race stopped the trial ([`TrialState::Pruned`]).
    Pruned {
        /// Trial number.
        trial: TrialNumber,
        /// The race's statistics at the prune.
        race: RaceOutcome,
    },
    /// One chunk of a finished trial's validation seeds finished (the honest best: the top
    /// trials re-evaluated on seeds the fit never saw).
    ValidationChunkDone {
        /// Trial number.
        trial: TrialNumber,
        /// Chunk index within the validation seeds.
        chunk: ChunkIndex,
        /// Result key (hash of loss, entry, trial, params, validation seeds).
        key: ChunkKey,
        /// The chunk's statistics.
        #[serde(flatten)]
        result: ChunkResult,
    },
    /// Every validation seed of a finished trial evaluated.
    Validated {
        /// Trial number.
        trial: TrialNumber,
        /// Statistics over the validation seeds.
        stats: SeedStats,
    },
}

impl TrialEvent {
    /// The trial this event belongs to.
    pub fn trial(&self) -> TrialNumber {
        match self {
            TrialEvent::Asked { trial, .. }
            | TrialEvent::ChunkDone { trial, .. }
            | TrialEvent::Completed { trial, .. }
            | TrialEvent::Failed { trial, .. }
            | TrialEvent::Pruned { trial, .. }
            | TrialEvent::ValidationChunkDone { trial, .. }
            | TrialEvent::Validated { trial, .. } => *trial,
        }
    }

    /// True for events that end or start a trial or its validation (stores sync these to disk,
    /// at once or grouped; see the [`Store`] contract).
    pub fn is_boundary(&self) -> bool {
        !matches!(
            self,
            TrialEvent::ChunkDone { .. } | TrialEvent::ValidationChunkDone { .. }
        )
    }
}

/// A stored chunk result with its key.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredChunk {
    /// Result key it was stored under.
    pub key: ChunkKey,
    /// The result.
    pub result: ChunkResult,
}

/// The state of a run, folded from its journal.
///
/// Equality compares trials and stored chunks; the wall-clock times ([`RunHistory::times`])
/// are metadata of the journal, not part of the run's state.
#[derive(Clone, Debug, Default)]
pub struct RunHistory {
    trials: BTreeMap<TrialNumber, TrialRecord>,
    chunks: BTreeMap<TrialNumber, BTreeMap<ChunkIndex, StoredChunk>>,
    controls: BTreeMap<TrialNumber, TrialNumber>,
    validations: BTreeMap<TrialNumber, Validation>,
    times: BTreeMap<TrialNumber, TrialTimes>,
}

impl PartialEq for RunHistory {
    fn eq(&self, other: &Self) -> bool {
        self.trials == other.trials
            && self.chunks == other.chunks
            && self.controls == other.controls
            && self.validations == other.validations
    }
}

/// A finished trial's validation on the study's validation seeds, as far as it got.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Validation {
    /// Stored validation chunks (kept once the validation is done: the honest best compares
    /// the halves of the validation seeds).
    pub chunks: BTreeMap<ChunkIndex, StoredChunk>,
    /// Statistics over every validation seed, once done.
    pub stats: Option<SeedStats>,
}

/// When a trial was asked and when it finished, in seconds since the Unix epoch, as the store
/// recorded them (runs written before slurptuna recorded times have none).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TrialTimes {
    /// When the trial was asked (its `asked` record).
    pub started: Option<f64>,
    /// When it completed or failed.
    pub finished: Option<f64>,
}

impl RunHistory {
    /// The recorded times of trial `n`, if the journal has any.
    pub fn times(&self, n: TrialNumber) -> Option<&TrialTimes> {
        self.times.get(&n)
    }

    /// Records when trial `n` was asked (`finished = false`) or finished (`true`): stores call
    /// it for the times their journal records carry. The first time of each kind is kept.
    pub fn record_time(&mut self, n: TrialNumber, finished: bool, at: f64) {
        let t = self.times.entry(n).or_default();
        let slot = if finished {
            &mut t.finished
        } else {
            &mut t.started
        };
        slot.get_or_insert(at);
    }

    /// Folds a sequence of events.
    pub fn from_events<I: IntoIterator<Item = TrialEvent>>(events: I) -> Self {
        let mut h = Self::default();
        for e in events {
            h.apply(e);
        }
        h
    }

    /// Applies one event. Events for finished trials (other than the first finish) are ignored,
    /// so replaying a journal twice is harmless.
    pub fn apply(&mut self, event: TrialEvent) {
        let n = event.trial();
        match event {
            TrialEvent::ValidationChunkDone {
                trial,
                chunk,
                key,
                result,
            } => {
                let v = self.validations.entry(trial).or_default();
                if v.stats.is_none() && self.trials.get(&trial).is_some_and(|t| t.value().is_some())
                {
                    v.chunks.insert(chunk, StoredChunk { key, result });
                }
                return;
            }
            TrialEvent::Validated { trial, stats } => {
                if self.trials.get(&trial).is_some_and(|t| t.value().is_some()) {
                    let v = self.validations.entry(trial).or_default();
                    v.stats.get_or_insert(stats);
                }
                return;
            }
            _ => {}
        }
        if self.trials.get(&n).is_some_and(TrialRecord::is_finished) {
            return;
        }
        match event {
            TrialEvent::Asked {
                trial,
                params,
                control,
            } => {
                if let std::collections::btree_map::Entry::Vacant(e) = self.trials.entry(trial) {
                    e.insert(TrialRecord {
                        number: trial,
                        params,
                        state: TrialState::Running,
                    });
                    if let Some(c) = control {
                        self.controls.insert(trial, c);
                    }
                }
            }
            TrialEvent::ChunkDone {
                trial,
                chunk,
                key,
                result,
            } => {
                if self.trials.contains_key(&trial) {
                    self.chunks
                        .entry(trial)
                        .or_default()
                        .insert(chunk, StoredChunk { key, result });
                }
            }
            TrialEvent::Completed { trial, stats } => {
                if let Some(t) = self.trials.get_mut(&trial) {
                    t.state = TrialState::Complete { stats };
                    self.chunks.remove(&trial);
                }
            }
            TrialEvent::Failed { trial, reason } => {
                if let Some(t) = self.trials.get_mut(&trial) {
                    t.state = TrialState::Failed { reason };
                    self.chunks.remove(&trial);
                }
            }
            TrialEvent::Pruned { trial, race } => {
                if let Some(t) = self.trials.get_mut(&trial) {
                    t.state = TrialState::Pruned {
                        race: Box::new(race),
                    };
                    self.chunks.remove(&trial);
                }
            }
            TrialEvent::ValidationChunkDone { .. } | TrialEvent::Validated { .. } => {}
        }
    }

    /// The control of trial `n`'s seed race, if it races (recorded when it was asked).
    pub fn control(&self, n: TrialNumber) -> Option<TrialNumber> {
        self.controls.get(&n).copied()
    }

    /// The validation of trial `n` on the validation seeds, if one was started.
    pub fn validation(&self, n: TrialNumber) -> Option<&Validation> {
        self.validations.get(&n)
    }

    /// Every validation started, by trial.
    pub fn validations(&self) -> &BTreeMap<TrialNumber, Validation> {
        &self.validations
    }

    /// All trials, in number order.
    pub fn trials(&self) -> impl Iterator<Item = &TrialRecord> {
        self.trials.values()
    }

    /// The trial `n`, if asked.
    pub fn trial(&self, n: TrialNumber) -> Option<&TrialRecord> {
        self.trials.get(&n)
    }

    /// Trials that were asked but never finished (in flight when the controller stopped).
    pub fn unfinished(&self) -> impl Iterator<Item = &TrialRecord> {
        self.trials.values().filter(|t| !t.is_finished())
    }

    /// Stored chunk results of an unfinished trial.
    pub fn chunks(&self, n: TrialNumber) -> Option<&BTreeMap<ChunkIndex, StoredChunk>> {
        self.chunks.get(&n)
    }

    /// Number of finished (complete or failed) trials.
    pub fn n_finished(&self) -> usize {
        self.trials.values().filter(|t| t.is_finished()).count()
    }

    /// The next unused trial number.
    pub fn next_trial_number(&self) -> TrialNumber {
        self.trials
            .keys()
            .next_back()
            .map_or(TrialNumber(0), |n| TrialNumber(n.0 + 1))
    }

    /// The best complete trial in `direction` (ties: the earliest).
    pub fn best(&self, direction: Direction) -> Option<&TrialRecord> {
        best_of(self.trials.values(), direction)
    }
}

/// The best complete trial of `trials` in `direction` (NaN values never win; ties: the earliest).
pub fn best_of<'a>(
    trials: impl IntoIterator<Item = &'a TrialRecord>,
    direction: Direction,
) -> Option<&'a TrialRecord> {
    let mut best: Option<(&TrialRecord, f64)> = None;
    for t in trials {
        if let Some(v) = t.value().filter(|v| !v.is_nan()) {
            if best.is_none_or(|(_, b)| direction.better(v, b)) {
                best = Some((t, v));
            }
        }
    }
    best.map(|(t, _)| t)
}

/// One resume of a run, recorded in `meta.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResumeRecord {
    /// When the controller resumed (ISO-8601, UTC).
    pub at_utc: String,
    /// Trials already finished at that point.
    pub finished_trials: u64,
    /// Trials that were in flight and are being finished with their recorded params.
    pub unfinished_trials: u64,
}

/// `meta.json`: how a run was started. Field names follow the original where they exist.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    /// Version of the run-directory format.
    pub format_version: u32,
    /// Loss name.
    pub loss_name: String,
    /// Loss description.
    pub description: String,
    /// The run directory's name.
    pub run_name: String,
    /// The run directory (as given, relative to the working directory if `run_root` is).
    pub run_dir: String,
    /// `single` or `distributed` (the execution mode of the seed's API).
    pub mode: String,
    /// The backend that evaluated the seeds (`threads`, `processes`, `slurm`, or a backend of
    /// the user's own). Runs written before backends were recorded have none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub backend: String,
    /// Target number of finished trials (a total, including earlier sessions).
    pub n_trials: u64,
    /// Entry id (`optimize_entries`), else null.
    pub entry_id: Option<String>,
    /// First start (kept across resumes).
    pub started_at_utc: String,
    /// First seed.
    pub seed_start: u64,
    /// Last seed (inclusive, as in the original's meta.json).
    pub seed_end: u64,
    /// Number of seeds per trial.
    pub n_seeds: u64,
    /// Seeds per chunk.
    pub chunk_size: u64,
    /// Chunks per trial.
    pub num_chunks: u64,
    /// Trials in flight at once.
    pub max_concurrent_trials: u64,
    /// Seeds in parallel per worker.
    pub worker_parallelism: u64,
    /// Optimisation direction.
    pub direction: Direction,
    /// Sampler seed.
    pub random_seed: u64,
    /// Sampler name.
    pub sampler: String,
    /// The parameter space.
    pub space: ParamSpace,
    /// Fingerprint of the exact seed list and chunking.
    pub seeds_fingerprint: String,
    /// Each resume of this run.
    #[serde(default)]
    pub resumes: Vec<ResumeRecord>,
    /// When the run last reached `n_trials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at_utc: Option<String>,
    /// Seconds from the first start to completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// Best value at completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_value: Option<f64>,
    /// Best params at completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_params: Option<Params>,
    /// The settings of the run's backends as each backend names them (for Slurm the original's
    /// `array_parallelism_limit`, `worker_time_limit_seconds`, `slurm_qos`, ...), stored at the
    /// top level of `meta.json` beside the fields above. Not compared on resume.
    #[serde(flatten)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

impl RunMeta {
    /// The differences that forbid resuming a run stored as `self` with `new`
    /// (loss name, parameter space, direction, seed layout); empty when compatible.
    pub fn resume_conflicts(&self, new: &RunMeta) -> Vec<String> {
        let mut d = Vec::new();
        if self.loss_name != new.loss_name {
            d.push(format!(
                "loss name: stored '{}', now '{}'",
                self.loss_name, new.loss_name
            ));
        }
        if self.space != new.space {
            d.push(format!(
                "parameter space: stored {}, now {}",
                serde_json::to_string(&self.space).unwrap_or_default(),
                serde_json::to_string(&new.space).unwrap_or_default()
            ));
        }
        if self.direction != new.direction {
            d.push(format!(
                "direction: stored {}, now {}",
                self.direction, new.direction
            ));
        }
        if self.seeds_fingerprint != new.seeds_fingerprint {
            d.push(format!(
                "seed layout: stored {} seeds {}..={} in chunks of {}, now {} seeds {}..={} in chunks of {}",
                self.n_seeds, self.seed_start, self.seed_end, self.chunk_size,
                new.n_seeds, new.seed_start, new.seed_end, new.chunk_size
            ));
        }
        if self.entry_id != new.entry_id {
            d.push(format!(
                "entry id: stored {:?}, now {:?}",
                self.entry_id, new.entry_id
            ));
        }
        d
    }
}

/// `summary.json`: the best trial so far and the trial counts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Best value so far (null before the first complete trial).
    pub best_value: Option<f64>,
    /// Best params so far.
    pub best_params: Option<Params>,
    /// Number of the best trial.
    pub best_trial: Option<TrialNumber>,
    /// Complete trials.
    pub n_complete: u64,
    /// Failed trials.
    pub n_failed: u64,
    /// Trials a seed race pruned.
    #[serde(default)]
    pub n_pruned: u64,
    /// Seed evaluations behind the finished trials' results.
    #[serde(default)]
    pub seeds_evaluated: u64,
    /// Seed evaluations racing saved: the seeds pruned trials did not need.
    #[serde(default)]
    pub seeds_saved: u64,
    /// Target number of finished trials.
    pub n_trials: u64,
    /// Optimisation direction.
    pub direction: Direction,
    /// The honest best, once the top trials were re-evaluated on the validation seeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validated: Option<ValidatedBest>,
}

/// The honest best of a study: its top trials by fit value re-evaluated on validation seeds,
/// disjoint from the fit's.
///
/// The fit's best mean is the smallest of many noisy means, so it is biased low and often a lucky
/// draw (the winner's curse). The validated best is chosen by its mean over the first half of
/// the validation seeds (the *selection* seeds), and its value is its mean over the other half
/// (the *report* seeds), which took no part in any choice: an unbiased estimate of its expected
/// loss. With a single candidate, every validation seed reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidatedBest {
    /// The validated best trial.
    pub trial: TrialNumber,
    /// Its parameters.
    pub params: Params,
    /// Its mean over the report seeds (unbiased for its expected loss).
    pub value: f64,
    /// The standard error of `value`.
    pub stderr: f64,
    /// Number of report seeds behind `value`.
    pub n_seeds: u64,
    /// The fit's best trial (the best mean over the study's seeds).
    pub fit_best_trial: TrialNumber,
    /// Every candidate (the top trials by fit value), best fit first.
    pub candidates: Vec<ValidatedTrial>,
}

impl ValidatedBest {
    /// True when the validated best is not the fit's best trial.
    pub fn differs(&self) -> bool {
        self.trial != self.fit_best_trial
    }
}

/// One candidate of the honest best, re-evaluated on the validation seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidatedTrial {
    /// The trial.
    pub trial: TrialNumber,
    /// Its mean over the study's seeds (what the fit ranked it by).
    pub fit_value: f64,
    /// Its mean over the selection seeds (what the validated best is chosen by).
    pub selection_mean: f64,
    /// Its mean over the report seeds.
    pub value: f64,
    /// The standard error of `value`.
    pub stderr: f64,
}

/// Durable storage of one run (claimed by one controller).
///
/// # Contract
/// - `append` writes the event before returning: once it returned, the event survives a killed
///   process (`kill -9`). A crash mid-append leaves at most one torn record, which `load` skips.
/// - Surviving an operating-system crash or power loss is a matter of syncing: everything
///   appended (and every document written) before a call to [`Store::sync`] survives one once
///   `sync` returned. Between syncs a store may group its fsyncs (group commit): a
///   trial-boundary event ([`TrialEvent::is_boundary`]) survives an OS crash once `sync`
///   returned or the store's sync interval passed after the append (a store that syncs every
///   boundary event, such as `slurptuna-store`'s `FsStore` with `SyncPolicy::Always`, makes it
///   durable before `append` returns). Chunk events become durable with the next sync.
/// - `load` returns the fold of every whole event appended so far, in order.
/// - `write_meta` / `write_summary` replace the document atomically: a reader sees the old or the
///   new one, never a mix; `read_meta` / `read_summary` return the last one written, equal to it.
///   `write_meta` is durable on return; `write_summary` may only be durable after the next
///   `sync` (the summary can always be rebuilt from the journal).
/// - `trial_dir` only names a directory; it does not create it.
pub trait Store: Send + Sync {
    /// A short name for messages (`"fs"`, `"memory"`).
    fn name(&self) -> &'static str;
    /// Appends one event: written before returning, synced as the store's policy says (see the
    /// contract above).
    fn append(&self, event: &TrialEvent) -> Result<()>;
    /// Reads the journal back.
    fn load(&self) -> Result<RunHistory>;
    /// The stored `meta.json`, if any.
    fn read_meta(&self) -> Result<Option<RunMeta>>;
    /// Replaces `meta.json`.
    fn write_meta(&self, meta: &RunMeta) -> Result<()>;
    /// Replaces `summary.json`.
    fn write_summary(&self, summary: &RunSummary) -> Result<()>;
    /// The stored `summary.json`, if any.
    fn read_summary(&self) -> Result<Option<RunSummary>>;
    /// Makes everything appended and written so far survive an OS crash (fsync). The
    /// controller calls it at the end of a run, at a clean interrupt, and before a submission
    /// to a batch scheduler. The default does nothing (for stores without a disk).
    fn sync(&self) -> Result<()> {
        Ok(())
    }
    /// The run directory, for stores that have one.
    fn run_dir(&self) -> Option<&Path>;
    /// The path of one trial's directory, for stores that have one. It is NOT created:
    /// whoever writes files there creates it (`std::fs::create_dir_all`).
    fn trial_dir(&self, trial: TrialNumber) -> Result<Option<PathBuf>>;
    /// Keeps the per-seed values of the finished trial `trial`, in the order of the study's seed
    /// list, for the seed races it controls (it is the incumbent). Durable on return. The
    /// default keeps nothing: a resumed race against it then starts its trial again, unraced.
    fn save_control_values(&self, trial: TrialNumber, values: &[f64]) -> Result<()> {
        let _ = (trial, values);
        Ok(())
    }
    /// The values [`Store::save_control_values`] kept for `trial`, if they are intact.
    fn control_values(&self, trial: TrialNumber) -> Result<Option<Vec<f64>>> {
        let _ = trial;
        Ok(None)
    }
    /// Deletes the per-seed values of the finished trial `trial` (its chunks' and its control
    /// values): no race needs them any more. The default has none to delete.
    fn discard_seed_values(&self, trial: TrialNumber) -> Result<()> {
        let _ = trial;
        Ok(())
    }
}

impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn append(&self, event: &TrialEvent) -> Result<()> {
        (**self).append(event)
    }
    fn load(&self) -> Result<RunHistory> {
        (**self).load()
    }
    fn read_meta(&self) -> Result<Option<RunMeta>> {
        (**self).read_meta()
    }
    fn write_meta(&self, meta: &RunMeta) -> Result<()> {
        (**self).write_meta(meta)
    }
    fn write_summary(&self, summary: &RunSummary) -> Result<()> {
        (**self).write_summary(summary)
    }
    fn read_summary(&self) -> Result<Option<RunSummary>> {
        (**self).read_summary()
    }
    fn sync(&self) -> Result<()> {
        (**self).sync()
    }
    fn run_dir(&self) -> Option<&Path> {
        (**self).run_dir()
    }
    fn trial_dir(&self, trial: TrialNumber) -> Result<Option<PathBuf>> {
        (**self).trial_dir(trial)
    }
    fn save_control_values(&self, trial: TrialNumber, values: &[f64]) -> Result<()> {
        (**self).save_control_values(trial, values)
    }
    fn control_values(&self, trial: TrialNumber) -> Result<Option<Vec<f64>>> {
        (**self).control_values(trial)
    }
    fn discard_seed_values(&self, trial: TrialNumber) -> Result<()> {
        (**self).discard_seed_values(trial)
    }
}
