//! Per-trial overhead of DISTRIBUTED mode through the public API, driven by
//! `cargo xtask bench slurm`.
//!
//! `slurm_bench <dir> <n_trials> <n_seeds> <chunk_size> <poll_ms>` runs one study in
//! `<dir>/runs/bench` trial by trial (each call of `optimize_run` resumes the run with one more
//! trial, so each trial is timed on its own, resume included), each trial a job array of
//! `n_seeds / chunk_size` tasks whose seeds sleep 100 ms, and prints
//! `{"wall": s, "trials": [s, ...], "means": [...]}`. The same program is the worker.

use std::time::{Duration, Instant};

use slurptuna::{loss, optimize_run, ExecutionMode, RunOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The library installs no logging of its own: a program chooses where events go.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let model = loss("bench-sleep")
        .description("100 ms of sleep per seed, then a quadratic bowl")
        .param("x", (0.0, 1.0))
        .build(|p, seed, _| {
            std::thread::sleep(Duration::from_millis(100));
            Ok(((p.f64("x")? - 0.3).powi(2) + seed as f64 * 1e-6).into())
        })?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, n_trials, n_seeds, chunk_size, poll_ms] = args.as_slice() else {
        return Err("usage: slurm_bench <dir> <n_trials> <n_seeds> <chunk_size> <poll_ms>".into());
    };
    let opts = RunOptions {
        mode: ExecutionMode::Distributed,
        run_root: std::path::Path::new(dir).join("runs"),
        run_name: Some("bench".into()),
        n_seeds: Some(n_seeds.parse()?),
        chunk_size: Some(chunk_size.parse()?),
        slurm_poll_seconds: poll_ms.parse::<f64>()? / 1000.0,
        slurm_qos: None,
        mem_per_cpu: "100M".into(),
        worker_time_limit: Duration::from_secs(600),
        progress: false,
        ..RunOptions::default()
    };
    let start = Instant::now();
    let (mut trials, mut means) = (Vec::new(), Vec::new());
    for n in 1..=n_trials.parse::<u64>()? {
        let t0 = Instant::now();
        let r = optimize_run(
            &model,
            RunOptions {
                n_trials: n,
                ..opts.clone()
            },
        )?;
        trials.push(t0.elapsed().as_secs_f64());
        means.push(r.trials.last().and_then(|t| t.value()).unwrap_or(f64::NAN));
    }
    let out = serde_json::json!({ "wall": start.elapsed().as_secs_f64(), "trials": trials, "means": means });
    println!("{out}");
    Ok(())
}
