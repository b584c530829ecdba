//! Exports of a run (feature `export`): Optuna 5's journal format, CSV, JSON, npy.
//!
//! [`export`] reads a run directory — or the parent directory of an `optimize_entries` run —
//! without its lock and without writing into it (a study may be running), and writes `out`
//! through a temporary file renamed into place.
//!
//! | format | what `out` holds |
//! |---|---|
//! | [`Format::OptunaJournal`] | an Optuna `JournalStorage` file: one study per run (per entry for an entries run), named after the loss (`<loss>:<entry id>` for an entry) |
//! | [`Format::Csv`] | a header and one row per trial (`entry` first for an entries run) |
//! | [`Format::Json`] | one JSON object per trial, one per line |
//! | [`Format::Npy`] | the per-seed values, float64 `[n_trials, n_seeds]`; beside it `<stem>.seeds.npy` and `<stem>.trials.npy` (see [`npy_files`]) |

mod npy;
mod optuna;
mod table;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use slurptuna_core::{format_utc, TrialRecord, TrialState};

use crate::error::{Error, Result};
use crate::inspect::{entries_of, RunData};

pub use npy::{npy_files, NpyFiles};

/// The formats of [`export`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Optuna 5's JournalStorage file (JSON lines): `optuna.load_study(study_name=...,
    /// storage=JournalStorage(JournalFileBackend(out)))` and `optuna-dashboard out` open it.
    ///
    /// Study name: the loss name (`<loss name>:<entry id>` per entry of an entries run).
    /// States: COMPLETE (value = mean over seeds), PRUNED (trials a seed race stopped: their
    /// intermediate values are the race's looks, step = seeds of the evaluated prefix, value =
    /// the estimate of the trial's mean; the last one is the trial's value, as Optuna stores a
    /// pruned trial; user attr `race` holds seeds, estimate, bound, beta, threshold, control and
    /// alpha), FAIL (failed trials, and complete trials whose mean is NaN), RUNNING (trials in
    /// flight). Distributions follow the parameter space
    /// (float with log/step, int with log/step, categorical; categorical params as choice
    /// indices, as Optuna stores them). Trial user attrs: `n_seeds` (seeds evaluated), `stderr`
    /// and `std` (complete trials), `slurptuna_trial`, `entry_id` (entries runs),
    /// `fail_reason` (failed trials). Study user attrs: `loss_name`, `description`,
    /// `n_seeds`, `seed_start`, `seed_end`, `entry_id`. Datetimes are the journal's
    /// wall-clock times (UTC), else the run's first start.
    OptunaJournal,
    /// One row per trial: `number,state,value,stderr,n_seeds,start,end,reason,params_<name>...`
    /// (`entry` first for an entries run). `state` is COMPLETE, FAILED, PRUNED (`value` empty,
    /// `n_seeds` the seeds it evaluated) or RUNNING; times are
    /// ISO-8601 UTC (empty when the journal has none); non-finite numbers are `inf`, `-inf`,
    /// `NaN`; empty cells are missing values.
    Csv,
    /// One JSON object per trial, one per line: `number`, `state`, `value`, `stderr`,
    /// `n_seeds`, `start`, `end`, `reason`, `params` (an object), `entry` for an entries run
    /// and `race` for a PRUNED trial (`seeds`, `estimate`, `bound`, `beta`, `threshold`,
    /// `control`, `alpha`). Missing values are `null`; non-finite numbers are the strings `"inf"`, `"-inf"`,
    /// `"nan"`.
    Json,
    /// Per-seed values (needs a run with `keep_seed_values`), as plain `.npy` files for
    /// `numpy.load`: `out` holds float64 `[n_trials, n_seeds]` (rows in trial-number order,
    /// columns in the run's seed order, NaN where a seed was not evaluated or its value was not
    /// kept), `<stem>.seeds.npy` the seed of each column (uint64) and `<stem>.trials.npy` the
    /// trial number of each row (uint64), where `<stem>` is `out` without `.npy`. For an
    /// entries run, each entry gets these three files with `<stem>.<entry directory>` as stem.
    Npy,
}

