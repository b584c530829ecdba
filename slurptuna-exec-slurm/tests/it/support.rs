use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use slurptuna_core::testing::RecordingSink;
use slurptuna_core::{
    evaluate_chunk, registered_loss, ChunkIndex, ChunkResult, ChunkSink, CoreError, Delivery,
    DistributedOptions, MemorySize, Params, SeedLayout, SeedSpec, SeedStats, SeedTask,
    TaskResources, TrialJob, TrialNumber, WorkerCommand,
};
use slurptuna_exec_slurm::{SlurmClient, SlurmExecutor, SlurmOptions};

pub(crate) const FIXTURE: &str = env!("CARGO_BIN_EXE_slurptuna-slurm-fixture");

/// Builds the test losses in this process (once is enough; building again re-registers).
pub(crate) fn losses() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        crate::losses::build_all();
    });
}

/// Both option sets of an executor: Slurm's own and the scheduler-independent ones.
#[derive(Clone, Debug)]
pub(crate) struct TestOptions {
    pub(crate) slurm: SlurmOptions,
    pub(crate) distributed: DistributedOptions,
}

impl TestOptions {
    /// These options changed by `f`.
    pub(crate) fn with(mut self, f: impl FnOnce(&mut TestOptions)) -> TestOptions {
        f(&mut self);
        self
    }

    /// An executor with these options on `client`, whose tasks run `worker` with
    /// `worker_parallelism` threads.
    pub(crate) fn executor(
        self,
        worker: WorkerCommand,
        worker_parallelism: usize,
        client: Arc<dyn SlurmClient>,
    ) -> SlurmExecutor {
        SlurmExecutor::new(
            self.slurm,
            self.distributed,
            worker,
            worker_parallelism,
            client,
        )
    }
}

/// Options for tests: small tasks, fast polling, a one-minute attempt timeout.
pub(crate) fn options() -> TestOptions {
    let seed = DistributedOptions::seed_defaults();
    TestOptions {
        slurm: SlurmOptions {
            result_check_interval: Duration::from_millis(50),
            // As often as the fast polls ask: the fake and the local cluster limit no rate.
            slurm_rpc_per_second: 50.0,
            ..Default::default()
        },
        distributed: DistributedOptions {
            poll_interval: Duration::from_millis(150),
            attempt_timeout: Duration::from_secs(60),
            resources: TaskResources {
                mem_per_cpu: MemorySize::from_megabytes(100),
                time_limit: Duration::from_secs(60),
                ..seed.resources
            },
            ..seed
        },
    }
}

/// The worker of the tests: the fixture program, with arguments a shell would mangle, in `cwd`.
pub(crate) fn worker(cwd: &Path) -> WorkerCommand {
    WorkerCommand {
        program: PathBuf::from(FIXTURE),
        args: vec!["--from-test".into(), "a b $(touch pwned)".into()],
        cwd: cwd.to_path_buf(),
    }
}

pub(crate) fn params(x: f64) -> Params {
    [("x", x)].into_iter().collect()
}

/// A trial of `loss` over `spec`'s seeds, every chunk to do, files under `root/trials`.
pub(crate) fn job(
    loss: &str,
    entry: Option<&str>,
    trial: u64,
    x: f64,
    spec: &SeedSpec,
    root: &Path,
) -> TrialJob {
    let layout = Arc::new(SeedLayout::resolve(spec, 0).unwrap());
    TrialJob {
        loss_name: loss.to_string(),
        entry_id: entry.map(Arc::from),
        trial: TrialNumber(trial),
        params: params(x),
        chunks: layout.chunks().collect(),
        layout,
        trial_dir: Some(root.join("trials").join(format!("trial_{trial:05}"))),
        keep_seed_values: false,
    }
}

/// 4 chunks of 4 seeds: 0..16.
pub(crate) fn spec16() -> SeedSpec {
    SeedSpec {
        n_seeds: Some(16),
        chunk_size: Some(4),
        ..Default::default()
    }
}

/// The shared recording sink of `slurptuna_core::testing` (it refuses a chunk delivered twice),
/// cheap to clone, with the views these tests use.
#[derive(Default, Clone)]
pub(crate) struct Collect(Arc<RecordingSink>);

impl ChunkSink for Collect {
    fn chunk_done(
        &self,
        trial: TrialNumber,
        chunk: ChunkIndex,
        result: ChunkResult,
    ) -> Result<Delivery, CoreError> {
        self.0.chunk_done(trial, chunk, result)
    }
}

impl Collect {
    pub(crate) fn len(&self) -> usize {
        self.0.results().len()
    }
    /// Chunks delivered for `trial` (each exactly once: the sink refuses a second delivery).
    pub(crate) fn chunks(&self, trial: u64) -> BTreeMap<ChunkIndex, ChunkResult> {
        assert!(self.0.problems().is_empty(), "{:?}", self.0.problems());
        self.0.delivered(TrialNumber(trial))
    }
    /// The trial's statistics: chunk results merged in chunk order.
    pub(crate) fn merged(&self, trial: u64) -> SeedStats {
        self.chunks(trial);
        self.0.trial_stats(TrialNumber(trial))
    }
}

/// What the same trial gives in-process: `evaluate_chunk` per chunk, merged in chunk order.
pub(crate) fn in_process(job: &TrialJob) -> SeedStats {
    losses();
    let loss = registered_loss(&job.loss_name).unwrap();
    let task = SeedTask {
        loss: &loss,
        params: &job.params,
        entry_id: job.entry_id.clone(),
        trial: job.trial,
        trial_dir: None,
    };
    let no = AtomicBool::new(false);
    let mut s = SeedStats::default();
    for c in job.layout.chunks() {
        s.merge(
            &evaluate_chunk(&task, &job.layout, c, 1, false, &no)
                .unwrap()
                .stats,
        );
    }
    s
}

/// Runs `f` with a deadline so a hung test fails instead of blocking the suite.
pub(crate) async fn within<T>(secs: u64, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {secs} s"))
}

/// Polls `cond` every 20 ms until it holds (panics after `secs`).
pub(crate) async fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `trial seed` lines the workers logged in `cwd/evals.log`.
pub(crate) fn evals(cwd: &Path) -> Vec<(u64, u64)> {
    std::fs::read_to_string(cwd.join("evals.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_once(' ')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect()
}

/// The trial failure an `evaluate` call ended with (panics on anything else).
pub(crate) fn trial_failure(
    r: Result<(), slurptuna_core::ExecError>,
) -> slurptuna_core::TrialFailure {
    match r {
        Err(slurptuna_core::ExecError::Trial(f)) => f,
        other => panic!("expected a trial failure, got {other:?}"),
    }
}
