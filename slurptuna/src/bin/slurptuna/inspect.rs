//! `slurptuna runs|show|trials|best|watch|cancel`: reading run directories (never their lock),
//! thin over `slurptuna::inspect`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Subcommand, ValueEnum};
use slurptuna::inspect::{self, RunData, SortKey, StateFilter};

const RUNS_HELP: &str = "\
Example:
  slurptuna runs runs/
  slurptuna runs runs/participants   # an entries run: one line per entry

Exit status: 0 success, 1 error (the message says what to do), 2 invalid usage.";

const SHOW_HELP: &str = "\
Example:
  slurptuna show runs/toy_v0001

For a DISTRIBUTED run, the jobs still in Slurm's queue are listed with their states (squeue).
Exit status: 0 success, 1 error (the message says what to do), 2 invalid usage.";

const TRIALS_HELP: &str = "\
Example:
  slurptuna trials runs/toy_v0001 --state complete --sort value
  slurptuna trials runs/toy_v0001 --csv > trials.csv

Exit status: 0 success, 1 error (the message says what to do), 2 invalid usage.";

const BEST_HELP: &str = "\
Example:
  slurptuna best runs/toy_v0001 --json

Exit status: 0 success, 1 error or no complete trial yet, 2 invalid usage.";

const WATCH_HELP: &str = "\
Example (in another terminal, or on a login node, while the study runs):
  slurptuna watch runs/toy_v0001 --interval 5

Stop watching with Ctrl-C; the study goes on.
Exit status: 0 the study ended, 1 error, 2 invalid usage.";

const CANCEL_HELP: &str = "\
Example:
  slurptuna cancel runs/toy_v0001 --yes

