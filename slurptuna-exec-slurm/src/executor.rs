//! `SlurmExecutor`: the batch layer's executor over Slurm.

use std::sync::Arc;

use async_trait::async_trait;
use slurptuna_core::batch::BatchExecutor;
use slurptuna_core::{
    ChunkSink, CoreError, DistributedOptions, ExecError, Executor, TrialJob, WorkerCommand,
};

use crate::adapter::SlurmBatchClient;
use crate::cli::CliSlurm;
use crate::client::SlurmClient;
use crate::options::SlurmOptions;

/// The DISTRIBUTED-mode [`Executor`]: a [`BatchExecutor`] submitting through a [`SlurmClient`]
/// (via [`SlurmBatchClient`]), configured by the scheduler-independent [`DistributedOptions`]
/// (policy and task resources) and Slurm's own [`SlurmOptions`]. Every trial attempt is one
/// Slurm job array, one task per chunk of seeds; everything else — one `squeue` per poll for all
/// live jobs, the global cap on running tasks, `MaxArraySize` splitting, stored results,
/// re-adoption on resume, retries, cancellation — is the batch layer's (see
/// `slurptuna_core::batch`).
///
/// Dropping an `evaluate` future cancels the jobs it started, unless jobs are kept for a resume
/// ([`SlurmExecutor::keep_jobs_on_cancel`], [`Executor::shutdown`] with `keep_jobs`).
///
/// ```no_run
/// use slurptuna_core::{DistributedOptions, WorkerCommand};
/// use slurptuna_exec_slurm::{SlurmExecutor, SlurmOptions};
/// let worker = WorkerCommand {
///     program: std::env::current_exe().unwrap(),
///     args: std::env::args_os().skip(1).collect(),
///     cwd: std::env::current_dir().unwrap(),
/// };
/// let exec = SlurmExecutor::cli(
///     SlurmOptions::default(),
///     DistributedOptions::seed_defaults(),
///     worker,
///     1,
/// )
/// .keep_jobs_on_cancel(true);
/// # let _ = exec;
/// ```
pub struct SlurmExecutor {
    batch: BatchExecutor,
    options: Arc<SlurmOptions>,
    distributed: DistributedOptions,
    options_error: Option<(&'static str, String)>,
}

impl std::fmt::Debug for SlurmExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlurmExecutor")
            .field("options", &self.options)
            .field("distributed", &self.distributed)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl SlurmExecutor {
    /// An executor talking to Slurm through `client`, with the policy and task resources of
    /// `distributed` (checked already, as the `slurptuna` facade does), whose tasks run `worker`
    /// with `worker_parallelism` threads each. Invalid `opts` (or a policy the batch layer
    /// refuses) make every `evaluate` fail with [`CoreError::InvalidOption`] naming the option
    /// (check them first with [`SlurmOptions::validate`]).
    pub fn new(
        opts: SlurmOptions,
        distributed: DistributedOptions,
        worker: WorkerCommand,
        worker_parallelism: usize,
        client: Arc<dyn SlurmClient>,
    ) -> SlurmExecutor {
        let options_error = opts.validate().err().map(|e| match e {
            CoreError::InvalidOption { option, reason } => (option, reason),
            other => ("slurm options", other.to_string()),
        });
        let config = opts.batch_config(&distributed);
        let options = Arc::new(opts);
        let client = Arc::new(SlurmBatchClient::new(
            client,
            options.clone(),
            distributed.resources.clone(),
        ));
        SlurmExecutor {
            batch: BatchExecutor::new(client, config, worker, worker_parallelism),
            options,
            distributed,
            options_error,
        }
    }

    /// An executor using the real Slurm commands on `PATH` ([`CliSlurm`]).
    pub fn cli(
        opts: SlurmOptions,
        distributed: DistributedOptions,
        worker: WorkerCommand,
        worker_parallelism: usize,
    ) -> SlurmExecutor {
        Self::new(
            opts,
            distributed,
            worker,
            worker_parallelism,
            Arc::new(CliSlurm::new()),
        )
    }

    /// The same executor, leaving (`true`) or cancelling (`false`, the default) its jobs when an
    /// evaluation is dropped, e.g. on Ctrl-C, so that a resumed controller re-adopts them.
    pub fn keep_jobs_on_cancel(self, keep: bool) -> SlurmExecutor {
        SlurmExecutor {
            batch: self.batch.keep_jobs_on_cancel(keep),
            ..self
        }
    }

    /// Slurm's own options.
    pub fn options(&self) -> &SlurmOptions {
        &self.options
    }

    /// The scheduler-independent options: the policy and what every task asks for.
    pub fn distributed(&self) -> &DistributedOptions {
        &self.distributed
    }

    /// The batch executor underneath.
    pub fn batch(&self) -> &BatchExecutor {
        &self.batch
    }
}

#[async_trait]
impl Executor for SlurmExecutor {
    fn name(&self) -> &'static str {
        "slurm"
    }

