//! `slurptuna report <run> -o report.html`.

use std::path::PathBuf;

use anyhow::Result;

/// Arguments of `report`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The run directory (or the parent directory of an entries run).
    run_dir: PathBuf,
    /// Where to write the HTML file.
    #[arg(short, long, default_value = "report.html")]
    output: PathBuf,
}

pub(crate) fn run(a: Args) -> Result<()> {
    slurptuna::report::write_report(&a.run_dir, &a.output)?;
    Ok(())
}
