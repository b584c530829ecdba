//! [`SlurmBatchClient`]: any [`SlurmClient`] as the batch layer's [`BatchClient`].

use std::sync::Arc;

use async_trait::async_trait;
use slurptuna_core::batch::{
    ArraySubmission, BatchClient, ClientError, ClientErrorKind, JobId, TaskRef, TaskState,
    TaskStatus,
};
use slurptuna_core::{FailureKind, TaskResources};

use crate::client::{JobState, SlurmClient, SlurmTaskStatus, SubmitRequest};
use crate::error::SlurmError;
use crate::options::SlurmOptions;

/// The environment variable in which Slurm gives an array task its index.
pub const SLURM_TASK_INDEX_ENV: &str = "SLURM_ARRAY_TASK_ID";

/// A [`SlurmClient`] ([`crate::CliSlurm`], [`crate::FakeSlurm`], a mock) as the batch layer's
/// [`BatchClient`]: submissions get the task resources and the Slurm options attached
/// ([`SubmitRequest`]), Slurm states
/// become [`TaskState`]s ([`task_state`]) and [`SlurmError`]s become [`ClientError`]s of the
/// right kind (`SubmitLimit` backs off, `Failed` and `Parse` are transient, the rest fatal).
///
/// Every call waits its turn at a shared pace ([`SlurmOptions::slurm_rpc_per_second`], bursts of
/// [`RPC_BURST`]), so that however many trials and entries run, the controller stays within
/// what slurmctld's rate limit and its administrators allow.
#[derive(Clone)]
pub struct SlurmBatchClient {
    client: Arc<dyn SlurmClient>,
    options: Arc<SlurmOptions>,
    resources: TaskResources,
    pace: Arc<Pace>,
    requeues: Arc<Requeues>,
}

/// Requeues of live tasks, seen as a task `squeue` listed running and then pending again
/// (`REQUEUED`, `PENDING`): a preemption, a node failure or `scontrol requeue`.
#[derive(Debug, Default)]
struct Requeues {
    /// The tracked tasks, and the number of the last answer.
    seen: std::sync::Mutex<(rustc_hash::FxHashMap<TaskRef, Tracked>, u64)>,
}

/// A task that ran: whether it was last seen running, how often it was requeued, and the
/// answer it was last listed in.
type Tracked = (bool, u32, u64);

impl Requeues {
    /// Counts requeues in `statuses` (one `squeue` answer) and forgets tasks that ended or that
    /// it does not list. Returns the tasks requeued more than `cap` times, with their count.
    fn observe(&self, statuses: &[SlurmTaskStatus], cap: u32) -> Vec<(TaskRef, u32)> {
        let mut guard = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let (seen, answer) = &mut *guard;
        *answer += 1;
        let answer = *answer;
        let mut over = Vec::new();
        for st in statuses {
            let t = TaskRef {
                job: st.job,
                task: st.task,
            };
            if !st.state.is_active() {
                continue;
            }
            let running = matches!(st.state, JobState::Running | JobState::Completing);
            let back = matches!(st.state, JobState::Pending | JobState::Requeued);
            // Only tasks that ran are tracked (a pending task never seen running is not).
            let entry = match seen.get_mut(&t) {
                Some(e) => e,
                None if running => seen.entry(t).or_insert((false, 0, answer)),
                None => continue,
            };
            entry.2 = answer;
            if entry.0 && back {
                entry.1 += 1;
                tracing::warn!(
                    "slurm: task {t} was requeued (preempted, its node failed, or scontrol requeue): \
                     its chunk runs again from the start ({} of at most {cap} requeues)",
                    entry.1
                );
                if entry.1 > cap {
                    over.push((t, entry.1));
                }
            }
            entry.0 = running;
        }
        seen.retain(|_, e| e.2 == answer);
        over
    }
}

/// How many calls to Slurm may go at once before [`SlurmOptions::slurm_rpc_per_second`] spaces
/// them.
pub const RPC_BURST: f64 = 10.0;