Every job recorded for the run (trials/*/jobs.json) is cancelled with scancel. A controller still
running sees its tasks CANCELLED; re-running the study resumes it.
Exit status: 0 cancelled (or nothing to cancel), 1 error or not confirmed, 2 invalid usage.";

/// `--state`.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum State {
    /// Complete trials.
    Complete,
    /// Failed trials.
    Failed,
    /// Trials being evaluated.
    Running,
    /// Trials a seed race stopped early.
    Pruned,
}

/// `--sort`.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Sort {
    /// By trial number.
    Number,
    /// By value, best first.
    Value,
}

fn interval(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!(
            "'{s}' is not a positive number of seconds: e.g. --interval 2"
        )),
    }
}

/// The inspecting subcommands.
#[derive(Subcommand)]
pub(crate) enum Command {
    /// List the runs under a run root (one line per entry for entries runs) with progress and best value.
    #[command(after_help = RUNS_HELP)]
    Runs {
        /// The run root (default `runs`), a run directory, or an entries run's directory.
        #[arg(default_value = "runs")]
        run_root: PathBuf,
    },
    /// Show a run's settings, progress, best trial, failures and live Slurm jobs.
    #[command(after_help = SHOW_HELP)]
    Show {
        /// The run directory.
        run_dir: PathBuf,
    },
    /// Print the trials of a run: number, state, value, standard error, seeds, parameters.
    #[command(after_help = TRIALS_HELP)]
    Trials {
        /// The run directory.
        run_dir: PathBuf,
        /// Only trials in this state.
        #[arg(long, value_enum)]
        state: Option<State>,
        /// Order of the trials.
        #[arg(long, value_enum, default_value = "number")]
        sort: Sort,
        /// One JSON object per line instead of a table.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// CSV with a header line instead of a table.
        #[arg(long)]
        csv: bool,
    },
    /// Print the best trial of a run: value ± standard error, seeds, parameters.
    #[command(after_help = BEST_HELP)]
    Best {
        /// The run directory.
        run_dir: PathBuf,
        /// One JSON object: trial, value, stderr, n_seeds, params.
        #[arg(long)]
        json: bool,
    },
    /// Follow a running study: trials done, best so far, running trials and their jobs.
    #[command(after_help = WATCH_HELP)]
    Watch {
        /// The run directory.
        run_dir: PathBuf,
        /// Seconds between refreshes.
        #[arg(long, default_value = "2", value_parser = interval)]
        interval: f64,
    },
    /// Cancel (scancel) every Slurm job recorded for a run.
    #[command(after_help = CANCEL_HELP)]
    Cancel {
        /// The run directory.
        run_dir: PathBuf,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// Reads a run, with a hint when `run_dir` is the parent of an entries run.
fn load(run_dir: &Path) -> Result<RunData> {
    if !run_dir.join("meta.json").is_file() {
        if let Ok(Some(er)) = inspect::entries_of(run_dir) {
            let first = er
                .runs
                .first()
                .map_or(String::new(), |(_, d)| format!(", e.g. {}", d.display()));
            bail!(
                "{} is an entries run ({} entries): list them with `slurptuna runs {}` and give one entry's directory{first}",
                run_dir.display(),
                er.runs.len(),
                run_dir.display()
            );
        }
        bail!(
            "{} is not a run directory (no meta.json): check the path; `slurptuna runs <run_root>` lists the runs",
            run_dir.display()
        );
    }
    RunData::load(run_dir).with_context(|| format!("reading the run {}", run_dir.display()))
}

pub(crate) fn run(command: Command) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        Command::Runs { run_root } => {
            if !run_root.is_dir() {
                bail!(
                    "{} is not a directory: give the run root (the run_root of your study, default `runs`)",
                    run_root.display()
                );
            }
            let lines = inspect::list_runs(&run_root)
                .with_context(|| format!("listing the runs under {}", run_root.display()))?;
            write!(out, "{}", inspect::format_runs(&lines))?;
        }
        Command::Show { run_dir } => {
            let data = load(&run_dir)?;
            write!(out, "{}", inspect::show(&data)?)?;
        }
        Command::Trials {
            run_dir,
            state,
            sort,
            json,
            csv,
        } => {
            let data = load(&run_dir)?;
            let filter = state.map(|s| match s {
                State::Complete => StateFilter::Complete,
                State::Failed => StateFilter::Failed,
                State::Running => StateFilter::Running,
                State::Pruned => StateFilter::Pruned,
            });
            let sort = match sort {
                Sort::Number => SortKey::Number,
                Sort::Value => SortKey::Value,
            };
            let rows = inspect::trials(&data, filter, sort);
            let text = if json {
                inspect::to_json(&rows)
            } else if csv {
                inspect::to_csv(&rows)
            } else {
                inspect::format_trials(&rows)
            };
            write!(out, "{text}")?;
        }
        Command::Best { run_dir, json } => {
            let data = load(&run_dir)?;
            let Some(b) = inspect::best(&data) else {
                bail!(
                    "{} has no complete trial yet: wait for one (`slurptuna watch {}`) or look at the failures (`slurptuna show {}`)",
                    run_dir.display(),
                    run_dir.display(),
                    run_dir.display()
                );
            };
            if json {
                writeln!(out, "{}", serde_json::to_string(&b)?)?;
            } else {
                writeln!(
                    out,
                    "{} ± {:.2e} over {} seeds (trial {})\n{}",
                    b.value, b.stderr, b.n_seeds, b.trial, b.params
                )?;
            }
        }
        Command::Watch { run_dir, interval } => {
            drop(out);
            watch(&run_dir, interval)?;
        }
        Command::Cancel { run_dir, yes } => {
            drop(out);
            cancel(&run_dir, yes)?;
        }
    }
    Ok(())
}

fn watch(run_dir: &Path, interval: f64) -> Result<()> {
    let tty = std::io::stdout().is_terminal();
    let mut last = String::new();
    loop {
        let data = load(run_dir)?;
        let (frame, finished) = inspect::watch_frame(&data)?;
        let mut out = std::io::stdout().lock();
        if tty {
            // Home, clear the screen, then the frame.
            write!(out, "\x1b[H\x1b[2J{frame}")?;
        } else if frame != last {
            writeln!(out, "{frame}")?;
        }
        out.flush()?;
        if finished {
            return Ok(());
        }
        last = frame;
        std::thread::sleep(Duration::from_secs_f64(interval));
    }
}

fn cancel(run_dir: &Path, yes: bool) -> Result<()> {
    let data = load(run_dir)?;
    let jobs = inspect::recorded_jobs(&data.run_dir)
        .with_context(|| format!("reading the jobs recorded in {}", run_dir.display()))?;
    if jobs.is_empty() {
        println!(
            "{}: no job recorded (a SINGLE run, or nothing submitted yet): nothing to cancel",
            run_dir.display()
        );
        return Ok(());
    }
    let mut ids: Vec<String> = jobs.iter().map(|(_, j)| j.to_string()).collect();
    ids.sort();
    ids.dedup();
    if !yes {
        eprint!(
            "cancel {} job(s) of {} ({})? [y/N] ",
            ids.len(),
            run_dir.display(),
            ids.join(" ")
        );
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            bail!("not confirmed: nothing was cancelled (answer 'y', or pass --yes)");
        }
    }
    // A live controller of this run on this host stops as on Ctrl-C (it cancels its own jobs
    // and records the interrupt); the scancel below then catches whatever is left.
    if let Some(pid) = stop_controller(&data.run_dir) {
        println!(
            "stopped the controller (pid {pid}) of {}",
            run_dir.display()
        );
    }
    let status = std::process::Command::new("scancel")
        .args(&ids)
        .status()
        .context("could not run scancel: run this where Slurm's commands are installed (a login node of the cluster)")?;
    if !status.success() {
        bail!(
            "scancel {} failed ({status}): check the job ids with `squeue` and that they are yours",
            ids.join(" ")
        );
    }
    for (trial, job) in &jobs {
        println!("cancelled job {job} (trial {trial})");
    }
    println!(
        "{} job(s) cancelled; re-run the study to resume it",
        ids.len()
    );
    Ok(())
}

/// Sends SIGTERM to the controller holding `run_dir`'s lock when it runs on this host, and waits
/// (up to 30 s) for it to exit; returns its pid when there was one.
fn stop_controller(run_dir: &Path) -> Option<u32> {
    let text = std::fs::read(run_dir.join(slurptuna_store::LOCK_FILE)).ok()?;
    let holder: slurptuna_store::LockHolder = serde_json::from_slice(&text).ok()?;
    if holder.host != slurptuna_store::host_name() || holder.pid == std::process::id() {
        return None;
    }
    // Alive: not gone and not a zombie waiting for its parent (Linux's /proc says which; else
    // `kill -0`).
    let alive = |pid: u32| match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) if std::path::Path::new("/proc/self/stat").exists() => false,
        Err(_) => std::process::Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
    };
    if !alive(holder.pid) {
        return None;
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &holder.pid.to_string()])
        .status();
    let start = std::time::Instant::now();
    while alive(holder.pid) && start.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Some(holder.pid)
}
