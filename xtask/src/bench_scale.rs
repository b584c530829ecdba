//! `cargo xtask bench scale`: the real controller and Slurm executor against a simulated
//! cluster (`slurptuna::slurm::SimSlurm`) in virtual time, at the scales of the users' fits.
//!
//! Each scenario runs in a process of its own (`bench scale --one <name>`, so that its peak RSS
//! is its own) on a current-thread tokio runtime with a paused clock: the cluster's hours pass
//! in seconds, while every chunk is still evaluated by the real worker code and written to a
//! real run directory, which the controller reads as it would on a cluster. Reported per
//! scenario: makespan and CPU efficiency (CPU-seconds of completed tasks / (CPUs × makespan)),
//! Slurm calls per poll and per minute, the controller's CPU time per poll (the process's CPU
//! time less the simulation's own), peak RSS, the most tasks queued against the cluster's
//! limits, and the check that no chunk was lost or ran twice: every trial's value is
//! recomputed from its seeds here and must match. Results go to `bench/results/scale.md`.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use slurptuna::slurm::{SimConfig, SimSlurm, SlurmExecutor, SlurmOptions};
use slurptuna::{
    loss, optimize_entries_async, optimize_run_async, DistributedOptions, EntriesOptions,
    ExecutionMode, LossDefinition, Params, RunOptions, Scheduler, TrialRecord, WorkerCommand,
};

use crate::util::{project_root, target_dir};

/// The shapes the bench runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// One `optimize_run`.
    Run { trials: u64, concurrent: usize },
    /// One `optimize_entries`.
    Entries {
        entries: usize,
        trials: u64,
        concurrent: usize,
    },
}

#[derive(Clone)]
struct Scenario {
    name: &'static str,
    what: &'static str,
    shape: Shape,
    n_seeds: u64,
    chunk_size: u64,
    cpus_per_task: u32,
    worker_parallelism: usize,
    cluster: SimConfig,
}

/// The shape of the per-entry scenarios: `entries` entries of `trials` trials, 4 at once, each
/// of 1,000 seeds in 250 one-CPU tasks of 4 seeds, on `cluster` (name and text to be set).
fn per_entry_scenario(entries: usize, trials: u64, cluster: SimConfig) -> Scenario {
    Scenario {
        name: "",
        what: "",
        shape: Shape::Entries {
            entries,
            trials,
            concurrent: 4,
        },
        n_seeds: 1000,
        chunk_size: 4,
        cpus_per_task: 1,
        worker_parallelism: 1,
        cluster,
    }
}

fn scenarios() -> Vec<Scenario> {
    let mut all = base_scenarios();
    let limits = all
        .iter()
        .find(|s| s.name == "limits-10k-2k")
        .cloned()
        .expect("the limits scenario");
    all.push(Scenario {
        name: "limits-hidden",
        what: "as limits-10k-2k, but the cluster reports neither limit: they are learned from \
               refusals",
        cluster: SimConfig {
            report_limits: false,
            ..limits.cluster.clone()
        },
        ..limits
    });
    all.push(Scenario {
        name: "refusals",
        what: "20 entries × 4 concurrent trials × 250 chunks (8 trials per entry), 60 s per task \
               on 2,000 CPUs, against a slurmctld that allows half the controller's pace (a bucket \
               of 3 calls refilled at 0.5 per second: calls are refused), with 2% socket timeouts, \
               1% preemptions and 0.5% node failures",
        ..per_entry_scenario(
            20,
            8,
            SimConfig {
                cpus: 2_000,
                seed_cost: Duration::from_secs(15),
                rpc_bucket: 3,
                rpc_refill_per_second: 0.5,
                socket_timeout_rate: 0.02,
                preempt_rate: 0.01,
                node_fail_rate: 0.005,
                max_job_count: 100_000,
                ..SimConfig::default()
            },
        )
    });
    all
}

