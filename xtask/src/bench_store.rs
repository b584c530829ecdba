//! `cargo xtask bench store`: how fast a controller resumes a large run, and how much memory it
//! needs for it.
//!
//! 1. Writes a run of `--trials` trials (default 10,000; 10 parameters, `--chunks` chunk records
//!    per trial, a failed trial now and then, two trials in flight with per-seed values) through
//!    `FsStore`, exactly as a controller would (the default group-commit policy: journal fsynced
//!    at most once per 100 ms, `summary.json` rewritten atomically at most once per 100 ms).
//! 2. Re-runs this binary (hidden `--child <run_dir>`) in a fresh process that opens the run,
//!    loads the history and reports the time and its peak RSS (`VmHWM`), three times.
//! 3. Prints a table and writes `bench/results/store.md`.
//!
//! A debug build re-runs itself in release first (load times of a debug build mean nothing).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use slurptuna_core::{
    best_of, search_param, ChunkIndex, ChunkResult, Direction, ParamSpace, ParamValue, Params,
    RunMeta, RunSummary, SearchParam, SeedLayout, SeedSpec, SeedStats, Store, TrialEvent,
    TrialNumber, TrialState,
};
use slurptuna_store::FsStore;

use crate::util::{option_value, project_root};

const LOAD_TARGET: Duration = Duration::from_secs(1);
const RSS_TARGET_KB: u64 = 50 * 1024;
const RUNS: usize = 3;

struct Args {
    trials: u64,
    chunks: u64,
    keep: bool,
    allow_debug: bool,
    child: Option<PathBuf>,
    facade_child: Option<PathBuf>,
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut a = Args {
        trials: 10_000,
        chunks: 10,
        keep: false,
        allow_debug: false,
        child: None,
        facade_child: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| option_value(&mut it, name);
        match arg.as_str() {
            "--trials" => a.trials = value("--trials")?.parse().context("--trials")?,
            "--chunks" => a.chunks = value("--chunks")?.parse().context("--chunks")?,
            "--keep" => a.keep = true,
            "--allow-debug" => a.allow_debug = true,
            "--child" => a.child = Some(PathBuf::from(value("--child")?)),
            "--facade-child" => a.facade_child = Some(PathBuf::from(value("--facade-child")?)),
            other => bail!(
                "unknown argument {other:?}; usage: cargo xtask bench store [--trials N] [--chunks N] [--keep] [--allow-debug]"
            ),
        }
    }
    if a.trials < 3 || a.chunks < 4 {
        bail!("--trials must be at least 3 and --chunks at least 4");
    }
    Ok(a)
}

