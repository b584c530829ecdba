//! `cargo xtask bench product`: what one trial costs through the whole product (`optimize_run`
//! with its default options: TPE, 1,000 seeds in 10 chunks, a durable run directory), side by
//! side with rustuna (in memory) and the Python original measured in the same run.
//!
//! 1. **Per-trial cost at history size n** (n = 100, 1,000, 5,000; d = 10, trivial loss): a run
//!    of n finished trials is prepared once (random sampler); each round copies it, resumes it
//!    with `n_trials = n` (nothing to do: load, meta, summary) and with `n_trials = n + k`; the
//!    cost per trial is the difference over k. rustuna's ask + tell at the same n comes from
//!    `bench/sampler/run_python.py`. Each cell is the median of `--rounds` interleaved rounds.
//! 2. **SINGLE mode, 1,000 trials × 10 seeds** from scratch, ours vs the Python original
//!    (slurptuna 0.0.7 from pip, in `target/bench-slurm-venv`) on the same loss.
//! 3. **Slow fsync** (`--slow-sync`, on by default; `--no-slow-sync` skips it): the per-trial
//!    measurement at n = 1,000 in a child process under the `bench/slowsync` LD_PRELOAD shim,
//!    which adds `SLOWSYNC_MS` (5 ms) to every fsync/fdatasync/syncfs and counts them — the cost
//!    a network file system puts on an fsync, where a device-mapper `delay` target is not
//!    available. Both durability policies (grouped, always) are shown with fsyncs per trial
//!    and per second.
//! 4. **fsyncs per trial** counted with `strace -f -c` on a 300-trial child run, per policy.
//!
//! Every measurement runs in a child process of this binary (`--child <json>`), so each has a
//! fresh heap and can run under the shim or strace. Prints one markdown report and writes
//! `bench/results/product.md`. `--quick` is a smoke test (n up to 1,000, one round, no Python
//! original). A debug build re-runs itself in release first.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::util::{median, project_root, run_cmd};

/// Parameters of the benchmark loss (d = 10).
const D: usize = 10;
/// Trials timed per round after the prepared history.
const K_TRIALS: u64 = 100;
/// Targets of the issue this benchmark checks.
const TARGET_MS_AT_1000: f64 = 0.3;
const TARGET_VS_RUSTUNA: f64 = 2.5;
const TARGET_VS_ORIGINAL: f64 = 50.0;
const TARGET_SLOW_MS: f64 = 1.0;
/// Trials of the slow-fsync measurement with grouped syncs (long enough for the interval to
/// show: about a second).
const SLOW_K: u64 = 3000;

struct Args {
    quick: bool,
    rounds: usize,
    python: bool,
    slow_sync: bool,
    allow_debug: bool,
    child: Option<String>,
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut a = Args {
        quick: false,
        rounds: 3,
        python: true,
        slow_sync: true,
        allow_debug: false,
        child: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--no-python" => a.python = false,
            "--no-slow-sync" => a.slow_sync = false,
            "--allow-debug" => a.allow_debug = true,
            "--rounds" => {
                a.rounds = it
                    .next()
                    .context("--rounds needs a value")?
                    .parse()
                    .context("--rounds")?;
            }
            "--child" => a.child = Some(it.next().context("--child needs a value")?.clone()),
            other => bail!(
                "unknown argument {other:?}; usage: cargo xtask bench product [--quick] [--rounds N] [--no-python] [--no-slow-sync]"
            ),
        }
    }
    if a.rounds == 0 {
        bail!("--rounds must be >= 1");
    }
    Ok(a)
}

/// What a child process runs: one `optimize_run` call.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ChildSpec {
    run_root: PathBuf,
    run_name: String,
    n_trials: u64,
    /// `None`: the default (1,000 seeds in 10 chunks).
    n_seeds: Option<u64>,
    random_sampler: bool,
    always: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct ChildReport {
    /// The whole `optimize_run` call.
    seconds: f64,
    n_complete: u64,
    /// Seconds per trial in the steady state: from the first to the last `ask` of this call,
    /// over the trials between them (every trial's ask, evaluation, journal and summary work).
    per_trial: Option<f64>,
}

