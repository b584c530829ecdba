//! Per-trial overhead of DISTRIBUTED mode on a real Slurm, driven by `cargo xtask bench slurm`.
//!
//! `slurm_bench <dir> <n_trials> <n_seeds> <chunk_size> <poll_ms>` runs `n_trials` trials one
//! after another, each a job array of `n_seeds / chunk_size` tasks whose seeds sleep 100 ms, and
//! prints `{"wall": s, "trials": [s, ...], "means": [...]}`. The same program is the worker.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use slurptuna_core::{
    loss, ChunkIndex, ChunkResult, ChunkSink, CoreError, Executor, SeedLayout, SeedSpec, SeedStats,
    TrialJob, TrialNumber,
};
use slurptuna_exec_slurm::{SlurmConfig, SlurmExecutor};

#[derive(Default)]
struct Merge(Mutex<SeedStats>);

impl ChunkSink for Merge {
    fn chunk_done(&self, _: TrialNumber, _: ChunkIndex, r: ChunkResult) -> Result<(), CoreError> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .merge(&r.stats);
        Ok(())
    }
}

fn main() {
    let _loss = loss("bench-sleep")
        .description("100 ms of sleep per seed, then a quadratic bowl")
        .param("x", (0.0, 1.0))
        .build(|p, seed, _| {
            std::thread::sleep(Duration::from_millis(100));
            Ok(((p.f64("x")? - 0.3).powi(2) + seed as f64 * 1e-6).into())
        });
    if slurptuna_exec_slurm::is_slurm_worker() {
        let code = match slurptuna_exec_slurm::run_slurm_worker() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("slurm_bench worker: {e}");
                1
            }
        };
        std::process::exit(code);
    }
    if let Err(e) = controller() {
        eprintln!("slurm_bench: {e}");
        std::process::exit(1);
    }
}

fn controller() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, n_trials, n_seeds, chunk_size, poll_ms] = args.as_slice() else {
        return Err("usage: slurm_bench <dir> <n_trials> <n_seeds> <chunk_size> <poll_ms>".into());
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    let layout = Arc::new(SeedLayout::resolve(
        &SeedSpec {
            n_seeds: Some(n_seeds.parse()?),
            chunk_size: Some(chunk_size.parse()?),
            ..Default::default()
        },
        0,
    )?);
    let cfg = SlurmConfig {
        program: std::env::current_exe()?,
        cwd: dir.clone(),
        mem_per_cpu: "100M".into(),
        time_limit: Duration::from_secs(600),
        poll_interval: Duration::from_millis(poll_ms.parse()?),
        job_name_prefix: "slurptuna-bench".into(),
        ..Default::default()
    };
    let exec = SlurmExecutor::cli(cfg);
    let rt = tokio::runtime::Runtime::new()?;
    let start = Instant::now();
    let mut trials = Vec::new();
    let mut means = Vec::new();
    for t in 0..n_trials.parse::<u64>()? {
        let job = TrialJob {
            loss_name: "bench-sleep".into(),
            entry_id: None,
            trial: TrialNumber(t),
            params: [("x", (t as f64 * 0.618_034) % 1.0)].into_iter().collect(),
            chunks: layout.chunks().collect(),
            layout: layout.clone(),
            trial_dir: Some(dir.join("trials").join(format!("trial_{t:05}"))),
            keep_seed_values: false,
        };
        let sink = Merge::default();
        let t0 = Instant::now();
        rt.block_on(exec.evaluate(job, &sink))?;
        trials.push(t0.elapsed().as_secs_f64());
        means.push(sink.0.lock().unwrap_or_else(|e| e.into_inner()).mean());
    }
    let out = serde_json::json!({
        "wall": start.elapsed().as_secs_f64(),
        "trials": trials,
        "means": means,
    });
    println!("{out}");
    Ok(())
}
