//! `slurptuna submit study.toml`: the controller as a Slurm job of its own, so that nothing has
//! to stay alive on a login node.
//!
//! The job runs `slurptuna run <study> ... --controller-job` through a fixed batch script.
//! Slurm warns it `--grace` seconds before its time limit (`--signal=B:USR1@<grace>`); the
//! controller then stops cleanly, leaves its job arrays running (`keep_jobs_on_interrupt`) and
//! requeues its own job (`scontrol requeue`). The job starts again, and `slurptuna run` resumes
//! the run directory: it re-adopts the arrays and goes on. `slurptuna watch <run dir>` follows
//! it from anywhere the run directory is visible.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args as ClapArgs;

/// The batch script of a controller job: fixed text, the command comes as its arguments.
const CONTROLLER_SCRIPT: &str = r#"#!/bin/sh
# slurptuna controller job (written by `slurptuna submit`): runs its arguments, a
# `slurptuna run <study file> ... --controller-job` command. Before the job's time limit Slurm
# sends SIGUSR1 (--signal=B:USR1@<grace>); the controller stops cleanly, leaves its job arrays
# running and requeues this job, which then resumes the run.
# The memory variables of this job's allocation would clash with the arrays' --mem-per-cpu.
unset SLURM_MEM_PER_CPU SLURM_MEM_PER_GPU SLURM_MEM_PER_NODE
exec "$@"
"#;

/// `slurptuna submit`.
#[derive(ClapArgs)]
#[command(
    after_help = "Example:\n  slurptuna submit study.toml --time 2-00:00:00 --partition long\n  \
                        slurptuna watch runs/toy"
)]
pub(crate) struct Args {
    /// The study file (TOML); checked before anything is submitted.
    study: PathBuf,
    /// Override a key of the study file, as with `slurptuna run`. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Time limit of each run of the controller job (`sbatch --time`); before it the controller
    /// requeues itself.
    #[arg(long, default_value = "1-00:00:00")]
    time: String,
    /// Seconds before the time limit at which the controller stops and requeues itself.
    #[arg(long, default_value_t = 300)]
    grace: u64,
    /// Partition of the controller job (default: the cluster's).
    #[arg(long)]
    partition: Option<String>,
    /// Account of the controller job.
    #[arg(long)]
    account: Option<String>,
    /// QoS of the controller job.
    #[arg(long)]
    qos: Option<String>,
    /// Memory of the controller job (`sbatch --mem`).
    #[arg(long, default_value = "1G")]
    mem: String,
    /// Print `{"job": ..., "run_dir": ..., "log": ...}` on stdout.
    #[arg(long)]
    json: bool,
}

fn check_value(option: &str, value: &str, allowed: impl Fn(char) -> bool) -> Result<()> {
    if value.is_empty() || !value.chars().all(allowed) {
        bail!("--{option} {value:?}: not a valid value");
    }
    Ok(())
}