fn base_scenarios() -> Vec<Scenario> {
    let faults = SimConfig {
        socket_timeout_rate: 0.01,
        preempt_rate: 0.005,
        node_fail_rate: 0.002,
        ..SimConfig::default()
    };
    vec![
        Scenario {
            name: "original-40M",
            what: "the original's headline: 1 trial of 40M seeds at 0.8 ms each, chunks of 400k \
                   seeds (100 tasks × 4 CPUs) on 400 CPUs",
            shape: Shape::Run {
                trials: 1,
                concurrent: 1,
            },
            n_seeds: 40_000_000,
            chunk_size: 400_000,
            cpus_per_task: 4,
            worker_parallelism: 2,
            cluster: SimConfig {
                cpus: 400,
                seed_cost: Duration::from_micros(800),
                ..SimConfig::default()
            },
        },
        Scenario {
            name: "entries-100k",
            what: "100 entries × 4 concurrent trials × 250 chunks (8 trials per entry), 60 s per \
                   task on 10,000 CPUs, with socket timeouts (1% of calls), preemptions (0.5% of \
                   runs) and node failures (0.2%); at one call per second the first 400 arrays \
                   take about 400 s to submit, so fewer than 100k tasks are live at once, and \
                   the controller's CPU per poll is that of delivering about 150 chunks a second",
            ..per_entry_scenario(
                100,
                8,
                SimConfig {
                    cpus: 10_000,
                    seed_cost: Duration::from_secs(15),
                    max_job_count: 400_000,
                    ..faults.clone()
                },
            )
        },
        Scenario {
            name: "live-100k",
            what: "100 entries × 4 trials × 250 chunks submitted at once: 100k live tasks of 30 \
                   min each on 20,000 CPUs (the controller's cost per poll while it tracks them)",
            ..per_entry_scenario(
                100,
                4,
                SimConfig {
                    cpus: 20_000,
                    seed_cost: Duration::from_secs(450),
                    max_job_count: 400_000,
                    ..SimConfig::default()
                },
            )
        },
        Scenario {
            name: "study-10k",
            what: "one study of 10,000 trials, 50 at once, 4 chunks of 25 seeds each (60 s per \
                   task) on 200 CPUs",
            shape: Shape::Run {
                trials: 10_000,
                concurrent: 50,
            },
            n_seeds: 100,
            chunk_size: 25,
            cpus_per_task: 1,
            worker_parallelism: 1,
            cluster: SimConfig {
                cpus: 200,
                seed_cost: Duration::from_millis(2400),
                ..SimConfig::default()
            },
        },
        Scenario {
            name: "limits-10k-2k",
            what:
                "100 entries × 4 concurrent trials × 250 chunks (4 trials per entry) on a cluster \
                   with MaxJobCount 10,000 and MaxSubmitJobs 2,000, both reported; 300 s per task \
                   on 2,000 CPUs, with the same faults",
            ..per_entry_scenario(
                100,
                4,
                SimConfig {
                    cpus: 2_000,
                    seed_cost: Duration::from_secs(75),
                    max_submit_jobs: Some(2_000),
                    ..faults.clone()
                },
            )
        },
    ]
}

/// One scenario's measurements (printed by `--one` as a JSON line).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Outcome {
    name: String,
    trials: u64,
    tasks_needed: u64,
    makespan_s: f64,
    ideal_s: f64,
    efficiency: f64,
    busy_efficiency: f64,
    polls: u64,
    state_rpcs_per_poll: f64,
    rpcs_total: u64,
    rpcs_per_minute: f64,
    rpcs: Vec<(String, u64)>,
    rate_limited: u64,
    socket_timeouts: u64,
    submit_refusals: u64,
    requeues: u64,
    peak_live: u64,
    peak_table: u64,
    max_job_count: u64,
    max_submit_jobs: Option<u64>,
    controller_cpu_s: f64,
    controller_ms_per_poll: f64,
    sim_cpu_s: f64,
    wall_s: f64,
    peak_rss_mb: f64,
    chunks_completed: u64,
    duplicate_chunks: u64,
    lost_chunks: u64,
    value_mismatches: u64,
    controller_files: u64,
}

/// The loss: a bowl around (0.37, 0.72) plus seed noise, as the original's benchmark loss.
fn scale_loss() -> Result<LossDefinition> {
    Ok(loss("scale")
        .description("bowl plus seed noise")
        .param("x", (0.0, 1.0))
        .param("y", (0.0, 1.0))
        .build(|p, seed, _ctx| Ok(value(p.f64("x")?, p.f64("y")?, seed).into()))?)
}

fn value(x: f64, y: f64, seed: u64) -> f64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let u = (z >> 11) as f64 / (1u64 << 53) as f64;
    (x - 0.37).powi(2) + (y - 0.72).powi(2) + 0.5 * (u - 0.5)
}

fn rusage() -> (Duration, f64) {
    // SAFETY: `ru` is a valid, writable rusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF is always valid.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    (
        tv(ru.ru_utime) + tv(ru.ru_stime),
        ru.ru_maxrss as f64 / 1024.0,
    )
}