/// A sampler, recording when each `ask` happens.
#[derive(Debug)]
pub(crate) struct Timed {
    inner: Box<dyn slurptuna_core::Sampler>,
    asks: std::sync::Mutex<Vec<Instant>>,
}

impl Timed {
    pub(crate) fn new(inner: Box<dyn slurptuna_core::Sampler>) -> Self {
        Timed {
            inner,
            asks: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Seconds per trial from the first ask to the last, over the trials between them.
    pub(crate) fn per_trial(&self) -> Option<f64> {
        let asks = self.asks.lock().unwrap_or_else(|e| e.into_inner());
        match (asks.first(), asks.last()) {
            (Some(a), Some(b)) if asks.len() > 1 => {
                Some(b.duration_since(*a).as_secs_f64() / (asks.len() - 1) as f64)
            }
            _ => None,
        }
    }
}

impl slurptuna_core::Sampler for Timed {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn ask(
        &self,
        ctx: &slurptuna_core::AskContext<'_>,
    ) -> slurptuna_core::Result<slurptuna_core::Params> {
        let p = self.inner.ask(ctx);
        self.asks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Instant::now());
        p
    }
}

fn bench_loss() -> Result<slurptuna::LossDefinition> {
    let mut b = slurptuna::loss("product-bench")
        .description("a 10-dimensional sphere plus a tiny seed term");
    for i in 0..D {
        b = b.param(format!("x{i}"), (-5.0, 5.0));
    }
    Ok(b.build(|p, seed, _| {
        let mut s = 0.0;
        for (_, v) in p.iter() {
            if let slurptuna::ParamValue::Float(x) = v {
                s += x * x;
            }
        }
        Ok((s + (seed % 7) as f64 * 1e-9).into())
    })?)
}

fn child(spec: &str) -> Result<()> {
    let spec: ChildSpec = serde_json::from_str(spec).context("child spec")?;
    let l = bench_loss()?;
    let inner: Box<dyn slurptuna_core::Sampler> = if spec.random_sampler {
        Box::new(slurptuna_sampler::RandomSampler::new(123))
    } else {
        Box::new(slurptuna_sampler::TpeSampler::new(123))
    };
    let timed = std::sync::Arc::new(Timed::new(inner));
    let opts = slurptuna::RunOptions {
        n_trials: spec.n_trials,
        n_seeds: spec.n_seeds,
        run_root: spec.run_root.clone(),
        run_name: Some(spec.run_name.clone()),
        sampler: slurptuna::SamplerChoice::Custom(timed.clone()),
        durability: if spec.always {
            slurptuna::Durability::Always
        } else {
            slurptuna::Durability::Grouped
        },
        progress: false,
        ..Default::default()
    };
    let t = Instant::now();
    let r = slurptuna::optimize_run(&l, opts)?;
    let per_trial = timed.per_trial();
    let report = ChildReport {
        seconds: t.elapsed().as_secs_f64(),
        n_complete: r.n_complete,
        per_trial,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// How a child is started: plainly, under the slow-fsync shim, or under strace.
#[derive(Clone)]
enum Wrap {
    None,
    SlowSync { shim: PathBuf, report: PathBuf },
    Strace { out: PathBuf },
}

fn run_child(spec: &ChildSpec, wrap: &Wrap) -> Result<ChildReport> {
    let exe = std::env::current_exe()?;
    let json = serde_json::to_string(spec)?;
    let mut cmd = match wrap {
        Wrap::Strace { out } => {
            let mut c = Command::new("strace");
            c.args([
                "-f",
                "-c",
                "-e",
                "trace=fsync,fdatasync,syncfs,sync_file_range",
                "-o",
            ])
            .arg(out)
            .arg(&exe);
            c
        }
        _ => Command::new(&exe),
    };
    cmd.args(["bench", "product", "--child", &json]);
    if let Wrap::SlowSync { shim, report } = wrap {
        cmd.env("LD_PRELOAD", shim).env("SLOWSYNC_REPORT", report);
    }
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "child {:?} failed: {}\n{}",
            spec,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("child printed no report")?;
    Ok(serde_json::from_str(line)?)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type()?.is_dir() {
            copy_dir(&src, &dst)?;
        } else if e.file_name() != "run.lock" {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

/// Seconds per trial at history size `n`: resume a copy of the prepared run with `n + k`
/// trials and time the steady state (first to last ask, see [`ChildReport::per_trial`]).
/// With `noop`, a copy is also resumed with `n` trials (nothing to do) first, so that the slow
/// fsync shim's counts of the `k` trials can be told from those of opening and closing a run;
/// returns the per-trial time and the wall time of the grown run.
fn per_trial(
    work: &Path,
    base: &str,
    n: u64,
    k: u64,
    always: bool,
    wrap: &Wrap,
    noop: bool,
) -> Result<(f64, f64)> {
    let spec = |name: &str, n_trials: u64| ChildSpec {
        run_root: work.to_path_buf(),
        run_name: name.to_string(),
        n_trials,
        n_seeds: None,
        random_sampler: false,
        always,
    };
    let mut runs: Vec<(&str, u64)> = vec![("grow", n + k)];
    if noop {
        runs.insert(0, ("noop", n));
    }
    let mut out = (f64::NAN, f64::NAN);
    for (suffix, n_trials) in runs {
        let name = format!("{base}_{suffix}");
        let dir = work.join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        copy_dir(&work.join(base), &dir)?;
        let r = run_child(&spec(&name, n_trials), wrap)?;
        if r.n_complete < n_trials {
            bail!(
                "{name}: only {} of {n_trials} trials completed",
                r.n_complete
            );
        }
        out = (r.per_trial.unwrap_or(f64::NAN), r.seconds);
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(out)
}

/// Prepares `work/base_<n>`: n finished trials of the benchmark loss (random sampler).
fn prepare(work: &Path, n: u64) -> Result<String> {
    let name = format!("base_{n}");
    if !work.join(&name).join("meta.json").is_file() {
        run_child(
            &ChildSpec {
                run_root: work.to_path_buf(),
                run_name: name.clone(),
                n_trials: n,
                n_seeds: None,
                random_sampler: true,
                always: false,
            },
            &Wrap::None,
        )?;
    }
    Ok(name)
}

fn ms(s: f64) -> String {
    format!("{:.3} ms", s * 1e3)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "NOT MET"
    }
}

/// rustuna's ask + tell per trial at each `n` (d = 10), one call of `run_python.py`.
fn rustuna(python: &Path, ns: &[u64]) -> Result<Vec<f64>> {
    let script = project_root()
        .join("bench")
        .join("sampler")
        .join("run_python.py");
    let mut cmd = Command::new(python);
    cmd.arg(&script).args(["speed", "rustuna", "50"]);
    cmd.args(ns.iter().map(|n| format!("{n}x{D}")));
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(v["result"]
        .as_array()
        .context("rustuna speed result")?
        .iter()
        .map(|r| r["seconds_per_trial"].as_f64().unwrap_or(f64::NAN))
        .collect())
}

/// The Python original (slurptuna 0.0.7) in SINGLE mode on `loss` of `bench/py_single.py`
/// (`sphere10` or `toy2`): (whole process, its `optimize_run` call alone) seconds.
pub(crate) fn original_single(
    python: &Path,
    work: &Path,
    loss: &str,
    n_trials: u64,
    n_seeds: u64,
) -> Result<(f64, f64)> {
    let script = project_root().join("bench").join("py_single.py");
    let root = work.join("python-original");
    let _ = std::fs::remove_dir_all(&root);
    let mut cmd = Command::new(python);
    cmd.arg(&script)
        .arg(loss)
        .arg(&root)
        .arg(n_trials.to_string())
        .arg(n_seeds.to_string())
        .current_dir(work);
    let t = Instant::now();
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    let wall = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: serde_json::Value = serde_json::from_slice(
        out.stdout
            .split(|&b| b == b'\n')
            .rev()
            .find(|l| l.starts_with(b"{"))
            .context("py_single.py printed no report")?,
    )?;
    Ok((
        wall,
        v["seconds"].as_f64().context("py_single.py: no seconds")?,
    ))
}

/// Builds the slow-fsync shim into `target/`.
fn build_shim() -> Result<PathBuf> {
    let root = project_root();
    let out = root.join("target").join("slowsync.so");
    run_cmd(
        Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-o"])
            .arg(&out)
            .arg(root.join("bench").join("slowsync").join("slowsync.c"))
            .arg("-ldl"),
    )?;
    Ok(out)
}

/// fsync-family calls counted by `strace -c` (its summary table's `calls` column).
fn strace_calls(out: &Path) -> Result<u64> {
    let text = std::fs::read_to_string(out)?;
    Ok(text
        .lines()
        .filter(|l| {
            ["fsync", "fdatasync", "syncfs", "sync_file_range"]
                .iter()
                .any(|s| l.trim_end().ends_with(&format!(" {s}")))
        })
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            // % time, seconds, usecs/call, calls, [errors], syscall
            cols.get(3).and_then(|c| c.parse::<u64>().ok())
        })
        .sum())
}

/// Section 1 (also printed by `bench store` and `bench sampler`): per-trial cost through
/// `optimize_run` at each `n`, side by side with rustuna when `python` has it. Returns the
/// prepared base runs (one per `n`) under `work`.
pub(crate) fn per_trial_section(
    report: &mut String,
    work: &Path,
    ns: &[u64],
    rounds: usize,
    python: Option<&Path>,
) -> Result<Vec<String>> {
    let bases: Vec<String> = ns
        .iter()
        .map(|&n| prepare(work, n))
        .collect::<Result<_>>()?;
    let mut ours: Vec<Vec<f64>> = vec![Vec::new(); ns.len()];
    let mut theirs: Vec<Vec<f64>> = vec![Vec::new(); ns.len()];
    for round in 0..rounds {
        for (i, &n) in ns.iter().enumerate() {
            let (t, _) = per_trial(work, &bases[i], n, K_TRIALS, false, &Wrap::None, false)?;
            eprintln!("bench product: round {round}: n = {n}: {} per trial", ms(t));
            ours[i].push(t);
        }
        if let Some(py) = python {
            for (i, t) in rustuna(py, ns)?.into_iter().enumerate() {
                theirs[i].push(t);
            }
        }
    }
    let ours: Vec<f64> = ours.iter().map(|v| median(v)).collect();
    let theirs: Vec<Option<f64>> = theirs
        .into_iter()
        .map(|v| (!v.is_empty()).then(|| median(&v)))
        .collect();
    writeln!(report, "## Whole product: per trial at history size n\n")?;
    writeln!(
        report,
        "`optimize_run` with default options (TPE, 1,000 seeds in 10 chunks, `durability = \"grouped\"`, 100 ms sync interval), a trivial 10-parameter loss, resuming a durable run directory of n finished trials: {K_TRIALS} more trials in a fresh process, timed in the steady state (from the first ask of the call to its last, over the trials between: each trial's ask, seeds, journal records and summary work). rustuna 0.2: ask + suggest + tell in Python with in-memory storage (no run directory), same n. Median of {rounds} interleaved rounds (`cargo xtask bench product`).\n"
    )?;
    writeln!(report, "| n | slurptuna (whole product, durable) | rustuna 0.2 (in memory) | rustuna / slurptuna |")?;
    writeln!(report, "|---:|---:|---:|---:|")?;
    for (i, &n) in ns.iter().enumerate() {
        let r = theirs[i];
        writeln!(
            report,
            "| {n} | {} | {} | {} |",
            ms(ours[i]),
            r.map_or("–".into(), ms),
            r.map_or("–".into(), |r| format!("{:.1}×", r / ours[i]))
        )?;
    }
    if let Some(i) = ns.iter().position(|&n| n == 1000) {
        writeln!(
            report,
            "\nTarget at n = 1,000: ≤ {TARGET_MS_AT_1000} ms per trial: {} ({}).{}",
            verdict(ours[i] * 1e3 <= TARGET_MS_AT_1000),
            ms(ours[i]),
            theirs[i].map_or(String::new(), |r| format!(
                " ≥ {TARGET_VS_RUSTUNA}× faster than rustuna end to end: {} ({:.1}×).",
                verdict(r / ours[i] >= TARGET_VS_RUSTUNA),
                r / ours[i]
            ))
        )?;
    }
    writeln!(report)?;
    Ok(bases)
}

pub(crate) fn run(args: &[String]) -> Result<()> {
    let a = parse_args(args)?;
    if let Some(spec) = &a.child {
        return child(spec);
    }
    if cfg!(debug_assertions) && !a.allow_debug {
        return crate::util::rerun_bench_in_release("product", args);
    }
    let root = project_root();
    let work = root.join("target").join("bench-product");
    std::fs::create_dir_all(&work)?;
    let ns: Vec<u64> = if a.quick {
        vec![100, 1000]
    } else {
        vec![100, 1000, 5000]
    };
    let python = if a.python {
        Some(crate::bench_sampler::venv()?)
    } else {
        None
    };
    let mut report = String::new();
    writeln!(
        report,
        "# Whole-product benchmark: cost per trial through `optimize_run`\n"
    )?;
    writeln!(
        report,
        "Command: `cargo xtask bench product{}` (release build). Machine: {} CPUs; run directories under `target/bench-product` (local disk, warm page cache).\n",
        if a.quick { " --quick" } else { "" },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )?;
    let bases = per_trial_section(&mut report, &work, &ns, a.rounds, python.as_deref())?;

    // 2. SINGLE mode 1,000 × 10 against the Python original.
    if !a.quick {
        if let Some(py) = &python {
            let _ = py;
            let orig_py = crate::bench_slurm::python_venv(&root)?;
            let name = "single_1000x10";
            let _ = std::fs::remove_dir_all(work.join(name));
            let ours_single = run_child(
                &ChildSpec {
                    run_root: work.clone(),
                    run_name: name.into(),
                    n_trials: 1000,
                    n_seeds: Some(10),
                    random_sampler: false,
                    always: false,
                },
                &Wrap::None,
            )?
            .seconds;
            let (_, original) = original_single(&orig_py, &work, "sphere10", 1000, 10)?;
            writeln!(
                report,
                "## SINGLE mode, 1,000 trials × 10 seeds, from scratch\n"
            )?;
            writeln!(report, "Same loss (10-dimensional sphere plus a seed term), TPE, durable run directory; the Python original is slurptuna 0.0.7 (Optuna TPE, its own run directory), timed around its `optimize_run` call.\n")?;
            writeln!(report, "| | seconds | trials/s |")?;
            writeln!(report, "|---|---:|---:|")?;
            writeln!(
                report,
                "| slurptuna | {ours_single:.2} | {:.0} |",
                1000.0 / ours_single
            )?;
            writeln!(
                report,
                "| Python original 0.0.7 | {original:.2} | {:.1} |",
                1000.0 / original
            )?;
            writeln!(
                report,
                "\nRatio: {:.1}× (target ≥ {TARGET_VS_ORIGINAL}×: {}).\n",
                original / ours_single,
                verdict(original / ours_single >= TARGET_VS_ORIGINAL)
            )?;
        }
    }

    // 3. Slow fsync.
    if a.slow_sync {
        let shim = build_shim()?;
        let i = ns.iter().position(|&n| n == 1000).unwrap_or(0);
        let n = ns[i];
        writeln!(report, "## Slow fsync (5 ms per call)\n")?;
        writeln!(report, "The same per-trial measurement at n = {n} in a child process under `bench/slowsync/slowsync.c`, an LD_PRELOAD shim that adds 5 ms to every fsync, fdatasync and syncfs (what one fsync costs on NFS, Lustre or GPFS; this machine has no device-mapper, so a `delay` target could not be used) and counts the calls. fsyncs per trial and per second come from a longer run ({SLOW_K} trials after n with grouped syncs, {K_TRIALS} with `always`), minus what a run that has nothing to do issues (open and close).\n")?;
        writeln!(
            report,
            "| durability | per trial at n | fsyncs per trial | fsyncs per second (whole run: open, trials, close) |"
        )?;
        writeln!(report, "|---|---:|---:|---:|")?;
        for always in [false, true] {
            let report_file = work.join(format!("slowsync-{always}.txt"));
            let _ = std::fs::remove_file(&report_file);
            let wrap = Wrap::SlowSync {
                shim: shim.clone(),
                report: report_file.clone(),
            };
            // The cost per trial at n: K_TRIALS trials (as above); the fsync rate: a longer
            // run (SLOW_K trials grouped), where the interval shows.
            let (per, _) = per_trial(
                &work,
                &bases[i],
                n,
                K_TRIALS,
                always,
                &Wrap::SlowSync {
                    shim: shim.clone(),
                    report: work.join("slowsync-ignored.txt"),
                },
                false,
            )?;
            let k = if always { K_TRIALS } else { SLOW_K };
            let (_, wall) = per_trial(&work, &bases[i], n, k, always, &wrap, true)?;
            // Two children ran (noop, then grow): the difference of their counts is the k trials'.
            let lines: Vec<(u64, f64)> = std::fs::read_to_string(&report_file)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| {
                    let mut it = l.split_whitespace();
                    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
                })
                .collect();
            let (noop, grow) = match lines.as_slice() {
                [a, b] => (a.0, b.0),
                _ => bail!("the slow-fsync shim reported {lines:?}, expected two lines"),
            };
            let per_trial_syncs = grow.saturating_sub(noop) as f64 / k as f64;
            writeln!(
                report,
                "| {} | {} | {:.2} | {:.1} |",
                if always {
                    "always"
                } else {
                    "grouped (default)"
                },
                ms(per),
                per_trial_syncs,
                grow as f64 / wall
            )?;
            if !always {
                writeln!(
                    report,
                    "| (target for grouped: ≤ {TARGET_SLOW_MS} ms per trial; at most 10 periodic fsyncs per second from the 100 ms interval, plus a fixed few at open and close) | {} | | {} |",
                    verdict(per * 1e3 <= TARGET_SLOW_MS),
                    verdict(grow.saturating_sub(noop) as f64 <= 10.0 * wall + 2.0)
                )?;
            }
        }
        writeln!(report)?;
    }

    // 4. strace counts.
    if Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        writeln!(report, "## fsync-family system calls per trial (strace)\n")?;
        writeln!(report, "`strace -f -c -e trace=fsync,fdatasync,syncfs,sync_file_range` on a child that runs 300 trials from scratch (TPE, default seeds, trivial loss).\n")?;
        writeln!(report, "| durability | calls | per trial |")?;
        writeln!(report, "|---|---:|---:|")?;
        for always in [false, true] {
            let name = format!("strace_{always}");
            let _ = std::fs::remove_dir_all(work.join(&name));
            let out = work.join(format!("strace-{always}.txt"));
            run_child(
                &ChildSpec {
                    run_root: work.clone(),
                    run_name: name.clone(),
                    n_trials: 300,
                    n_seeds: None,
                    random_sampler: false,
                    always,
                },
                &Wrap::Strace { out: out.clone() },
            )?;
            let calls = strace_calls(&out)?;
            writeln!(
                report,
                "| {} | {calls} | {:.2} |",
                if always {
                    "always"
                } else {
                    "grouped (default)"
                },
                calls as f64 / 300.0
            )?;
            let _ = std::fs::remove_dir_all(work.join(&name));
        }
        writeln!(report)?;
    }

    print!("{report}");
    let results = root.join("bench").join("results");
    std::fs::create_dir_all(&results)?;
    let file = results.join("product.md");
    if !a.quick {
        std::fs::write(&file, &report)?;
        eprintln!("bench product: wrote {}", file.display());
    }
    Ok(())
}
