//! `cargo xtask bench slurm`: per-trial overhead of DISTRIBUTED mode on the local Slurm, side by
//! side with the Python original (slurptuna 0.0.7 from pip, in a venv under `target/`).
//!
//! Both run the same study: `--trials` trials (default 10) one after another, each 4 chunks of
//! 10 seeds that sleep 100 ms (so a chunk computes for ~1 s), with the same poll interval
//! (`--poll`, seconds, default 1). A baseline measures Slurm alone: a 4-task array of `sleep 1`
//! from `sbatch` until every task has written its marker file. Results go to
//! `bench/results/slurm.md`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::util::{build_release, median, project_root, run_cmd, target_dir};

const N_SEEDS: u64 = 40;
const CHUNK_SIZE: u64 = 10;
/// Compute time of one chunk (seeds run one after another inside a task).
const CHUNK_COMPUTE_S: f64 = CHUNK_SIZE as f64 * 0.1;

struct Args {
    trials: u64,
    poll: f64,
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut a = Args {
        trials: 10,
        poll: 1.0,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--trials" => a.trials = value.parse().context("--trials")?,
            "--poll" => a.poll = value.parse().context("--poll")?,
            _ => bail!("unknown argument {flag:?}; use --trials N --poll SECONDS"),
        }
    }
    if a.trials == 0 || a.poll <= 0.0 {
        bail!("--trials and --poll must be > 0");
    }
    Ok(a)
}