    async fn evaluate(&self, job: TrialJob, sink: &dyn ChunkSink) -> Result<(), ExecError> {
        if let Some((option, reason)) = &self.options_error {
            return Err(ExecError::Fatal(CoreError::InvalidOption {
                option,
                reason: reason.clone(),
            }));
        }
        self.batch.evaluate(job, sink).await
    }

    async fn shutdown(&self, keep_jobs: bool) -> Result<(), CoreError> {
        self.batch.shutdown(keep_jobs).await
    }

    async fn preflight(&self) -> Result<(), CoreError> {
        if let Some((option, reason)) = &self.options_error {
            return Err(CoreError::InvalidOption {
                option,
                reason: reason.clone(),
            });
        }
        self.batch.preflight().await
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use serde_json::json;
    use slurptuna_core::batch::{JobId, MAX_STATE_ERRORS};
    use slurptuna_core::{ChunkIndex, Params, SeedLayout, SeedSpec, TrialNumber};

    use super::*;
    use crate::client::{JobState, MockSlurmClient, SlurmTaskStatus};
    use crate::error::SlurmError;

    /// The shared recording sink, open to any trial (it refuses a chunk delivered twice).
    type Sink = slurptuna_core::testing::RecordingSink;

    fn job(dir: Option<&Path>) -> TrialJob {
        let layout = Arc::new(
            SeedLayout::resolve(
                &SeedSpec {
                    n_seeds: Some(6),
                    chunk_size: Some(2),
                    ..Default::default()
                },
                0,
            )
            .unwrap(),
        );
        TrialJob {
            loss_name: "unit".into(),
            entry_id: None,
            trial: TrialNumber(2),
            params: [("x", 0.5)].into_iter().collect::<Params>(),
            chunks: layout.chunks().collect(),
            layout,
            trial_dir: dir.map(|d| d.join("trial_00002")),
            keep_seed_values: false,
        }
    }

    fn opts() -> SlurmOptions {
        SlurmOptions {
            result_check_interval: Duration::from_millis(5),
            ..Default::default()
        }
    }

    fn dist() -> DistributedOptions {
        DistributedOptions {
            poll_interval: Duration::from_millis(20),
            ..DistributedOptions::seed_defaults()
        }
    }

    fn worker(dir: &Path) -> WorkerCommand {
        WorkerCommand {
            program: "/bin/true".into(),
            args: vec![],
            cwd: dir.to_path_buf(),
        }
    }

    fn exec(o: SlurmOptions, dir: &Path, mock: MockSlurmClient) -> SlurmExecutor {
        exec_with(o, dist(), dir, mock)
    }

    fn exec_with(
        o: SlurmOptions,
        d: DistributedOptions,
        dir: &Path,
        mock: MockSlurmClient,
    ) -> SlurmExecutor {
        SlurmExecutor::new(o, d, worker(dir), 1, Arc::new(mock))
    }

    /// A chunk result as the worker writes it (the on-disk format, written by hand).
    fn write_result(j: &TrialJob, c: ChunkIndex) {
        let dir = j.trial_dir.as_ref().unwrap().join("chunks");
        std::fs::create_dir_all(&dir).unwrap();
        let doc = json!({
            "format": 1,
            "chunk": c.0,
            "key": j.chunk_key(c).as_str(),
            "result": {"stats": {"n": 2, "mean": 1.5, "m2": 0.5}},
        });
        std::fs::write(
            dir.join(format!("chunk_{:05}.json", c.0)),
            serde_json::to_vec(&doc).unwrap(),
        )
        .unwrap();
    }

    fn fatal_message(r: Result<(), ExecError>) -> String {
        match r {
            Err(ExecError::Fatal(e)) => {
                let mut s = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(x) = src {
                    s.push_str(": ");
                    s.push_str(&x.to_string());
                    src = x.source();
                }
                s
            }
            other => panic!("expected a fatal error, got {other:?}"),
        }
    }

    #[test]
    fn the_configuration_comes_from_both_option_sets() {
        let d = tempfile::tempdir().unwrap();
        let distributed = DistributedOptions {
            attempt_timeout: Duration::from_secs(600),
            trial_retry_attempts: 4,
            array_parallelism_limit: Some(3),
            ..dist()
        };
        let o = SlurmOptions {
            job_name_prefix: "lab".into(),
            ..opts()
        };
        let e = SlurmExecutor::cli(o.clone(), distributed.clone(), worker(d.path()), 2);
        assert_eq!(e.options(), &o);
        assert_eq!(e.distributed(), &distributed);
        assert_eq!(e.batch().config(), &o.batch_config(&distributed));
        assert!(!e.batch().config().keep_jobs_on_cancel);
        let e = e.keep_jobs_on_cancel(true);
        assert!(e.batch().config().keep_jobs_on_cancel);
        assert_eq!(e.distributed(), &distributed, "kept by keep_jobs_on_cancel");
        assert_eq!(e.batch().config().job_name_prefix, "lab");
    }

    #[tokio::test]
    async fn nothing_to_do_makes_no_slurm_call() {
        let d = tempfile::tempdir().unwrap();
        let e = exec(opts(), d.path(), MockSlurmClient::new());
        let mut j = job(Some(d.path()));
        j.chunks.clear();
        e.evaluate(j, &Sink::default()).await.unwrap();
        assert_eq!(e.name(), "slurm");
    }

    #[tokio::test]
    async fn an_invalid_option_or_a_missing_directory_is_fatal() {
        let d = tempfile::tempdir().unwrap();
        // One of Slurm's own options.
        let bad = SlurmOptions {
            slurm_partition: Some(" ".into()),
            ..opts()
        };
        let e = exec(bad, d.path(), MockSlurmClient::new());
        let m = fatal_message(e.evaluate(job(Some(d.path())), &Sink::default()).await);
        assert!(m.contains("slurm_partition"), "{m}");
        // A policy the batch layer refuses, named as the `DistributedOptions` field (the facade
        // names it `slurm_poll_seconds` before it gets here).
        let bad = DistributedOptions {
            poll_interval: Duration::ZERO,
            ..dist()
        };
        let e = exec_with(opts(), bad, d.path(), MockSlurmClient::new());
        let m = fatal_message(e.evaluate(job(Some(d.path())), &Sink::default()).await);
        assert!(m.contains("poll_interval"), "{m}");
        let e = exec(opts(), d.path(), MockSlurmClient::new());
        let m = fatal_message(e.evaluate(job(None), &Sink::default()).await);
        assert!(m.contains("scratch_dir"), "{m}");
    }

    #[tokio::test]
    async fn stored_results_are_delivered_without_submitting() {
        let d = tempfile::tempdir().unwrap();
        let j = job(Some(d.path()));
        for c in j.layout.chunks() {
            write_result(&j, c);
        }
        let mut mock = MockSlurmClient::new();
        mock.expect_submit().never();
        let sink = Sink::default();
        exec(opts(), d.path(), mock)
            .evaluate(j, &sink)
            .await
            .unwrap();
        assert_eq!(sink.results().len(), 3);
    }

    #[tokio::test]
    async fn a_stale_result_is_recomputed_and_results_landing_later_are_delivered() {
        let d = tempfile::tempdir().unwrap();
        let j = job(Some(d.path()));
        write_result(&j, ChunkIndex(0));
        // A result of other params for chunk 1: its key differs, it must not be used.
        let mut other = j.clone();
        other.params.insert("x", 0.9);
        write_result(&other, ChunkIndex(1));
        let mut mock = MockSlurmClient::new();
        mock.expect_max_array_size().returning(|| Ok(1001));
        mock.expect_submit_limits()
            .returning(|_, _| Ok(crate::SubmitLimits::default()));
        let jj = j.clone();
        mock.expect_submit().times(1).returning(move |req| {
            assert_eq!(req.submission.array, vec![1, 2]);
            assert_eq!(req.resources.mem_per_cpu.to_string(), "2G");
            assert_eq!(req.resources, DistributedOptions::seed_defaults().resources);
            for &t in &req.submission.array {
                write_result(&jj, ChunkIndex(t));
            }
            Ok(JobId(77))
        });
        mock.expect_queue().returning(|jobs| {
            Ok(jobs
                .iter()
                .flat_map(|&job| {
                    [1, 2].map(|t| SlurmTaskStatus {
                        job,
                        task: Some(t),
                        state: JobState::Completed,
                        detail: None,
                    })
                })
                .collect())
        });
        let sink = Sink::default();
        exec(opts(), d.path(), mock)
            .evaluate(j.clone(), &sink)
            .await
            .unwrap();
        let mut got = sink.order();
        got.sort();
        assert_eq!(got, vec![ChunkIndex(0), ChunkIndex(1), ChunkIndex(2)]);
        let rec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(j.trial_dir.unwrap().join("jobs.json")).unwrap())
                .unwrap();
        assert_eq!(rec["jobs"][0]["job"], 77);
        assert_eq!(rec["jobs"][0]["chunks"], json!([1, 2]));
        assert_eq!(rec["pending"], json!([]));
    }

