//! `slurptuna`: run studies from a study file (`slurptuna run study.toml`, see
//! `slurptuna::study`) and inspect run directories.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod export;
mod inspect;
mod report;
#[cfg(feature = "slurm")]
mod submit;

#[derive(Parser)]
#[command(
    name = "slurptuna",
    version,
    about = "Run studies from a study file and inspect run directories",
    after_help = "Exit status: 0 success; 1 an error (the message says what to do); 2 a usage error.\n\
                  Examples:\n  slurptuna run study.toml\n  slurptuna show runs/toy\n  \
                  slurptuna report runs/toy -o report.html"
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
        /// Set by `slurptuna submit`: this is the controller job; SIGUSR1 stops the run and
        /// requeues the job.
        #[arg(long, hide = true)]
        controller_job: bool,
    },
    /// Submit the controller of a study as a Slurm job of its own (prints its job id and run
    /// dir, and exits); it requeues itself before its time limit and resumes.
    #[cfg(feature = "slurm")]
    Submit(submit::Args),
    /// Inspect runs: list, show, trials, best, watch, cancel.
    #[command(flatten)]
    Inspect(inspect::Command),
    /// Write the self-contained HTML report of a run.
    Report(report::Args),
    /// Export a run: Optuna journal, CSV, JSON or npy.
    Export(export::Args),
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

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run {
            study,
            set,
            json,
            controller_job,
        } => {
            #[cfg(feature = "slurm")]
            let requeue = match controller_job && !slurptuna::batch::is_batch_worker() {
                true => Some(submit::arm_requeue()?),
                false => None,
            };
            #[cfg(not(feature = "slurm"))]
            if controller_job {
                anyhow::bail!("--controller-job needs a build with the `slurm` feature");
            }
            // In a worker process (a Slurm task, a pool worker) `run` evaluates its seeds and
            // exits: nothing below is reached and nothing is printed.
            let outcome = slurptuna::StudyFile::load(&study, &set)?.run();
            #[cfg(feature = "slurm")]
            if let (Some(r), Err(slurptuna::Error::Interrupted { .. })) = (&requeue, &outcome) {
                if r.load(std::sync::atomic::Ordering::SeqCst) {
                    return submit::requeue_self();
                }
            }
            let outcome = outcome?;
            if json {
                println!("{}", outcome.to_json());
            } else {
                println!("{outcome}");
            }
        }
        Command::Inspect(c) => inspect::run(c)?,
        Command::Report(a) => report::run(a)?,
        Command::Export(a) => export::run(a)?,
        #[cfg(feature = "slurm")]
        Command::Submit(a) => submit::run(a)?,
    }
    Ok(())
}