pub(crate) fn run(args: &[String]) -> Result<()> {
    let a = parse_args(args)?;
    if let Some(dir) = &a.child {
        return child(dir);
    }
    if let Some(dir) = &a.facade_child {
        return facade_child(&a, dir);
    }
    if cfg!(debug_assertions) && !a.allow_debug {
        return crate::util::rerun_bench_in_release("store", args);
    }
    let work = project_root().join("target").join("bench-store");
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    let result = bench(&a, &work);
    if !a.keep {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

fn space_params() -> Vec<(&'static str, SearchParam)> {
    vec![
        ("alpha", SearchParam::from((0.0, 1.0))),
        ("beta", SearchParam::from((0.0, 1.0))),
        ("gamma", search_param().range(-5.0, 5.0)),
        ("lr", search_param().range(1e-5, 1e-1).dtype("log")),
        ("wd", search_param().range(1e-6, 1e-2).dtype("log")),
        ("layers", search_param().range(1, 8).dtype("int")),
        ("width", search_param().range(16, 1024).dtype("int")),
        ("dropout", search_param().range(0.0, 0.5).step(0.05)),
        ("kind", search_param().allowed(["adam", "sgd", "rmsprop"])),
        ("act", search_param().allowed(["relu", "tanh", "gelu"])),
    ]
}

fn space() -> Result<ParamSpace> {
    Ok(ParamSpace::new(space_params())?)
}

/// The seed layout of the benchmark run: `chunks` chunks of 100 seeds from 0.
fn layout(a: &Args) -> Result<SeedLayout> {
    let spec = SeedSpec {
        n_seeds: Some(a.chunks * 100),
        chunk_size: Some(100),
        ..Default::default()
    };
    Ok(SeedLayout::resolve(&spec, 0)?)
}

fn meta(a: &Args, space: ParamSpace) -> Result<RunMeta> {
    Ok(RunMeta {
        format_version: slurptuna_core::RUN_FORMAT_VERSION,
        loss_name: "bench".into(),
        description: "store benchmark".into(),
        run_name: String::new(),
        run_dir: String::new(),
        mode: "single".into(),
        backend: "threads".into(),
        n_trials: a.trials,
        entry_id: None,
        started_at_utc: slurptuna_core::format_utc(std::time::SystemTime::now()),
        seed_start: 0,
        seed_end: a.chunks * 100 - 1,
        n_seeds: a.chunks * 100,
        chunk_size: 100,
        num_chunks: a.chunks,
        max_concurrent_trials: 2,
        worker_parallelism: 1,
        direction: Direction::Minimize,
        random_seed: 123,
        sampler: "tpe".into(),
        space,
        seeds_fingerprint: format!("{:016x}", layout(a)?.fingerprint()),
        resumes: Vec::new(),
        completed_at_utc: None,
        duration_seconds: None,
        best_value: None,
        best_params: None,
        settings: serde_json::Map::new(),
    })
}

/// Parameters shaped like a sampler's proposals for [`space`] (values inside the bounds).
fn random_params(space: &ParamSpace, rng: &mut ChaCha8Rng) -> Params {
    let mut p = Params::new();
    for (name, _) in space.iter() {
        let v: ParamValue = match name {
            "gamma" => ParamValue::Float(rng.gen_range(-5.0..5.0)),
            "lr" => ParamValue::Float(10f64.powf(rng.gen_range(-5.0..-1.0))),
            "wd" => ParamValue::Float(10f64.powf(rng.gen_range(-6.0..-2.0))),
            "layers" => ParamValue::Int(rng.gen_range(1..=8)),
            "width" => ParamValue::Int(rng.gen_range(16..=1024)),
            "dropout" => ParamValue::Float(f64::from(rng.gen_range(0..=10u8)) * 0.05),
            "kind" => ParamValue::Str(["adam", "sgd", "rmsprop"][rng.gen_range(0..3)].into()),
            "act" => ParamValue::Str(["relu", "tanh", "gelu"][rng.gen_range(0..3)].into()),
            _ => ParamValue::Float(rng.gen::<f64>()),
        };
        p.insert(name, v);
    }
    p
}

/// Writes the run; returns its directory and the time taken.
fn write_run(a: &Args, root: &Path) -> Result<(PathBuf, Duration)> {
    let space = space()?;
    // As the controller writes it: the default group-commit policy, summary.json at most once
    // per sync interval.
    let policy = slurptuna_store::SyncPolicy::default();
    let store = FsStore::create_versioned(root, "bench", &meta(a, space.clone())?)?
        .with_sync_policy(policy);
    let mut summary_written: Option<Instant> = None;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let started = Instant::now();
    let (mut n_complete, mut n_failed) = (0, 0);
    let mut best: Option<(f64, TrialNumber, Params)> = None;
    for t in 0..a.trials {
        let trial = TrialNumber(t);
        let params = random_params(&space, &mut rng);
        store.append(&TrialEvent::Asked {
            trial,
            params: params.clone(),
            control: None,
        })?;
        let in_flight = t + 2 >= a.trials;
        let fails = t % 97 == 13;
        let n_chunks = if in_flight || fails { 4 } else { a.chunks };
        let mut total = SeedStats::default();
        for c in 0..n_chunks {
            let values: Vec<f64> = (0..100).map(|_| rng.gen::<f64>()).collect();
            let stats = SeedStats::from_values(&values);
            total.merge(&stats);
            store.append(&TrialEvent::ChunkDone {
                trial,
                chunk: ChunkIndex(c),
                key: slurptuna_core::ChunkKey::new(format!("{:016x}", rng.gen::<u64>())),
                result: ChunkResult {
                    stats,
                    values: in_flight.then_some(values),
                },
            })?;
        }
        if in_flight {
            continue;
        }
        if fails {
            n_failed += 1;
            store.append(&TrialEvent::Failed {
                trial,
                reason: format!("seed {}: loss returned NaN", t * 7),
            })?;
        } else {
            n_complete += 1;
            let v = total.mean();
            if best.as_ref().is_none_or(|(b, _, _)| v < *b) {
                best = Some((v, trial, params));
            }
            store.append(&TrialEvent::Completed {
                trial,
                stats: total,
            })?;
        }
        if summary_written.is_some_and(|at| at.elapsed() < slurptuna_store::DEFAULT_SYNC_INTERVAL) {
            continue;
        }
        summary_written = Some(Instant::now());
        store.write_summary(&RunSummary {
            best_value: best.as_ref().map(|b| b.0),
            best_params: best.as_ref().map(|b| b.2.clone()),
            best_trial: best.as_ref().map(|b| b.1),
            n_complete,
            n_failed,
            n_pruned: 0,
            seeds_evaluated: n_complete * a.chunks * 100,
            seeds_saved: 0,
            n_trials: a.trials,
            direction: Direction::Minimize,
            validated: None,
        })?;
    }
    store.sync()?;
    Ok((store.dir().to_path_buf(), started.elapsed()))
}

/// What one child process measured.
#[derive(Debug, Serialize, Deserialize)]
struct ChildReport {
    load_ms: f64,
    trials: u64,
    finished: u64,
    unfinished: u64,
    stored_chunks_in_flight: u64,
    journal_bytes: u64,
    hwm_before_kb: u64,
    hwm_kb: u64,
    rss_kb: u64,
}

fn proc_status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The child: open the run, load it, report.
fn child(run_dir: &Path) -> Result<()> {
    let hwm_before_kb = proc_status_kb("VmHWM:");
    let t0 = Instant::now();
    let (store, meta) = FsStore::open(run_dir)?;
    let (history, report) = store.load_with_report()?;
    let best = best_of(history.trials(), meta.direction).map(|t| t.number);
    let load = t0.elapsed();
    if report.invalid_chunks > 0 || report.dropped_tail_bytes > 0 || best.is_none() {
        bail!("the benchmark run did not load cleanly: {report:?}");
    }
    let unfinished: Vec<_> = history.unfinished().map(|t| t.number).collect();
    let stored_chunks_in_flight = unfinished
        .iter()
        .map(|n| history.chunks(*n).map_or(0, |c| c.len() as u64))
        .sum();
    let r = ChildReport {
        load_ms: load.as_secs_f64() * 1e3,
        trials: history.trials().count() as u64,
        finished: history.n_finished() as u64,
        unfinished: unfinished.len() as u64,
        stored_chunks_in_flight,
        journal_bytes: std::fs::metadata(store.journal_path())?.len(),
        hwm_before_kb,
        hwm_kb: proc_status_kb("VmHWM:"),
        rss_kb: proc_status_kb("VmRSS:"),
    };
    // Keep the history alive until measured.
    let failed = history
        .trials()
        .filter(|t| matches!(t.state, TrialState::Failed { .. }))
        .count();
    println!("{}", serde_json::to_string(&r)?);
    eprintln!("child: {failed} failed trials, best {best:?}");
    Ok(())
}

/// The facade child: resume the run with `slurptuna::optimize_run` (the two in-flight trials are
/// finished, nothing else runs) and report the whole call's time and peak RSS.
fn facade_child(a: &Args, run_dir: &Path) -> Result<()> {
    let hwm_before_kb = proc_status_kb("VmHWM:");
    let mut builder = slurptuna::loss("bench").description("store benchmark");
    for (name, spec) in space_params() {
        builder = builder.param(name, spec);
    }
    let model = builder.build(|p, seed, _| Ok((p.f64("alpha")? + seed as f64 * 1e-6).into()))?;
    let t0 = Instant::now();
    let r = slurptuna::optimize_run(
        &model,
        slurptuna::RunOptions {
            run_root: run_dir
                .parent()
                .context("run dir has a parent")?
                .to_path_buf(),
            run_name: Some(
                run_dir
                    .file_name()
                    .context("run dir has a name")?
                    .to_string_lossy()
                    .into_owned(),
            ),
            n_trials: a.trials,
            n_seeds: Some(a.chunks * 100),
            chunk_size: Some(100),
            progress: false,
            ..Default::default()
        },
    )?;
    let elapsed = t0.elapsed();
    if r.trials.len() as u64 != a.trials {
        bail!(
            "the resumed run has {} trials, not {}",
            r.trials.len(),
            a.trials
        );
    }
    let report = ChildReport {
        load_ms: elapsed.as_secs_f64() * 1e3,
        trials: r.trials.len() as u64,
        finished: r.n_complete + r.n_failed,
        unfinished: 0,
        stored_chunks_in_flight: 0,
        journal_bytes: 0,
        hwm_before_kb,
        hwm_kb: proc_status_kb("VmHWM:"),
        rss_kb: proc_status_kb("VmRSS:"),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn run_child(run_dir: &Path) -> Result<ChildReport> {
    run_child_mode("--child", run_dir, &[])
}

fn run_child_mode(mode: &str, run_dir: &Path, extra: &[String]) -> Result<ChildReport> {
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let out = Command::new(&exe)
        .args(["bench", "store"])
        .args(extra)
        .arg(mode)
        .arg(run_dir)
        .output()
        .with_context(|| format!("could not start {}", exe.display()))?;
    if !out.status.success() {
        bail!(
            "benchmark child failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .last()
        .context("benchmark child printed nothing")?;
    serde_json::from_str(line).with_context(|| format!("benchmark child printed {line:?}"))
}

fn bench(a: &Args, work: &Path) -> Result<()> {
    eprintln!(
        "bench store: writing {} trials x {} chunks under {}",
        a.trials,
        a.chunks,
        work.display()
    );
    let (run_dir, write_time) = write_run(a, &work.join("runs"))?;
    let mut reports = Vec::new();
    for i in 0..RUNS {
        let r = run_child(&run_dir)?;
        eprintln!(
            "bench store: child {}: load {:.1} ms, VmHWM {} kB",
            i + 1,
            r.load_ms,
            r.hwm_kb
        );
        reports.push(r);
    }
    let args = vec![
        "--trials".to_string(),
        a.trials.to_string(),
        "--chunks".to_string(),
        a.chunks.to_string(),
    ];
    let facade = run_child_mode("--facade-child", &run_dir, &args)?;
    eprintln!(
        "bench store: optimize_run resume: {:.1} ms, VmHWM {} kB",
        facade.load_ms, facade.hwm_kb
    );
    let first = &reports[0];
    if first.trials != a.trials || first.finished + 2 != a.trials || first.unfinished != 2 {
        bail!("the loaded history does not match what was written: {first:?}");
    }
    let mut loads: Vec<f64> = reports.iter().map(|r| r.load_ms).collect();
    loads.sort_by(f64::total_cmp);
    let median_load = loads[loads.len() / 2];
    let max_load = loads[loads.len() - 1];
    let max_hwm = reports.iter().map(|r| r.hwm_kb).max().unwrap_or(0);
    let base_hwm = reports.iter().map(|r| r.hwm_before_kb).max().unwrap_or(0);
    let ok = |pass: bool| if pass { "ok" } else { "MISSED" };
    let events = a.trials * (a.chunks + 2);
    let trials_per_s = a.trials as f64 / write_time.as_secs_f64();

    let mut table = String::new();
    writeln!(table, "| measure | value | target |")?;
    writeln!(table, "|---|---|---|")?;
    writeln!(
        table,
        "| trials in the run (2 in flight) | {} | |",
        first.trials
    )?;
    writeln!(
        table,
        "| journal size | {:.1} MB (~{events} records) | |",
        first.journal_bytes as f64 / 1e6
    )?;
    writeln!(
        table,
        "| write: append (grouped fsync, at most one per 100 ms) + summary.json at most every 100 ms | {:.1} s ({trials_per_s:.0} trials/s) | |",
        write_time.as_secs_f64()
    )?;
    writeln!(
        table,
        "| resume: open + lock + load, fresh process (median of {RUNS}, max) | {median_load:.0} ms (max {max_load:.0} ms) | ≤ {} ms: {} |",
        LOAD_TARGET.as_millis(),
        ok(max_load <= LOAD_TARGET.as_secs_f64() * 1e3)
    )?;
    writeln!(
        table,
        "| peak RSS (VmHWM) after load (before open: {:.1} MB) | {:.1} MB | ≤ {} MB: {} |",
        base_hwm as f64 / 1024.0,
        max_hwm as f64 / 1024.0,
        RSS_TARGET_KB / 1024,
        ok(max_hwm <= RSS_TARGET_KB)
    )?;
    writeln!(
        table,
        "| resume through `optimize_run` (load, finish the 2 in-flight trials, write meta/summary), fresh process | {:.0} ms | ≤ {} ms: {} |",
        facade.load_ms,
        LOAD_TARGET.as_millis(),
        ok(facade.load_ms <= LOAD_TARGET.as_secs_f64() * 1e3)
    )?;
    writeln!(
        table,
        "| controller peak RSS (VmHWM) after that `optimize_run` | {:.1} MB | ≤ {} MB: {} |",
        facade.hwm_kb as f64 / 1024.0,
        RSS_TARGET_KB / 1024,
        ok(facade.hwm_kb <= RSS_TARGET_KB)
    )?;
    println!("{table}");

    let md = format!(
        "# Store benchmark: resuming a {trials}-trial run\n\n\
         Command: `cargo xtask bench store{args}` (release build; each load in a fresh process)\n\n\
         The run has {trials} trials with 10 parameters; each finished trial has {chunks} chunk records \
         (100 seeds each) and a `completed` record, every 97th trial fails after 4 chunks, and the \
         last 2 trials are in flight with 4 chunks each whose per-seed values are kept in sidecars. \
         It is written through `FsStore` as a controller writes it; then a fresh process opens the \
         run (lock, `meta.json`), loads the history from `journal.jsonl` (sidecars verified for the \
         in-flight trials) and reports the elapsed time and `VmHWM` from `/proc/self/status`.\n\n\
         Machine: {cpus} CPUs, file system under `target/bench-store`, warm page cache.\n\n\
         {table}\n{product}",
        trials = a.trials,
        chunks = a.chunks,
        args = if a.trials == 10_000 && a.chunks == 10 {
            String::new()
        } else {
            format!(" --trials {} --chunks {}", a.trials, a.chunks)
        },
        cpus = std::thread::available_parallelism().map_or(0, |n| n.get()),
        product = whole_product()?,
    );
    let out = project_root()
        .join("bench")
        .join("results")
        .join("store.md");
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, md).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("bench store: wrote {}", out.display());
    if max_load.max(facade.load_ms) > LOAD_TARGET.as_secs_f64() * 1e3
        || max_hwm.max(facade.hwm_kb) > RSS_TARGET_KB
    {
        bail!("a target was missed (see the table)");
    }
    Ok(())
}

/// The store inside the whole product: per-trial cost through `optimize_run` on a durable run
/// directory (see `bench product`), with rustuna beside it when its venv can be made.
fn whole_product() -> Result<String> {
    let work = project_root().join("target").join("bench-product");
    std::fs::create_dir_all(&work)?;
    let python = match crate::bench_sampler::venv() {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("bench store: no rustuna to compare with ({e:#})");
            None
        }
    };
    let mut s = String::new();
    crate::bench_product::per_trial_section(
        &mut s,
        &work,
        &[100, 1000, 5000],
        1,
        python.as_deref(),
    )?;
    Ok(s)
}