fn stdout_of(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("could not start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Slurm alone: sbatch of a 4-task `sleep 1` array until every task's marker file exists.
fn baseline(dir: &Path, reps: usize) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for rep in 0..reps {
        let d = dir.join(format!("baseline_{rep}"));
        std::fs::create_dir_all(&d)?;
        let t0 = Instant::now();
        stdout_of(Command::new("sbatch").args([
            "--parsable",
            "--array=0-3",
            "--mem-per-cpu=100M",
            "--job-name=slurptuna-bench-baseline",
            "--output=/dev/null",
            &format!("--chdir={}", d.display()),
            "--wrap",
            "sleep 1; touch done_$SLURM_ARRAY_TASK_ID",
        ]))?;
        let end = t0 + Duration::from_secs(120);
        while (0..4).any(|t| !d.join(format!("done_{t}")).exists()) {
            if Instant::now() > end {
                bail!("the baseline array did not finish within 120 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        out.push(t0.elapsed().as_secs_f64());
    }
    Ok(out)
}

fn trial_times(json: &str, who: &str) -> Result<(f64, Vec<f64>)> {
    let line = json
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .with_context(|| format!("{who} printed no JSON: {json}"))?;
    let v: serde_json::Value =
        serde_json::from_str(line).with_context(|| format!("{who} printed bad JSON: {line}"))?;
    let wall = v["wall"].as_f64().context("no wall time")?;
    let trials = v["trials"]
        .as_array()
        .context("no trial times")?
        .iter()
        .filter_map(serde_json::Value::as_f64)
        .collect();
    Ok((wall, trials))
}

pub(crate) fn python_venv(root: &Path) -> Result<PathBuf> {
    let venv = root.join("target").join("bench-slurm-venv");
    let python = venv.join("bin").join("python");
    let ready = Command::new(&python)
        .args(["-c", "import slurptuna, optuna"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ready {
        run_cmd(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        run_cmd(Command::new(venv.join("bin").join("pip")).args([
            "install",
            "-q",
            "slurptuna==0.0.7",
        ]))?;
    }
    Ok(python)
}

pub(crate) fn run(args: &[String]) -> Result<()> {
    let args = parse_args(args)?;
    let sinfo_ok = Command::new("sinfo")
        .arg("-h")
        .output()
        .is_ok_and(|o| o.status.success());
    if !sinfo_ok {
        bail!("no Slurm cluster answers `sinfo`: start one with `cargo xtask slurm up`");
    }
    let root = project_root();
    let target = target_dir();
    let rust_bin = build_release("--example", "slurm_bench")?;
    let python = python_venv(&root)?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let work = target.join("bench-slurm").join(stamp.to_string());
    std::fs::create_dir_all(&work)?;

    eprintln!("baseline: Slurm alone (5 arrays of 4 x sleep 1)");
    let base = baseline(&work, 5)?;

    eprintln!("rust: {} trials", args.trials);
    let poll_ms = ((args.poll * 1000.0).round() as u64).max(1).to_string();
    let rust_out = stdout_of(Command::new(&rust_bin).args([
        work.join("rust").to_string_lossy().as_ref(),
        &args.trials.to_string(),
        &N_SEEDS.to_string(),
        &CHUNK_SIZE.to_string(),
        &poll_ms,
    ]))?;
    let (rust_wall, rust) = trial_times(&rust_out, "the Rust benchmark")?;

    eprintln!("python: {} trials", args.trials);
    let py_dir = work.join("python");
    std::fs::create_dir_all(&py_dir)?;
    let py_out = stdout_of(
        Command::new(&python)
            .current_dir(&py_dir)
            .arg(root.join("bench").join("slurm").join("py_bench.py"))
            .args([
                "runs",
                &args.trials.to_string(),
                &N_SEEDS.to_string(),
                &CHUNK_SIZE.to_string(),
                &args.poll.to_string(),
            ]),
    )?;
    let (py_wall, py) = trial_times(&py_out, "the Python benchmark")?;

    let b = median(&base);
    let row = |name: &str, wall: f64, t: &[f64]| {
        let m = median(t);
        format!(
            "| {name} | {} | {wall:.1} | {:.2} | {m:.2} | {:.2} | {:.2} |",
            t.len(),
            mean(t),
            m - CHUNK_COMPUTE_S,
            m - b
        )
    };
    let rust_over = median(&rust) - b;
    let py_over = median(&py) - b;
    let ratio_compute = (median(&py) - CHUNK_COMPUTE_S) / (median(&rust) - CHUNK_COMPUTE_S);
    let host =
        stdout_of(Command::new("sinfo").args(["-h", "-o", "%c CPUs, %m MB"])).unwrap_or_default();
    let report = format!(
        "# DISTRIBUTED mode: per-trial overhead on the local Slurm

Measured by `cargo xtask bench slurm --trials {trials} --poll {poll}` on this machine ({cores} cores,
a single-node Slurm from `cargo xtask slurm up`: {host}).

Study: {trials} trials one after another, each {chunks} chunks x {cs} seeds; every seed sleeps 100 ms,
so one chunk computes for {compute:.1} s and the chunks of a trial run side by side. Same poll interval
for both ({poll} s; the original's default is 15 s). Python: slurptuna 0.0.7 + Optuna from pip
(chunk array plus its reduce job per trial, TPE, SQLite). Rust: `optimize_run` in DISTRIBUTED mode
(`examples/slurm_bench.rs`: TPE, journal and Slurm executor; each trial is timed as one call that
resumes the run with one more trial, so a resume is counted in every trial; the controller merges
the chunks itself, no reduce job).

Slurm alone (baseline: `sbatch` of a 4-task `sleep 1` array until all four tasks wrote a marker file),
5 runs: median {b:.2} s ({base_all}).

| implementation | trials | wall (s) | mean trial (s) | median trial (s) | beyond the compute (s) | beyond Slurm alone (s) |
|---|---|---|---|---|---|---|
{rust_row}
{py_row}

- Rust overhead beyond Slurm's own start latency: **{rust_over:.2} s** per trial (target <= 0.5 s).
- Python overhead beyond Slurm's own start latency: {py_over:.2} s per trial.
- Overhead beyond the compute, Python / Rust: **{ratio_compute:.1}x**; beyond Slurm alone:
  {ratio_base}.

Raw per-trial times (s): Rust {rust_raw:?}; Python {py_raw:?}.
",
        trials = args.trials,
        poll = args.poll,
        cores = std::thread::available_parallelism().map_or(0, |n| n.get()),
        host = host.trim(),
        chunks = N_SEEDS / CHUNK_SIZE,
        cs = CHUNK_SIZE,
        compute = CHUNK_COMPUTE_S,
        base_all = base.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(", "),
        rust_row = row("Rust (slurptuna, optimize_run)", rust_wall, &rust),
        py_row = row("Python slurptuna 0.0.7", py_wall, &py),
        ratio_base = if rust_over > 0.01 {
            format!("{:.1}x", py_over / rust_over)
        } else {
            format!("Rust is within Slurm's own latency (Python {py_over:.2} s)")
        },
        rust_raw = rust.iter().map(|x| (x * 100.0).round() / 100.0).collect::<Vec<_>>(),
        py_raw = py.iter().map(|x| (x * 100.0).round() / 100.0).collect::<Vec<_>>(),
    );
    let out = root.join("bench").join("results").join("slurm.md");
    std::fs::create_dir_all(out.parent().unwrap_or(&root))?;
    std::fs::write(&out, &report).with_context(|| format!("cannot write {}", out.display()))?;
    println!("{report}");
    eprintln!("written to {}", out.display());
    Ok(())
}