fn sbatch(args: &[OsString]) -> Result<String> {
    let out = Command::new("sbatch")
        .args(args)
        .output()
        .context("could not run `sbatch`: is Slurm installed and on PATH?")?;
    if !out.status.success() {
        bail!(
            "sbatch refused the controller job ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(crate) fn run(a: Args) -> Result<()> {
    // Every check before anything is written or submitted.
    let study = std::path::absolute(&a.study)
        .with_context(|| format!("{}: cannot make the path absolute", a.study.display()))?;
    let file = slurptuna::StudyFile::load(&study, &a.set)?;
    check_value("time", &a.time, |c| {
        c.is_ascii_digit() || c == ':' || c == '-'
    })?;
    check_value("mem", &a.mem, |c| c.is_ascii_alphanumeric())?;
    for (option, value) in [
        ("partition", &a.partition),
        ("account", &a.account),
        ("qos", &a.qos),
    ] {
        if let Some(v) = value {
            check_value(option, v, |c| {
                c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ',')
            })?;
        }
    }
    let run_dir = file.run_dir();
    let name = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "study".into());
    let parent = run_dir.parent().unwrap_or(Path::new(".")).to_path_buf();
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let mut options: Vec<OsString> = vec![
        "--parsable".into(),
        format!("--job-name=slurptuna-controller-{name}").into(),
        format!("--time={}", a.time).into(),
        format!("--signal=B:USR1@{}", a.grace).into(),
        "--requeue".into(),
        "--open-mode=append".into(),
        "--cpus-per-task=1".into(),
        format!("--mem={}", a.mem).into(),
    ];
    for (flag, value) in [
        ("--partition", &a.partition),
        ("--account", &a.account),
        ("--qos", &a.qos),
    ] {
        if let Some(v) = value {
            options.push(format!("{flag}={v}").into());
        }
    }
    let log = parent.join(format!("{name}.controller.log"));
    options.push(flag_path("--output=", &log));
    options.push(flag_path("--error=", &log));
    options.push(flag_path("--chdir=", file.base_dir()));
    // A rejected partition, account, QoS or time is an error before anything is written.
    let mut test = vec![OsString::from("--test-only")];
    test.extend(options.iter().filter(|o| *o != "--parsable").cloned());
    test.push("--wrap=true".into());
    sbatch(&test)?;
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let script = parent.join(format!("{name}.controller.sh"));
    std::fs::write(&script, CONTROLLER_SCRIPT)
        .with_context(|| format!("cannot write {}", script.display()))?;
    let mut argv = options;
    argv.push(script.into_os_string());
    argv.push(exe.into_os_string());
    argv.push("run".into());
    argv.push(study.into_os_string());
    for s in &a.set {
        argv.push("--set".into());
        argv.push(s.into());
    }
    argv.push("--set".into());
    argv.push("run.keep_jobs_on_interrupt=true".into());
    argv.push("--controller-job".into());
    let job = slurptuna::slurm::parse_sbatch(&sbatch(&argv)?)?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "job": job.0,
                "run_dir": run_dir,
                "log": log,
            })
        );
    } else {
        println!(
            "submitted the controller as job {job}\nrun dir: {}\nlog: {}\nfollow it with: slurptuna watch {}",
            run_dir.display(),
            log.display(),
            run_dir.display()
        );
    }
    Ok(())
}

/// `--flag=<path>` as one argument, the path as it is (not necessarily UTF-8).
fn flag_path(flag: &str, path: &Path) -> OsString {
    let mut arg = OsString::from(flag);
    arg.push(path);
    arg
}

/// In a controller job: SIGUSR1 (Slurm's warning before the time limit) stops the run as
/// SIGTERM does, and marks the job to be requeued. Returns the mark.
pub(crate) fn arm_requeue() -> Result<Arc<AtomicBool>> {
    let requeue = Arc::new(AtomicBool::new(false));
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGUSR1])
        .context("cannot handle SIGUSR1")?;
    let mark = requeue.clone();
    std::thread::Builder::new()
        .name("slurptuna-requeue".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                tracing::info!("the controller job's time is nearly up: stopping to requeue it");
                mark.store(true, Ordering::SeqCst);
                let _ = signal_hook::low_level::raise(signal_hook::consts::SIGTERM);
            }
        })
        .context("cannot start the signal thread")?;
    Ok(requeue)
}

/// Requeues this controller job (`scontrol requeue $SLURM_JOB_ID`): it starts again and
/// resumes the run.
pub(crate) fn requeue_self() -> Result<()> {
    let job = std::env::var("SLURM_JOB_ID")
        .context("--controller-job runs as a Slurm job, but SLURM_JOB_ID is not set")?;
    let out = Command::new("scontrol")
        .args(["requeue", &job])
        .output()
        .context("could not run `scontrol`")?;
    if !out.status.success() {
        bail!(
            "scontrol requeue {job} failed ({}): {}; resume with `slurptuna submit` again",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    eprintln!("slurptuna: requeued the controller job {job}; it resumes the run when it starts");
    Ok(())
}
