//! [`StudyOutcome`]: what a study file's run returns, as one JSON object or a few lines of text.

use std::fmt;
use std::path::Path;

use serde_json::{json, Value as Json};

use crate::result::{MultiOptimizeResult, OptimizeResult};

/// The result of [`super::StudyFile::run`]: one study, or one study per entry.
// Made once per run and read by the caller: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum StudyOutcome {
    /// A study without `[entries]` (`optimize_run`).
    Run(OptimizeResult),
    /// A study with `[entries]` (`optimize_entries`).
    Entries(Box<MultiOptimizeResult>),
}

fn study_json(r: &OptimizeResult) -> serde_json::Map<String, Json> {
    let v = json!({
        "best_value": r.best_value,
        "best_params": r.best_params,
        "best_trial": r.best_trial,
        "n_trials": r.n_trials,
        "n_complete": r.n_complete,
        "n_failed": r.n_failed,
        "n_pruned": r.n_pruned,
        "seeds_evaluated": r.seeds_evaluated,
        "seeds_saved": r.seeds_saved,
        "validated": r.validated,
        "run_dir": r.run_dir,
    });
    match v {
        Json::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

impl StudyOutcome {
    /// The run directory (for entries: the parent directory of the entries' runs).
    pub fn run_dir(&self) -> &Path {
        match self {
            StudyOutcome::Run(r) => &r.run_dir,
            StudyOutcome::Entries(m) => &m.run_dir,
        }
    }

    /// The outcome as one JSON object.
    ///
    /// A study: `{"study", "mode", "best_value", "best_params", "best_trial", "n_trials",
    /// "n_complete", "n_failed", "n_pruned", "seeds_evaluated", "seeds_saved", "validated"
    /// (the honest best as in `summary.json`, or null), "run_dir"}`. With entries: `{"study",
    /// "mode", "run_dir" (the parent), "entries": [{"entry_id", ...the same keys...}, ...]}` in
    /// the order of `[entries]`.
    pub fn to_json(&self) -> Json {
        match self {
            StudyOutcome::Run(r) => {
                let mut m = serde_json::Map::new();
                m.insert("study".into(), json!(r.study_name));
                m.insert("mode".into(), json!(r.mode.as_str()));
                m.extend(study_json(r));
                Json::Object(m)
            }
            StudyOutcome::Entries(multi) => {
                let entries: Vec<Json> = multi
                    .entries
                    .iter()
                    .filter_map(|id| {
                        let r = multi.results_by_entry.get(id)?;
                        let mut m = serde_json::Map::new();
                        m.insert("entry_id".into(), json!(id));
                        m.extend(study_json(r));
                        Some(Json::Object(m))
                    })
                    .collect();
                json!({
                    "study": multi.loss_name,
                    "mode": multi.mode.as_str(),
                    "run_dir": multi.run_dir,
                    "entries": entries,
                })
            }
        }
    }
}

impl fmt::Display for StudyOutcome {
    /// A few lines for people: the best value and parameters, the trial counts, the run
    /// directory (one line per entry with entries).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StudyOutcome::Run(r) => {
                writeln!(
                    f,
                    "study {}: best {} at {} (trial {}; {} complete, {} failed)",
                    r.study_name,
                    r.best_value,
                    r.best_params,
                    r.best_trial,
                    r.n_complete,
                    r.n_failed
                )?;
                if let Some(v) = &r.validated {
                    writeln!(
                        f,
                        "validated best {} ± {:.2e} on {} fresh seeds at {} (trial {}{})",
                        v.value,
                        v.stderr,
                        v.n_seeds,
                        v.params,
                        v.trial,
                        if v.differs() {
                            "; not the fit's best, which was a lucky draw"
                        } else {
                            "; the fit's best"
                        }
                    )?;
                }
                write!(f, "run dir {}", r.run_dir.display())
            }
            StudyOutcome::Entries(m) => {
                writeln!(f, "study {}: {} entries", m.loss_name, m.n_entries)?;
                for id in &m.entries {
                    if let Some(r) = m.results_by_entry.get(id) {
                        writeln!(
                            f,
                            "  {id}: best {} at {} (trial {}; {} complete, {} failed)",
                            r.best_value, r.best_params, r.best_trial, r.n_complete, r.n_failed
                        )?;
                    }
                }
                write!(f, "run dir {}", m.run_dir.display())
            }
        }
    }
}