    #[tokio::test]
    async fn squeue_failing_again_and_again_stops_the_run() {
        let d = tempfile::tempdir().unwrap();
        let mut mock = MockSlurmClient::new();
        mock.expect_max_array_size().returning(|| Ok(1001));
        mock.expect_submit_limits()
            .returning(|_, _| Ok(crate::SubmitLimits::default()));
        mock.expect_submit().returning(|_| Ok(JobId(5)));
        mock.expect_queue()
            .times(MAX_STATE_ERRORS as usize)
            .returning(|_| {
                Err(SlurmError::Parse {
                    command: "squeue",
                    reason: "controller unreachable".into(),
                    output: String::new(),
                })
            });
        mock.expect_cancel().returning(|_| Ok(()));
        let e = exec(opts(), d.path(), mock);
        let m = fatal_message(e.evaluate(job(Some(d.path())), &Sink::default()).await);
        assert!(m.contains("controller unreachable"), "{m}");
        assert!(m.contains("executor 'slurm' failed"), "{m}");
    }

    #[tokio::test]
    async fn sbatch_missing_is_fatal_and_names_the_command() {
        let d = tempfile::tempdir().unwrap();
        let mut mock = MockSlurmClient::new();
        mock.expect_max_array_size().returning(|| Ok(1001));
        mock.expect_submit_limits()
            .returning(|_, _| Ok(crate::SubmitLimits::default()));
        mock.expect_submit().times(1).returning(|_| {
            Err(SlurmError::Spawn {
                program: "sbatch".into(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            })
        });
        let e = exec(opts(), d.path(), mock);
        let m = fatal_message(e.evaluate(job(Some(d.path())), &Sink::default()).await);
        assert!(m.contains("could not run `sbatch`"), "{m}");
        assert!(m.contains("no such file"), "{m}");
    }
}
