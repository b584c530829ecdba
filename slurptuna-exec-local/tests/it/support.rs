use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slurptuna_core::{LossDefinition, Params, SeedLayout, SeedSpec, TrialJob, TrialNumber};
use slurptuna_exec_local::{ProcessExecutor, ProcessPoolConfig};

/// The worker program of the process-pool tests (built with `--features fixtures`, as the test
/// command `cargo test --workspace --all-features` does).
pub(crate) const FIXTURE: &str = match option_env!("CARGO_BIN_EXE_exec-local-fixture") {
    Some(p) => p,
    None => "exec-local-fixture is not built: run the tests with --all-features (or --features fixtures)",
};

/// No test may take longer than this.
pub(crate) const TEST_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs `fut`, failing the test if it takes longer than [`TEST_TIMEOUT`].
pub(crate) async fn within<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(TEST_TIMEOUT, fut)
        .await
        .expect("test timed out")
}

/// Polls `cond` every 10 ms for up to `limit`; returns whether it became true.
pub(crate) async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The shared recording sink of `slurptuna_core::testing`: collects chunk results by trial and
/// chunk, refuses a chunk delivered twice.
pub(crate) type CollectSink = slurptuna_core::testing::RecordingSink;

pub(crate) fn x(x: f64) -> Params {
    [("x", x)].into_iter().collect()
}

pub(crate) fn seeds(list: &[u64], chunk_size: u64) -> SeedSpec {
    SeedSpec {
        seeds: Some(list.to_vec()),
        chunk_size: Some(chunk_size),
        ..SeedSpec::default()
    }
}

/// A job over every chunk of `spec`, keeping per-seed values.
pub(crate) fn job(
    loss: &str,
    trial: u64,
    params: Params,
    spec: &SeedSpec,
    entry: Option<&str>,
) -> TrialJob {
    let layout = SeedLayout::resolve(spec, 0).unwrap();
    TrialJob {
        loss_name: loss.to_string(),
        entry_id: entry.map(Arc::from),
        trial: TrialNumber(trial),
        params,
        chunks: layout.chunks().collect(),
        layout: Arc::new(layout),
        trial_dir: None,
        keep_seed_values: true,
    }
}

/// A pool of `workers` fixture processes started with `args`, for trials of `loss`.
pub(crate) fn pool_with(loss: LossDefinition, workers: usize, args: &[&str]) -> ProcessExecutor {
    let cfg = ProcessPoolConfig {
        args: args.iter().map(Into::into).collect(),
        ..ProcessPoolConfig::new(FIXTURE, workers)
    };
    ProcessExecutor::new(loss, cfg)
        .unwrap()
        .with_startup_timeout(Duration::from_secs(30))
        .with_shutdown_grace(Duration::from_secs(2))
}

/// A pool of `workers` fixture processes.
pub(crate) fn pool(workers: usize) -> ProcessExecutor {
    pool_with(crate::losses::affine(), workers, &[])
}

/// An error with its sources, one per `: `.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Processes that evaluated a slow seed of the executor suite (their pid is in the heartbeat file
/// names) and still run, named `what <pid>`.
#[cfg(unix)]
pub(crate) fn live_beaters(dir: &std::path::Path, what: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir.join("heartbeats")) else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("beat-")?.split('-').next()?.parse().ok()
        })
        .collect();
    pids.sort();
    pids.dedup();
    pids.into_iter()
        .filter(|&p| slurptuna_exec_local::process_is_running(p))
        .map(|p| format!("{what} {p}"))
        .collect()
}