impl Format {
    /// The format named `name`: `optuna-journal`, `csv`, `json` or `npy`.
    pub fn from_name(name: &str) -> Option<Format> {
        Some(match name {
            "optuna-journal" => Format::OptunaJournal,
            "csv" => Format::Csv,
            "json" => Format::Json,
            "npy" => Format::Npy,
            _ => return None,
        })
    }
}

/// Exports the run at `run_dir` (a run directory, or the parent directory of an entries run)
/// as `format` to `out`. Never takes the run's lock and never writes into the run.
pub fn export(run_dir: &Path, format: Format, out: &Path) -> Result<()> {
    let studies = load_studies(run_dir)?;
    match format {
        Format::OptunaJournal => optuna::write(&studies, out),
        Format::Csv => table::write_csv(&studies, out),
        Format::Json => table::write_json(&studies, out),
        Format::Npy => npy::write(&studies, out),
    }
}

/// One study to export: a run directory and, for an entries run, its entry id and directory
/// name.
pub(crate) struct Study {
    pub(crate) entry: Option<(String, String)>,
    pub(crate) data: RunData,
}

impl Study {
    pub(crate) fn entry_id(&self) -> Option<&str> {
        self.entry.as_ref().map(|(id, _)| id.as_str())
    }
}

fn load_studies(run_dir: &Path) -> Result<Vec<Study>> {
    match entries_of(run_dir)? {
        Some(entries) => entries
            .runs
            .into_iter()
            .map(|(id, dir)| {
                let label = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| id.clone());
                Ok(Study {
                    entry: Some((id, label)),
                    data: RunData::load(&dir)?,
                })
            })
            .collect(),
        None => Ok(vec![Study {
            entry: None,
            data: RunData::load(run_dir)?,
        }]),
    }
}

/// What every format says about one trial.
pub(crate) struct TrialSummary<'a> {
    /// Mean over seeds (complete trials).
    pub(crate) value: Option<f64>,
    pub(crate) stderr: Option<f64>,
    pub(crate) std: Option<f64>,
    /// Seeds evaluated: all of a complete trial, those done so far of a running one.
    pub(crate) n_seeds: Option<u64>,
    /// Recorded wall-clock times (unix seconds).
    pub(crate) started: Option<f64>,
    pub(crate) finished: Option<f64>,
    pub(crate) reason: Option<&'a str>,
}

pub(crate) fn summarize<'a>(data: &'a RunData, record: &'a TrialRecord) -> TrialSummary<'a> {
    let times = data
        .history
        .times(record.number)
        .copied()
        .unwrap_or_default();
    let (value, stderr, std, n_seeds, reason) = match &record.state {
        TrialState::Complete { stats } => (
            Some(stats.mean()),
            Some(stats.stderr()),
            Some(stats.std()),
            Some(stats.count()),
            None,
        ),
        TrialState::Failed { reason } => (None, None, None, None, Some(reason.as_str())),
        TrialState::Pruned { race } => (None, None, None, Some(race.stats.count()), None),
        TrialState::Running => {
            let done = data
                .history
                .chunks(record.number)
                .map_or(0, |c| c.values().map(|s| s.result.stats.count()).sum());
            (None, None, None, Some(done), None)
        }
    };
    TrialSummary {
        value,
        stderr,
        std,
        n_seeds,
        started: times.started,
        finished: times.finished,
        reason,
    }
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SS.ffffff+00:00`.
pub(crate) fn utc(secs: f64) -> Option<String> {
    (secs.is_finite() && secs >= 0.0)
        .then(|| format_utc(UNIX_EPOCH + Duration::from_secs_f64(secs)))
}

pub(crate) fn export_error(path: &Path, source: std::io::Error) -> Error {
    Error::Export {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn invalid(path: &Path, message: String) -> Error {
    export_error(path, std::io::Error::other(message))
}

/// Writes `out` through `<out>.tmp<pid>` in the same directory, synced and renamed into place.
pub(crate) fn write_atomic(
    out: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let name = out
        .file_name()
        .ok_or_else(|| invalid(out, "the output path names no file".to_string()))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp: PathBuf = out.with_file_name(tmp_name);
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(file);
        fill(&mut w)?;
        w.flush()?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, out)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(export_error(out, e));
    }
    Ok(())
}