fn count_files(dir: &Path, skip: &dyn Fn(&Path) -> bool) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(|e| e.ok())
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                count_files(&p, skip)
            } else {
                u64::from(!skip(&p))
            }
        })
        .sum()
}

/// Checks every finished trial's value against its seeds; returns mismatches.
fn check_trials(trials: &[&TrialRecord], seeds: std::ops::Range<u64>) -> Result<u64> {
    let mut bad = 0;
    for t in trials {
        let Some(v) = t.value() else {
            bail!("trial {} did not complete: {:?}", t.number, t.state)
        };
        let p: &Params = &t.params;
        let (x, y) = (p.f64("x")?, p.f64("y")?);
        let n = (seeds.end - seeds.start) as f64;
        let mean = seeds.clone().map(|s| value(x, y, s)).sum::<f64>() / n;
        if (mean - v).abs() > 1e-9 * (1.0 + mean.abs()) {
            bad += 1;
        }
    }
    Ok(bad)
}

async fn run_one(s: &Scenario, root: &Path) -> Result<Outcome> {
    let model = scale_loss()?;
    let sim = SimSlurm::start(s.cluster.clone());
    let seed = DistributedOptions::seed_defaults();
    let distributed = DistributedOptions {
        resources: slurptuna::TaskResources {
            cpus_per_task: s.cpus_per_task,
            time_limit: Duration::from_secs(6 * 3600),
            ..seed.resources.clone()
        },
        attempt_timeout: Duration::from_secs(48 * 3600),
        ..seed
    };
    let worker = WorkerCommand {
        program: std::env::current_exe()?,
        args: Vec::new(),
        cwd: root.to_path_buf(),
    };
    let exec = SlurmExecutor::new(
        SlurmOptions::default(),
        distributed,
        worker,
        s.worker_parallelism,
        Arc::new(sim.clone()),
    );
    let scheduler = Scheduler::executor(Arc::new(exec));
    let (cpu0, _) = rusage();
    let sim0 = sim.stats().sim_cpu;
    let wall = Instant::now();
    let start = tokio::time::Instant::now();
    let seeds = model.seed_start()..model.seed_start() + s.n_seeds;
    let (records, trials): (Vec<TrialRecord>, u64) = match s.shape {
        Shape::Run { trials, concurrent } => {
            let r = optimize_run_async(
                &model,
                RunOptions {
                    n_trials: trials,
                    n_seeds: Some(s.n_seeds),
                    chunk_size: Some(s.chunk_size),
                    mode: ExecutionMode::Distributed,
                    scheduler,
                    max_concurrent_trials: concurrent,
                    worker_parallelism: s.worker_parallelism,
                    run_root: root.to_path_buf(),
                    progress: false,
                    ..Default::default()
                },
            )
            .await?;
            (r.trials, trials)
        }
        Shape::Entries {
            entries,
            trials,
            concurrent,
        } => {
            let ids: Vec<String> = (0..entries).map(|i| format!("p{i:03}")).collect();
            let r = optimize_entries_async(
                &model,
                ids,
                EntriesOptions {
                    n_trials: trials,
                    n_seeds: Some(s.n_seeds),
                    chunk_size: Some(s.chunk_size),
                    mode: ExecutionMode::Distributed,
                    scheduler,
                    max_concurrent_trials: concurrent,
                    worker_parallelism: s.worker_parallelism,
                    run_root: root.to_path_buf(),
                    progress: false,
                    ..Default::default()
                },
            )
            .await?;
            let all = r
                .results_by_entry
                .into_values()
                .flat_map(|e| e.trials)
                .collect();
            (all, trials * entries as u64)
        }
    };
    let makespan = start.elapsed();
    let wall = wall.elapsed();
    let (cpu1, rss) = rusage();
    let stats = sim.stats();
    sim.stop();
    let finished: Vec<&TrialRecord> = records.iter().filter(|t| t.is_finished()).collect();
    ensure!(
        finished.len() as u64 == trials,
        "{}: {} of {trials} trials finished",
        s.name,
        finished.len()
    );
    let value_mismatches = check_trials(&finished, seeds)?;
    let chunks_per_trial = s.n_seeds.div_ceil(s.chunk_size);
    let tasks_needed = chunks_per_trial * trials;
    let completions = sim.completions();
    let lost = tasks_needed.saturating_sub(completions.len() as u64);
    let polls = stats.rpcs.get("squeue").copied().unwrap_or(0);
    let state_rpcs = polls + stats.rpcs.get("sacct").copied().unwrap_or(0);
    let controller_cpu = (cpu1 - cpu0).saturating_sub(stats.sim_cpu - sim0);
    let makespan_s = makespan.as_secs_f64();
    let cpus = s.cluster.cpus as f64;
    let work = tasks_needed as f64
        * s.chunk_size.min(s.n_seeds) as f64
        * s.cluster.seed_cost.as_secs_f64();
    let controller_files = count_files(root, &|p| {
        p.parent()
            .and_then(|d| d.file_name())
            .is_some_and(|d| d == "chunks")
    });
    Ok(Outcome {
        name: s.name.to_string(),
        trials,
        tasks_needed,
        makespan_s,
        ideal_s: work / cpus,
        efficiency: stats.useful_cpu_seconds / (cpus * makespan_s),
        busy_efficiency: stats.busy_cpu_seconds / (cpus * makespan_s),
        polls,
        state_rpcs_per_poll: state_rpcs as f64 / polls.max(1) as f64,
        rpcs_total: stats.total_rpcs(),
        rpcs_per_minute: stats.total_rpcs() as f64 / (makespan_s / 60.0),
        rpcs: stats
            .rpcs
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        rate_limited: stats.rate_limited,
        socket_timeouts: stats.socket_timeouts,
        submit_refusals: stats.submit_refusals,
        requeues: stats.requeues,
        peak_live: stats.peak_live,
        peak_table: stats.peak_table,
        max_job_count: s.cluster.max_job_count,
        max_submit_jobs: s.cluster.max_submit_jobs,
        controller_cpu_s: controller_cpu.as_secs_f64(),
        controller_ms_per_poll: controller_cpu.as_secs_f64() * 1e3 / polls.max(1) as f64,
        sim_cpu_s: (stats.sim_cpu - sim0).as_secs_f64(),
        wall_s: wall.as_secs_f64(),
        peak_rss_mb: rss,
        chunks_completed: stats.completed,
        duplicate_chunks: stats.duplicate_chunks,
        lost_chunks: lost,
        value_mismatches,
        controller_files,
    })
}