/// A token bucket in tokio's clock: [`RPC_BURST`] tokens, refilled at the configured rate.
#[derive(Debug)]
struct Pace {
    per_second: f64,
    /// Tokens left, as of the instant.
    bucket: tokio::sync::Mutex<(f64, tokio::time::Instant)>,
    /// After a failed call (slurmctld refusing RPCs, a socket timeout): no call before the
    /// instant, and the pause that led to it (doubled, with jitter, at each further failure).
    backoff: std::sync::Mutex<Option<(tokio::time::Instant, std::time::Duration)>>,
    /// The rate in force: halved at each failed call, grown back by a twentieth of the
    /// configured rate at each success (a slurmctld stricter than the configured pace is met
    /// at its own pace).
    rate: std::sync::Mutex<f64>,
}

/// The first pause after a failed call to Slurm, and the longest.
const RPC_BACKOFF: (std::time::Duration, std::time::Duration) = (
    std::time::Duration::from_secs(1),
    std::time::Duration::from_secs(60),
);

impl Pace {
    fn new(per_second: f64) -> Self {
        let per_second = if per_second.is_finite() && per_second > 0.0 {
            per_second
        } else {
            1.0
        };
        Pace {
            per_second,
            bucket: tokio::sync::Mutex::new((RPC_BURST, tokio::time::Instant::now())),
            backoff: std::sync::Mutex::new(None),
            rate: std::sync::Mutex::new(per_second),
        }
    }

    fn rate(&self) -> f64 {
        *self.rate.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `call` when its turn comes; a transient failure (a non-zero exit: a refused RPC, a
    /// socket timeout) pauses every call for an exponentially growing, jittered while, a
    /// success ends the pause.
    async fn paced<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, SlurmError>>,
    ) -> Result<T, SlurmError> {
        self.turn().await;
        let out = call.await;
        let mut b = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
        let mut rate = self.rate.lock().unwrap_or_else(|e| e.into_inner());
        match &out {
            Err(SlurmError::Failed { .. }) => {
                *rate = (*rate / 2.0).max(self.per_second / 64.0);
                let pause = b.map_or(RPC_BACKOFF.0, |(_, d)| (d * 2).min(RPC_BACKOFF.1));
                // ±25%, from the clock's nanoseconds: callers that failed together spread out.
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos());
                let jitter = 0.75 + 0.5 * f64::from(nanos % 1000) / 1000.0;
                *b = Some((tokio::time::Instant::now() + pause.mul_f64(jitter), pause));
            }
            _ => {
                *b = None;
                *rate = (*rate + self.per_second / 20.0).min(self.per_second);
            }
        }
        out
    }

    /// Waits until a call may go (callers queue in order: the lock is fair).
    async fn turn(&self) {
        let mut b = self.bucket.lock().await;
        let until = self
            .backoff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|(until, _)| until);
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
        let refill = |b: &mut (f64, tokio::time::Instant), rate: f64| {
            let now = tokio::time::Instant::now();
            b.0 = (b.0 + now.duration_since(b.1).as_secs_f64() * rate).min(RPC_BURST);
            b.1 = now;
        };
        let rate = self.rate();
        refill(&mut b, rate);
        if b.0 < 1.0 {
            let wait = std::time::Duration::from_secs_f64((1.0 - b.0) / rate);
            tokio::time::sleep(wait).await;
            refill(&mut b, rate);
        }
        b.0 -= 1.0;
    }
}

impl std::fmt::Debug for SlurmBatchClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlurmBatchClient")
            .field("options", &self.options)
            .field("resources", &self.resources)
            .finish_non_exhaustive()
    }
}

impl SlurmBatchClient {
    /// `client`, submitting every array with `options` and tasks asking for `resources`.
    pub fn new(
        client: Arc<dyn SlurmClient>,
        options: Arc<SlurmOptions>,
        resources: TaskResources,
    ) -> Self {
        Self {
            pace: Arc::new(Pace::new(options.slurm_rpc_per_second)),
            requeues: Arc::default(),
            client,
            options,
            resources,
        }
    }

    /// The options every submission carries.
    pub fn options(&self) -> &Arc<SlurmOptions> {
        &self.options
    }

    /// What every task asks for.
    pub fn resources(&self) -> &TaskResources {
        &self.resources
    }
}

