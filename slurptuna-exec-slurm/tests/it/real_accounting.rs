//! Against a real Slurm with accounting (`cargo xtask slurm up --accounting`: slurmdbd enforcing
//! associations, limits and QoS, and the account `slurptuna_limited` whose associations allow
//! 5 submitted jobs). They run when `sacctmgr` answers; with `SLURPTUNA_TEST_SLURM_ACCOUNTING=1`
//! or `CI=true` a cluster without accounting fails them; otherwise they print a visible
//! "skipped" and return.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use slurptuna_core::{CoreError, Executor, SeedSpec, TrialJob};
use slurptuna_exec_slurm::{
    CliSlurm, JobId, SlurmClient, SlurmError, SlurmTaskStatus, SubmitLimits, SubmitRequest, TaskRef,
};

use crate::real_cluster::{assert_no_jobs_left, cluster, real_options};
use crate::support::*;

/// The account whose associations allow 5 submitted jobs.
const LIMITED: &str = "slurptuna_limited";

/// True when the cluster answers and keeps accounting. Panics when accounting is required
/// (`SLURPTUNA_TEST_SLURM_ACCOUNTING=1` or `CI=true`) and missing.
fn accounting(test: &str) -> bool {
    if !cluster(test) {
        return false;
    }
    let limited = Command::new("sacctmgr")
        .args(["-n", "-P", "show", "account", LIMITED, "format=account"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == LIMITED);
    if limited {
        return true;
    }
    let required = std::env::var("SLURPTUNA_TEST_SLURM_ACCOUNTING").as_deref() == Ok("1")
        || std::env::var("CI").as_deref() == Ok("true");
    if required {
        panic!(
            "{test}: the cluster keeps no accounting (or lacks the account {LIMITED}): start it \
             with `cargo xtask slurm up --accounting`"
        );
    }
    eprintln!(
        "skipped: no Slurm accounting ({test}; start it with `cargo xtask slurm up --accounting`)"
    );
    false
}

/// The real commands, counting submit-limit refusals; with `hide_limits` it reports no queue
/// limits, so that the executor must find them by being refused.
struct Watched {
    inner: CliSlurm,
    hide_limits: bool,
    refusals: AtomicUsize,
    largest: AtomicUsize,
}

impl Watched {
    fn new(hide_limits: bool) -> Arc<Watched> {
        Arc::new(Watched {
            inner: CliSlurm::new(),
            hide_limits,
            refusals: AtomicUsize::new(0),
            largest: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl SlurmClient for Watched {
    async fn submit(&self, req: &SubmitRequest) -> Result<JobId, SlurmError> {
        let r = self.inner.submit(req).await;
        match &r {
            Err(SlurmError::SubmitLimit { .. }) => {
                self.refusals.fetch_add(1, Ordering::SeqCst);
            }
            Ok(_) => {
                self.largest
                    .fetch_max(req.submission.array.len(), Ordering::SeqCst);
            }
            Err(_) => {}
        }
        r
    }
    async fn queue(&self, jobs: &[JobId]) -> Result<Vec<SlurmTaskStatus>, SlurmError> {
        self.inner.queue(jobs).await
    }
    async fn accounting(&self, jobs: &[JobId]) -> Result<Option<Vec<SlurmTaskStatus>>, SlurmError> {
        self.inner.accounting(jobs).await
    }
    async fn cancel(&self, targets: &[TaskRef]) -> Result<(), SlurmError> {
        self.inner.cancel(targets).await
    }
    async fn find(&self, name: &str) -> Result<Vec<JobId>, SlurmError> {
        self.inner.find(name).await
    }
    async fn max_array_size(&self) -> Result<u64, SlurmError> {
        self.inner.max_array_size().await
    }
    async fn test_submit(&self, req: &SubmitRequest) -> Result<(), SlurmError> {
        self.inner.test_submit(req).await
    }
    async fn submit_limits(
        &self,
        account: Option<String>,
        qos: Option<String>,
    ) -> Result<SubmitLimits, SlurmError> {
        if self.hide_limits {
            return Ok(SubmitLimits::default());
        }
        self.inner.submit_limits(account, qos).await
    }
}

/// 40 chunks of one seed each.
fn spec40() -> SeedSpec {
    SeedSpec {
        n_seeds: Some(40),
        chunk_size: Some(1),
        ..Default::default()
    }
}

/// Held by every test submitting under [`LIMITED`]: its limit counts a user's jobs across the
/// account, so two such tests at once would refuse each other.
static LIMITED_ACCOUNT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs one trial of 40 tasks under the limited account through `client`.
async fn forty_tasks_under_the_limit(tag: &str, client: Arc<Watched>) {
    let _alone = LIMITED_ACCOUNT.lock().await;
    losses();
    let dir = tempfile::tempdir().unwrap();
    let opts = real_options(tag).with(|o| o.slurm.slurm_account = Some(LIMITED.into()));
    let exec = opts.executor(worker(dir.path()), 1, client);
    let sink = Collect::default();
    let j: TrialJob = job("fx-quad", None, 0, 0.4, &spec40(), dir.path());
    within(240, exec.evaluate(j.clone(), &sink)).await.unwrap();
    assert_eq!(sink.merged(0).count(), 40);
    assert_eq!(sink.chunks(0).len(), 40);
    assert_eq!(
        sink.merged(0).mean().to_bits(),
        in_process(&j).mean().to_bits()
    );
    assert_no_jobs_left(tag).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_association_limit_is_read_and_never_refused() {
    if !accounting("real_association_limit_is_read_and_never_refused") {
        return;
    }
    let limits = CliSlurm::new()
        .submit_limits(Some(LIMITED.into()), None)
        .await
        .unwrap();
    assert_eq!(limits.max_submit, Some(5), "{limits:?}");
    assert!(limits.max_job_count.is_some(), "{limits:?}");
    let client = Watched::new(false);
    forty_tasks_under_the_limit("limit-read", client.clone()).await;
    assert_eq!(client.refusals.load(Ordering::SeqCst), 0);
    assert!(client.largest.load(Ordering::SeqCst) <= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_hidden_association_limit_is_learned_from_refusals() {
    if !accounting("real_hidden_association_limit_is_learned_from_refusals") {
        return;
    }
    let client = Watched::new(true);
    forty_tasks_under_the_limit("limit-hidden", client.clone()).await;
    // slurmctld refused the whole array at least once; every accepted array fits the limit.
    assert!(client.refusals.load(Ordering::SeqCst) >= 1);
    assert!(client.largest.load(Ordering::SeqCst) <= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_unknown_qos_is_rejected_by_the_preflight() {
    if !accounting("real_unknown_qos_is_rejected_by_the_preflight") {
        return;
    }
    let tag = "qos";
    let dir = tempfile::tempdir().unwrap();
    let good = real_options(tag).with(|o| o.distributed.resources.qos = Some("short".into()));
    good.executor(worker(dir.path()), 1, Arc::new(CliSlurm::new()))
        .preflight()
        .await
        .unwrap();
    let bad = real_options(tag)
        .with(|o| o.distributed.resources.qos = Some("slurptuna_no_such_qos".into()));
    let e = bad
        .executor(worker(dir.path()), 1, Arc::new(CliSlurm::new()))
        .preflight()
        .await
        .unwrap_err();
    let msg = format!(
        "{e}: {}",
        std::error::Error::source(&e)
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    assert!(matches!(e, CoreError::Executor { .. }), "{e:?}");
    assert!(
        msg.contains("slurm_qos") && msg.contains("slurptuna_no_such_qos"),
        "{msg}"
    );
    assert_no_jobs_left(tag).await;
}