fn one(name: &str) -> Result<()> {
    let all = scenarios();
    let s = all
        .iter()
        .find(|s| s.name == name)
        .with_context(|| format!("no scenario {name:?}"))?;
    let root = target_dir().join("bench-scale").join(s.name);
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()?;
    let out = rt.block_on(run_one(s, &root))?;
    drop(rt);
    let _ = std::fs::remove_dir_all(&root);
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}

pub(crate) fn run(args: &[String]) -> Result<()> {
    if let [flag, name] = args {
        if flag == "--one" {
            return one(name);
        }
    }
    let mut only: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--scenario" => only.push(it.next().context("--scenario needs a name")?.clone()),
            other => bail!(
                "unknown argument {other:?}; use --scenario NAME (repeatable), names: {}",
                scenarios()
                    .iter()
                    .map(|s| s.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    if cfg!(debug_assertions) {
        return crate::util::rerun_bench_in_release("scale", args);
    }
    let exe = std::env::current_exe()?;
    let mut outcomes = Vec::new();
    let all = scenarios();
    for s in all
        .iter()
        .filter(|s| only.is_empty() || only.iter().any(|o| o == s.name))
    {
        eprintln!("bench scale: {} ...", s.name);
        let out = Command::new(&exe)
            .args(["bench", "scale", "--one", s.name])
            .output()
            .with_context(|| format!("running scenario {}", s.name))?;
        if !out.status.success() {
            bail!(
                "scenario {} failed: {}",
                s.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let line = String::from_utf8_lossy(&out.stdout);
        let o: Outcome = serde_json::from_str(line.trim())
            .with_context(|| format!("scenario {} printed {line:?}", s.name))?;
        eprintln!(
            "  makespan {:.0} s (ideal {:.0}), efficiency {:.1}%, {:.2} state RPCs/poll, {:.1} ms CPU/poll, {:.0} MB, wall {:.1} s",
            o.makespan_s,
            o.ideal_s,
            o.efficiency * 100.0,
            o.state_rpcs_per_poll,
            o.controller_ms_per_poll,
            o.peak_rss_mb,
            o.wall_s
        );
        outcomes.push((s, o));
    }
    if only.is_empty() {
        let path = project_root().join("bench/results/scale.md");
        std::fs::write(&path, report(&outcomes))?;
        eprintln!("bench scale: wrote {}", path.display());
    }
    Ok(())
}

fn report(outcomes: &[(&Scenario, Outcome)]) -> String {
    let mut md = String::from(
        "# Scale: the controller against a simulated cluster (`cargo xtask bench scale`)\n\n\
         The real controller (`optimize_run` / `optimize_entries`, DISTRIBUTED) and the real Slurm \
         executor drive `SimSlurm`, a `SlurmClient` modelling a cluster, under tokio's paused \
         clock: CPUs, start latency (uniform 1–10 s), task compute time from the loss (seeds × \
         cost per seed / CPUs per task, ±5%), `MaxJobCount` (finished tasks count until \
         `MinJobAge`, 300 s), `MaxArraySize` 1001, `MaxSubmitJobs`, slurmctld's per-user RPC \
         rate limit (30 tokens, 2 per second; an empty bucket refuses the call), and injected \
         faults. Every task runs the real worker in-process when its time has passed, so the \
         chunk files the controller reads are real. Each scenario is a process of its own.\n\n\
         - *efficiency*: CPU-seconds of completed tasks / (cluster CPUs × makespan); *busy* also \
           counts runs cut short by preemptions, node failures and cancellations.\n\
         - *poll*: one `squeue` (all live jobs of the executor); *state RPCs/poll*: (`squeue` + \
           `sacct`) / `squeue`.\n\
         - *controller CPU/poll*: the process's CPU time less the simulation's own (its \
           bookkeeping and the workers it ran), per poll, measured in real time.\n\
         - *lost / duplicated*: chunks of finished trials that never completed / completed more \
           than once; *value mismatches*: trials whose value differs from the mean of its seeds \
           recomputed by the bench.\n\n\
         Where the cluster hides its limits (limits-hidden), they are learned from refusals: each \
         refused array halves the size of the next ones for good, so the queue holds fewer tasks \
         than it could and the efficiency drops; nothing is lost or refused into failure.\n\n",
    );
    for (s, o) in outcomes {
        md.push_str(&format!("## {}\n\n{}.\n\n", s.name, s.what));
        md.push_str("| measure | value |\n|---|---|\n");
        let limit = o
            .max_submit_jobs
            .map_or("none".to_string(), |m| m.to_string());
        let rows: Vec<(&str, String)> = vec![
            (
                "trials / array tasks needed",
                format!("{} / {}", o.trials, o.tasks_needed),
            ),
            (
                "makespan (ideal: work / CPUs)",
                format!("{:.0} s ({:.0} s)", o.makespan_s, o.ideal_s),
            ),
            (
                "CPU efficiency (busy)",
                format!(
                    "{:.1}% ({:.1}%)",
                    o.efficiency * 100.0,
                    o.busy_efficiency * 100.0
                ),
            ),
            ("polls", o.polls.to_string()),
            (
                "state RPCs per poll",
                format!("{:.3}", o.state_rpcs_per_poll),
            ),
            (
                "Slurm calls: total, per minute",
                format!("{}, {:.2}", o.rpcs_total, o.rpcs_per_minute),
            ),
            (
                "calls by command",
                o.rpcs
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            (
                "rate-limited / socket timeouts / submit refusals",
                format!(
                    "{} / {} / {}",
                    o.rate_limited, o.socket_timeouts, o.submit_refusals
                ),
            ),
            (
                "requeues (preemptions, node failures)",
                o.requeues.to_string(),
            ),
            (
                "peak queued tasks (MaxSubmitJobs)",
                format!("{} ({limit})", o.peak_live),
            ),
            (
                "peak job table (MaxJobCount)",
                format!("{} ({})", o.peak_table, o.max_job_count),
            ),
            (
                "controller CPU: total, per poll",
                format!(
                    "{:.2} s, {:.1} ms",
                    o.controller_cpu_s, o.controller_ms_per_poll
                ),
            ),
            (
                "simulation CPU (workers included)",
                format!("{:.2} s", o.sim_cpu_s),
            ),
            ("peak RSS", format!("{:.0} MB", o.peak_rss_mb)),
            ("real time", format!("{:.1} s", o.wall_s)),
            (
                "files the controller created",
                format!(
                    "{} ({:.3} per poll)",
                    o.controller_files,
                    o.controller_files as f64 / o.polls.max(1) as f64
                ),
            ),
            (
                "chunks completed / lost / duplicated",
                format!(
                    "{} / {} / {}",
                    o.chunks_completed, o.lost_chunks, o.duplicate_chunks
                ),
            ),
            ("value mismatches", o.value_mismatches.to_string()),
        ];
        for (k, v) in rows {
            md.push_str(&format!("| {k} | {v} |\n"));
        }
        md.push('\n');
    }
    md
}