/// A Slurm state in the batch layer's terms: queued or running states (and states this backend
/// does not know) are [`TaskState::Active`], `COMPLETED` is [`TaskState::Completed`], `TIMEOUT`
/// ends with [`FailureKind::TimeLimit`] and the other failures (`FAILED`, `OUT_OF_MEMORY`,
/// `CANCELLED`, `NODE_FAIL`, ...) with [`FailureKind::Scheduler`], labelled with Slurm's name.
///
/// ```
/// use slurptuna_core::batch::TaskState;
/// use slurptuna_core::FailureKind;
/// use slurptuna_exec_slurm::{task_state, JobState};
/// assert_eq!(task_state(&JobState::Pending), TaskState::Active);
/// assert_eq!(
///     task_state(&JobState::OutOfMemory),
///     TaskState::Ended { kind: FailureKind::Scheduler, label: "OUT_OF_MEMORY".into() }
/// );
/// ```
pub fn task_state(state: &JobState) -> TaskState {
    match state {
        JobState::Completed => TaskState::Completed,
        JobState::Timeout => TaskState::Ended {
            kind: FailureKind::TimeLimit,
            label: state.to_string(),
        },
        s if s.is_failure() => TaskState::Ended {
            kind: FailureKind::Scheduler,
            label: s.to_string(),
        },
        _ => TaskState::Active,
    }
}

impl From<SlurmTaskStatus> for TaskStatus {
    fn from(s: SlurmTaskStatus) -> Self {
        TaskStatus {
            job: s.job,
            task: s.task,
            state: task_state(&s.state),
            detail: s.detail,
        }
    }
}

impl From<SlurmError> for ClientError {
    fn from(e: SlurmError) -> Self {
        let kind = match &e {
            SlurmError::SubmitLimit { .. } => ClientErrorKind::SubmitLimit,
            SlurmError::Failed { .. } | SlurmError::Parse { .. } => ClientErrorKind::Transient,
            _ => ClientErrorKind::Fatal,
        };
        ClientError::new(kind, e)
    }
}

fn statuses(v: Vec<SlurmTaskStatus>) -> Vec<TaskStatus> {
    v.into_iter().map(TaskStatus::from).collect()
}

