//! Reading run directories — while a controller writes them or after — for the CLI, the
//! report and the exports. Reading never takes the run's lock, never writes, and tolerates a torn
//! last journal line, so it cannot block or corrupt a running study.

use std::path::{Path, PathBuf};

use slurptuna_core::{RunHistory, RunMeta, RunSummary, TrialRecord};
use slurptuna_store::{EntriesSummary, META_FILE, SUMMARY_FILE};

use crate::error::Result;

/// Everything recorded about one run directory, read without its lock.
#[derive(Clone, Debug)]
pub struct RunData {
    /// The run directory.
    pub run_dir: PathBuf,
    /// `meta.json`: settings, first start, resumes.
    pub meta: RunMeta,
    /// `summary.json`, if written yet (derived from the journal; may lag it by the sync interval).
    pub summary: Option<RunSummary>,
    /// The journal's fold: every trial so far, finished or running.
    pub history: RunHistory,
}

impl RunData {
    /// Reads `run_dir` (a run directory: it has a `meta.json`).
    pub fn load(run_dir: &Path) -> Result<RunData> {
        let meta: RunMeta =
            slurptuna_store::read_json(&run_dir.join(META_FILE))?.ok_or_else(|| {
                slurptuna_store::StoreError::NotARun {
                    run_dir: run_dir.to_path_buf(),
                }
            })?;
        let summary = slurptuna_store::read_json(&run_dir.join(SUMMARY_FILE))?;
        let history = slurptuna_store::read_history(run_dir)?;
        Ok(RunData {
            run_dir: run_dir.to_path_buf(),
            meta,
            summary,
            history,
        })
    }

    /// The trials in trial-number order.
    pub fn trials(&self) -> impl Iterator<Item = &TrialRecord> {
        self.history.trials()
    }
}

/// The parent directory of an `optimize_entries` run: its `summary.json` and, per entry in
/// input order, the entry id and its run directory.
#[derive(Clone, Debug)]
pub struct EntriesRun {
    /// The parent's `summary.json`.
    pub summary: EntriesSummary,
    /// `(entry id, run directory)` per entry.
    pub runs: Vec<(String, PathBuf)>,
}

/// The entries run at `dir`, or `None` when `dir` is not the parent of an entries run.
pub fn entries_of(dir: &Path) -> Result<Option<EntriesRun>> {
    let Some(summary): Option<EntriesSummary> = slurptuna_store::read_json(&dir.join(SUMMARY_FILE))
        .ok()
        .flatten()
    else {
        return Ok(None);
    };
    if dir.join(META_FILE).is_file() {
        return Ok(None);
    }
    let runs = summary
        .entries
        .iter()
        .map(|id| {
            let label = summary
                .labels_by_entry
                .get(id)
                .cloned()
                .unwrap_or_else(|| id.clone());
            (id.clone(), dir.join(label))
        })
        .collect();
    Ok(Some(EntriesRun { summary, runs }))
}

mod jobs;
mod views;
#[cfg(feature = "export")]
pub(crate) use views::{csv_field, param_text};

pub use jobs::{job_states, parse_squeue, recorded_jobs, JobStates, TaskState};
pub use views::{
    best, format_runs, format_trials, is_finished, list_runs, show, show_with, to_csv, to_json,
    trials, watch_frame, watch_frame_with, Best, RaceRow, RunLine, SortKey, StateFilter, TrialRow,
};
