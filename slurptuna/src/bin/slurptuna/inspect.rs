//! `slurptuna runs|show|trials|best|watch|cancel`: reading run directories (never their lock).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;
use slurptuna_core::{RunMeta, RunSummary, TrialState};

/// The inspecting subcommands.
#[derive(Subcommand)]
pub(crate) enum Command {
    /// List the runs under a run root with their progress and best value.
    Runs {
        /// The run root (default `runs`).
        #[arg(default_value = "runs")]
        run_root: PathBuf,
    },
    /// Show a run's settings, progress and best trial.
    Show {
        /// The run directory.
        run_dir: PathBuf,
    },
    /// Print every trial of a run: number, state, value, standard error, parameters.
    Trials {
        /// The run directory.
        run_dir: PathBuf,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    slurptuna_store::read_json(path).with_context(|| format!("reading {}", path.display()))
}

pub(crate) fn run(command: Command) -> Result<()> {
    match command {
        Command::Runs { run_root } => {
            let mut dirs: Vec<PathBuf> = std::fs::read_dir(&run_root)
                .with_context(|| format!("listing {}", run_root.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("meta.json").is_file())
                .collect();
            dirs.sort();
            println!(
                "{:<40} {:<24} {:>9} {:>14}",
                "run", "loss", "trials", "best"
            );
            for dir in dirs {
                let meta: Option<RunMeta> = read(&dir.join("meta.json"))?;
                let summary: Option<RunSummary> = read(&dir.join("summary.json"))?;
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let loss = meta.map(|m| m.loss_name).unwrap_or_default();
                let (done, best) = match summary {
                    Some(s) => (
                        format!("{}/{}", s.n_complete + s.n_failed, s.n_trials),
                        s.best_value.map_or("-".to_string(), |v| format!("{v:.6}")),
                    ),
                    None => ("-".into(), "-".into()),
                };
                println!("{name:<40} {loss:<24} {done:>9} {best:>14}");
            }
        }
        Command::Show { run_dir } => {
            let meta: RunMeta = read(&run_dir.join("meta.json"))?.with_context(|| {
                format!(
                    "{} is not a run directory (no meta.json)",
                    run_dir.display()
                )
            })?;
            let summary: Option<RunSummary> = read(&run_dir.join("summary.json"))?;
            println!("run        {}", meta.run_dir);
            println!("loss       {} — {}", meta.loss_name, meta.description);
            if let Some(id) = &meta.entry_id {
                println!("entry      {id}");
            }
            println!(
                "mode       {}  direction {}  sampler {} (seed {})",
                meta.mode, meta.direction, meta.sampler, meta.random_seed
            );
            println!(
                "seeds      {} ({}..={}) in {} chunks of {}",
                meta.n_seeds, meta.seed_start, meta.seed_end, meta.num_chunks, meta.chunk_size
            );
            println!(
                "started    {}  resumes {}",
                meta.started_at_utc,
                meta.resumes.len()
            );
            if let Some(done) = &meta.completed_at_utc {
                println!("completed  {done}");
            }
            if let Some(s) = summary {
                println!(
                    "trials     {} complete, {} failed, target {}",
                    s.n_complete, s.n_failed, s.n_trials
                );
                if let (Some(v), Some(p), Some(t)) = (s.best_value, s.best_params, s.best_trial) {
                    println!("best       {v} (trial {t}) at {p}");
                }
            }
        }
        Command::Trials { run_dir, json } => {
            let history = slurptuna_store::read_history(&run_dir)
                .with_context(|| format!("reading the journal of {}", run_dir.display()))?;
            for t in history.trials() {
                if json {
                    println!("{}", serde_json::to_string(t)?);
                    continue;
                }
                let (value, stderr, note) = match &t.state {
                    TrialState::Complete { stats } => (
                        format!("{:.6}", stats.mean()),
                        format!("{:.2e}", stats.stderr()),
                        String::new(),
                    ),
                    TrialState::Failed { reason } => ("-".into(), "-".into(), reason.clone()),
                    TrialState::Running => ("-".into(), "-".into(), String::new()),
                };
                println!(
                    "{:>6} {:<9} {value:>12} {stderr:>10} {} {note}",
                    t.number,
                    t.state.label(),
                    t.params
                );
            }
        }
    }
    Ok(())
}
