//! `slurptuna export <run> --format optuna-journal|csv|json|npy -o <out>`.

use std::path::PathBuf;

use anyhow::Result;

const EXPORT_HELP: &str = "\
Examples:
  slurptuna export runs/toy_v0001 --format optuna-journal -o toy.log
  optuna-dashboard toy.log
  slurptuna export runs/toy_v0001 --format npy -o toy.npy   # also toy.seeds.npy, toy.trials.npy

Formats:
  optuna-journal  Optuna's JournalStorage file (one study per entry for an entries run)
  csv             one row per trial: number,state,value,stderr,n_seeds,start,end,reason,params_*
  json            one JSON object per trial, one per line
  npy             per-seed values [n_trials, n_seeds] (needs keep_seed_values), NaN where none

The run is read without its lock and never written: exporting a running study is safe.";

/// Arguments of `export`.
#[derive(clap::Args)]
#[command(after_help = EXPORT_HELP)]
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
    let Some(format) = slurptuna::export::Format::from_name(&a.format) else {
        anyhow::bail!(
            "unknown format {:?}: use optuna-journal, csv, json or npy",
            a.format
        );
    };
    slurptuna::export::export(&a.run_dir, format, &a.output)?;
    eprintln!("wrote {}", a.output.display());
    Ok(())
}