#[async_trait]
impl BatchClient for SlurmBatchClient {
    fn name(&self) -> &'static str {
        "slurm"
    }

    fn task_index_env(&self) -> &'static str {
        SLURM_TASK_INDEX_ENV
    }

    async fn submit(&self, sub: &ArraySubmission) -> Result<JobId, ClientError> {
        let req = SubmitRequest {
            submission: sub.clone(),
            resources: self.resources.clone(),
            options: self.options.clone(),
        };
        Ok(self.pace.paced(self.client.submit(&req)).await?)
    }

    async fn states(&self, jobs: &[JobId]) -> Result<Vec<TaskStatus>, ClientError> {
        let mut answer = self.pace.paced(self.client.queue(jobs)).await?;
        let cap = self.options.slurm_max_requeues;
        let over = self.requeues.observe(&answer, cap);
        if !over.is_empty() {
            // Looping for ever is worse than failing: the task is cancelled and its chunk fails
            // with the reason (retried as a failed attempt, if attempts remain).
            let targets: Vec<TaskRef> = over.iter().map(|(t, _)| *t).collect();
            if let Err(e) = self.pace.paced(self.client.cancel(&targets)).await {
                tracing::warn!("slurm: cancelling tasks requeued too often failed: {e}");
            }
            for st in &mut answer {
                if let Some((_, n)) = over
                    .iter()
                    .find(|(t, _)| t.job == st.job && t.task == st.task)
                {
                    st.state = JobState::Other("REQUEUE_LIMIT".into());
                    st.detail = Some(format!(
                        "requeued {n} times, more than slurm_max_requeues = {cap}: preempted or \
                         its node failed each time; cancelled"
                    ));
                }
            }
        }
        Ok(statuses(answer))
    }

    async fn final_states(&self, jobs: &[JobId]) -> Result<Option<Vec<TaskStatus>>, ClientError> {
        Ok(self
            .pace
            .paced(self.client.accounting(jobs))
            .await?
            .map(statuses))
    }

    async fn cancel(&self, targets: &[TaskRef]) -> Result<(), ClientError> {
        Ok(self.pace.paced(self.client.cancel(targets)).await?)
    }

    async fn find(&self, name: &str) -> Result<Vec<JobId>, ClientError> {
        Ok(self.pace.paced(self.client.find(name)).await?)
    }

    async fn max_array_size(&self) -> Result<u64, ClientError> {
        Ok(self.pace.paced(self.client.max_array_size()).await?)
    }

    async fn check_submission(&self, sub: &ArraySubmission) -> Result<(), ClientError> {
        let req = SubmitRequest {
            submission: sub.clone(),
            resources: self.resources.clone(),
            options: self.options.clone(),
        };
        Ok(self.pace.paced(self.client.test_submit(&req)).await?)
    }

    async fn queue_limit(&self) -> Result<Option<u64>, ClientError> {
        let limits = self
            .pace
            .paced(self.client.submit_limits(
                self.options.slurm_account.clone(),
                self.resources.qos.clone(),
            ))
            .await?;
        Ok(limits.queue_cap())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::MockSlurmClient;

    #[test]
    fn states_map_to_kinds_with_slurms_labels() {
        for s in [
            "PENDING",
            "RUNNING",
            "CONFIGURING",
            "COMPLETING",
            "SUSPENDED",
            "REQUEUED",
            "STAGE_OUT",
            "RESIZING",
        ] {
            assert_eq!(task_state(&JobState::parse(s)), TaskState::Active, "{s}");
        }
        assert_eq!(task_state(&JobState::Completed), TaskState::Completed);
        assert_eq!(
            task_state(&JobState::parse("TIMEOUT")),
            TaskState::Ended {
                kind: FailureKind::TimeLimit,
                label: "TIMEOUT".into()
            }
        );
        for s in [
            "FAILED",
            "NODE_FAIL",
            "OUT_OF_MEMORY",
            "CANCELLED by 0",
            "PREEMPTED",
            "BOOT_FAIL",
            "DEADLINE",
            "REVOKED",
            "SPECIAL_EXIT",
        ] {
            let label = s.split(' ').next().unwrap().to_string();
            assert_eq!(
                task_state(&JobState::parse(s)),
                TaskState::Ended {
                    kind: FailureKind::Scheduler,
                    label
                },
                "{s}"
            );
        }
        let st: TaskStatus = SlurmTaskStatus {
            job: JobId(4),
            task: Some(2),
            state: JobState::OutOfMemory,
            detail: Some("exit code 0:125".into()),
        }
        .into();
        assert_eq!(st.job, JobId(4));
        assert_eq!(st.task, Some(2));
        assert_eq!(st.detail.as_deref(), Some("exit code 0:125"));
        assert!(!st.state.is_active());
    }

    fn io(kind: std::io::ErrorKind) -> std::io::Error {
        std::io::Error::new(kind, "x")
    }

    #[test]
    fn errors_map_to_kinds_and_keep_the_slurm_error() {
        use std::os::unix::process::ExitStatusExt;
        let cases = [
            (
                SlurmError::SubmitLimit {
                    stderr: "QOSMaxSubmitJobPerUserLimit".into(),
                },
                ClientErrorKind::SubmitLimit,
            ),
            (
                SlurmError::Failed {
                    argv: vec!["sbatch".into()],
                    status: std::process::ExitStatus::from_raw(256),
                    stdout: String::new(),
                    stderr: "boom".into(),
                },
                ClientErrorKind::Transient,
            ),
            (
                SlurmError::Parse {
                    command: "squeue",
                    reason: "r".into(),
                    output: String::new(),
                },
                ClientErrorKind::Transient,
            ),
            (
                SlurmError::Spawn {
                    program: "sbatch".into(),
                    source: io(std::io::ErrorKind::NotFound),
                },
                ClientErrorKind::Fatal,
            ),
            (
                SlurmError::InvalidQos {
                    qos: "gold".into(),
                    stderr: "Invalid qos specification".into(),
                },
                ClientErrorKind::Fatal,
            ),
        ];
        for (e, kind) in cases {
            let text = e.to_string();
            let c = ClientError::from(e);
            assert_eq!(c.kind, kind, "{text}");
            assert_eq!(c.to_string(), text, "displays as the Slurm error");
            assert!(c.source.downcast_ref::<SlurmError>().is_some());
        }
        // Outside the batch layer, a Slurm error is an executor error, boxed, never a string.
        let core: slurptuna_core::CoreError = SlurmError::InvalidQos {
            qos: "gold".into(),
            stderr: "no".into(),
        }
        .into();
        match core {
            slurptuna_core::CoreError::Executor { executor, source } => {
                assert_eq!(executor, "slurm");
                let e = source.downcast_ref::<SlurmError>().unwrap();
                assert!(e.to_string().contains("slurm_qos"), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn requeues_are_counted_and_a_task_requeued_too_often_is_cancelled_and_fails() {
        let states = std::sync::Mutex::new(
            [
                JobState::Pending,
                JobState::Running,
                JobState::Requeued,
                JobState::Running,
                JobState::Running,
                JobState::Pending,
            ]
            .into_iter()
            .collect::<std::collections::VecDeque<_>>(),
        );
        let mut mock = MockSlurmClient::new();
        mock.expect_queue().returning(move |_| {
            let state = states.lock().unwrap().pop_front().unwrap();
            Ok(vec![SlurmTaskStatus {
                job: JobId(7),
                task: Some(1),
                state,
                detail: None,
            }])
        });
        mock.expect_cancel()
            .times(1)
            .withf(|t| {
                t == [TaskRef {
                    job: JobId(7),
                    task: Some(1),
                }]
            })
            .returning(|_| Ok(()));
        let opts = Arc::new(SlurmOptions {
            slurm_max_requeues: 1,
            slurm_rpc_per_second: 1000.0,
            ..Default::default()
        });
        let c = SlurmBatchClient::new(
            Arc::new(mock),
            opts,
            slurptuna_core::DistributedOptions::seed_defaults().resources,
        );
        let mut seen = Vec::new();
        for _ in 0..6 {
            seen.push(c.states(&[JobId(7)]).await.unwrap().remove(0));
        }
        // Pending → running → requeued (1, within the cap) → running → running → pending (2).
        assert!(seen[..5].iter().all(|s| s.state == TaskState::Active));
        assert_eq!(
            seen[5].state,
            TaskState::Ended {
                kind: FailureKind::Scheduler,
                label: "REQUEUE_LIMIT".into()
            }
        );
        let why = seen[5].detail.as_deref().unwrap();
        assert!(
            why.contains("requeued 2 times") && why.contains("slurm_max_requeues"),
            "{why}"
        );
    }

    #[tokio::test]
    async fn submissions_carry_the_options_by_reference_and_the_resources() {
        let opts = Arc::new(SlurmOptions {
            slurm_partition: Some("gpu".into()),
            ..Default::default()
        });
        let resources = TaskResources {
            cpus_per_task: 3,
            ..slurptuna_core::DistributedOptions::seed_defaults().resources
        };
        let mut mock = MockSlurmClient::new();
        let o2 = opts.clone();
        let r2 = resources.clone();
        mock.expect_submit().times(1).returning(move |req| {
            assert!(Arc::ptr_eq(&req.options, &o2));
            assert_eq!(req.resources, r2);
            assert_eq!(req.resources.cpus_per_task, 3);
            assert_eq!(req.submission.array, vec![0, 2]);
            Ok(JobId(9))
        });
        mock.expect_queue().returning(|jobs| {
            Ok(vec![SlurmTaskStatus {
                job: jobs[0],
                task: Some(0),
                state: JobState::Timeout,
                detail: None,
            }])
        });
        mock.expect_accounting().returning(|_| Ok(None));
        mock.expect_max_array_size().returning(|| {
            Err(SlurmError::Parse {
                command: "scontrol",
                reason: "no MaxArraySize line".into(),
                output: String::new(),
            })
        });
        let c = SlurmBatchClient::new(Arc::new(mock), opts.clone(), resources.clone());
        assert!(Arc::ptr_eq(c.options(), &opts));
        assert_eq!(c.resources(), &resources);
        assert_eq!(
            (c.name(), c.task_index_env()),
            ("slurm", "SLURM_ARRAY_TASK_ID")
        );
        let sub = ArraySubmission {
            script: "/s".into(),
            script_args: vec![],
            array: vec![0, 2],
            array_limit: None,
            job_name: "n".into(),
            chdir: "/".into(),
            output: "/o".into(),
            error: "/e".into(),
            env: vec![],
        };
        assert_eq!(c.submit(&sub).await.unwrap(), JobId(9));
        let s = c.states(&[JobId(9)]).await.unwrap();
        assert_eq!(
            s[0].state,
            TaskState::Ended {
                kind: FailureKind::TimeLimit,
                label: "TIMEOUT".into()
            }
        );
        assert_eq!(c.final_states(&[JobId(9)]).await.unwrap(), None);
        assert_eq!(
            c.max_array_size().await.unwrap_err().kind,
            ClientErrorKind::Transient
        );
    }
}
