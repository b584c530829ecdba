//! `slurptuna`: run studies from a study file (`slurptuna run study.toml`, see
//! `slurptuna::study`) and inspect run directories.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use slurptuna_core::{RunMeta, RunSummary, TrialState};

#[derive(Parser)]
#[command(
    name = "slurptuna",
    version,
    about = "Run studies from a study file and inspect run directories"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const RUN_HELP: &str = "\
Example:
  slurptuna run study.toml
  slurptuna run study.toml --set run.n_trials=100 --set run.mode=distributed --json

study.toml:
  [study]
  name = \"toy\"
  description = \"recover alpha and beta\"

  [params]
  alpha = [0.0, 1.0]
  beta  = { range = [0.0, 1.0] }

  [loss]
  command = [\"python3\", \"model.py\"]   # reads JSON requests on stdin, one line per seed out

  [run]
  n_trials = 40
  n_seeds = 100

Re-running the same command resumes the run in runs/<name> next to the study file.
Every key is described in the documentation of slurptuna::study.";

#[derive(Subcommand)]
enum Command {
    /// Run the study a study file describes (its loss is an external command); re-running resumes.
    #[command(after_help = RUN_HELP)]
    Run {
        /// The study file (TOML).
        study: PathBuf,
        /// Override a key of the study file, e.g. `--set run.n_trials=100`: the value is a TOML
        /// value, or else a string. Repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Print the result as one JSON object on stdout (progress goes to stderr).
        #[arg(long)]
        json: bool,
    },
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The library logs through `tracing` and installs nothing: the program does. A study's
    // progress (trials as they finish) is information, on stderr.
    let default_filter = match cli.command {
        Command::Run { .. } => "warn,slurptuna=info",
        _ => "warn",
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .try_init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("slurptuna: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    slurptuna_store::read_json(path).with_context(|| format!("reading {}", path.display()))
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run { study, set, json } => {
            // In a worker process (a Slurm task, a pool worker) `run` evaluates its seeds and
            // exits: nothing below is reached and nothing is printed.
            let outcome = slurptuna::StudyFile::load(&study, &set)?.run()?;
            if json {
                println!("{}", outcome.to_json());
            } else {
                println!("{outcome}");
            }
        }
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
