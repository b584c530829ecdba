//! `slurptuna export <run> --format optuna-journal|csv|json|npy`.

use std::path::PathBuf;

use anyhow::Result;

/// Arguments of `export`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The run directory (or the parent directory of an entries run).
    run_dir: PathBuf,
    /// optuna-journal, csv, json or npy.
    #[arg(long)]
    format: String,
    /// Where to write.
    #[arg(short, long)]
    output: PathBuf,
}

pub(crate) fn run(a: Args) -> Result<()> {
    let format = match a.format.as_str() {
        "optuna-journal" => slurptuna::export::Format::OptunaJournal,
        "csv" => slurptuna::export::Format::Csv,
        "json" => slurptuna::export::Format::Json,
        "npy" => slurptuna::export::Format::Npy,
        other => anyhow::bail!("unknown format {other:?}: use optuna-journal, csv, json or npy"),
    };
    slurptuna::export::export(&a.run_dir, format, &a.output)?;
    Ok(())
}
