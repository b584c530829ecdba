//! What `optimize_run` and `optimize_entries` return.

use std::collections::BTreeMap;
use std::path::PathBuf;

use slurptuna_core::{Params, TrialNumber, TrialRecord, ValidatedBest};

use crate::mode::ExecutionMode;

/// The outcome of one study.
#[derive(Clone, Debug)]
pub struct OptimizeResult {
    /// The loss name (also the study name).
    pub loss_name: String,
    /// Best mean loss over the seeds.
    pub best_value: f64,
    /// Parameters of the best trial.
    pub best_params: Params,
    /// Number of the best trial.
    pub best_trial: TrialNumber,
    /// The target number of finished trials (`RunOptions::n_trials`).
    pub n_trials: u64,
    /// Trials that completed.
    pub n_complete: u64,
    /// Trials that failed (recorded with their reason).
    pub n_failed: u64,
    /// Trials a seed race pruned ([`crate::Racing`]).
    pub n_pruned: u64,
    /// Seed evaluations behind the finished trials' results (this session and earlier ones).
    pub seeds_evaluated: u64,
    /// Seed evaluations racing saved: the seeds pruned trials did not need.
    pub seeds_saved: u64,
    /// The study name (the loss name, as in the original).
    pub study_name: String,
    /// The run directory.
    pub run_dir: PathBuf,
    /// The execution mode used.
    pub mode: ExecutionMode,
    /// Every finished trial, in trial-number order.
    pub trials: Vec<TrialRecord>,
    /// The honest best ([`crate::RunOptions::validation_seeds`]): the top trials re-evaluated
    /// on the validation seeds. `None` without validation seeds, or when every validation
    /// failed. [`ValidatedBest::differs`] says when it is not the fit's best trial.
    pub validated: Option<ValidatedBest>,
}

/// The outcome of `optimize_entries`: one study per entry.
#[derive(Clone, Debug)]
pub struct MultiOptimizeResult {
    /// The loss name.
    pub loss_name: String,
    /// Number of entries.
    pub n_entries: usize,
    /// Entry ids, in input order.
    pub entries: Vec<String>,
    /// Each entry's result.
    pub results_by_entry: BTreeMap<String, OptimizeResult>,
    /// Each entry's best value.
    pub best_values_by_entry: BTreeMap<String, f64>,
    /// Each entry's best parameters.
    pub best_params_by_entry: BTreeMap<String, Params>,
    /// Each entry's run directory.
    pub run_dirs_by_entry: BTreeMap<String, PathBuf>,
    /// The parent directory holding one run directory per entry.
    pub run_dir: PathBuf,
    /// The execution mode used.
    pub mode: ExecutionMode,
}
