//! The `SlurmClient` trait: typed calls for what the Slurm backend asks of Slurm.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use slurptuna_core::batch::{ArraySubmission, JobId, TaskRef};
use slurptuna_core::TaskResources;

use crate::error::SlurmError;
use crate::options::SlurmOptions;

/// The state of a job or array task, as `squeue`/`sacct` print it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting for resources.
    Pending,
    /// Running.
    Running,
    /// Being set up on its node.
    Configuring,
    /// Finishing (epilog).
    Completing,
    /// Suspended.
    Suspended,
    /// Requeued (will run again).
    Requeued,
    /// Finished with exit code 0.
    Completed,
    /// Finished with a non-zero exit code or a signal.
    Failed,
    /// Killed at its time limit.
    Timeout,
    /// Its node failed.
    NodeFail,
    /// Killed for using too much memory.
    OutOfMemory,
    /// Cancelled (`scancel`, or by an administrator).
    Cancelled,
    /// Preempted and not requeued.
    Preempted,
    /// Its node failed to boot.
    BootFail,
    /// Missed its deadline.
    Deadline,
    /// Any other state Slurm reports (kept verbatim); treated as still in the queue.
    Other(String),
}

impl JobState {
    /// Parses a long state name as `squeue --format=%T` and `sacct` print it (`RUNNING`,
    /// `CANCELLED+`, `CANCELLED by 0`); unknown names are kept as [`JobState::Other`].
    pub fn parse(s: &str) -> Self {
        let word = s
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_end_matches('+');
        match word {
            "PENDING" => JobState::Pending,
            "RUNNING" => JobState::Running,
            "CONFIGURING" => JobState::Configuring,
            "COMPLETING" => JobState::Completing,
            "SUSPENDED" => JobState::Suspended,
            "REQUEUED" => JobState::Requeued,
            "COMPLETED" => JobState::Completed,
            "FAILED" => JobState::Failed,
            "TIMEOUT" => JobState::Timeout,
            "NODE_FAIL" => JobState::NodeFail,
            "OUT_OF_MEMORY" => JobState::OutOfMemory,
            "CANCELLED" => JobState::Cancelled,
            "PREEMPTED" => JobState::Preempted,
            "BOOT_FAIL" => JobState::BootFail,
            "DEADLINE" => JobState::Deadline,
            other => JobState::Other(other.to_string()),
        }
    }

    /// The state as Slurm spells it.
    pub fn as_str(&self) -> &str {
        match self {
            JobState::Pending => "PENDING",
            JobState::Running => "RUNNING",
            JobState::Configuring => "CONFIGURING",
            JobState::Completing => "COMPLETING",
            JobState::Suspended => "SUSPENDED",
            JobState::Requeued => "REQUEUED",
            JobState::Completed => "COMPLETED",
            JobState::Failed => "FAILED",
            JobState::Timeout => "TIMEOUT",
            JobState::NodeFail => "NODE_FAIL",
            JobState::OutOfMemory => "OUT_OF_MEMORY",
            JobState::Cancelled => "CANCELLED",
            JobState::Preempted => "PREEMPTED",
            JobState::BootFail => "BOOT_FAIL",
            JobState::Deadline => "DEADLINE",
            JobState::Other(s) => s,
        }
    }

    /// True when the task ended without success (it will not write a result).
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            JobState::Failed
                | JobState::Timeout
                | JobState::NodeFail
                | JobState::OutOfMemory
                | JobState::Cancelled
                | JobState::Preempted
                | JobState::BootFail
                | JobState::Deadline
        ) || matches!(self, JobState::Other(s) if s == "REVOKED" || s == "SPECIAL_EXIT" || s == "REQUEUE_LIMIT")
    }

    /// True while the task is queued or running (it may still write a result).
    pub fn is_active(&self) -> bool {
        !self.is_failure() && *self != JobState::Completed
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of one job or array task, in Slurm's terms (the batch layer's
/// `slurptuna_core::batch::TaskStatus` is made from it by [`crate::SlurmBatchClient`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlurmTaskStatus {
    /// The (array) job id.
    pub job: JobId,
    /// The array task id, `None` for a plain job.
    pub task: Option<u64>,
    /// Its state.
    pub state: JobState,
    /// Slurm's reason or exit code, when it gave one (`NonZeroExitCode`, `exit code 3:0`).
    pub detail: Option<String>,
}

/// One `sbatch` of a job array running a fixed batch script: the array (from the batch layer),
/// what each task asks for (the scheduler-independent [`TaskResources`]) and Slurm's own options
/// (account, partition, extra arguments, ...), referenced, not copied, so that the options exist
/// in one struct only.
///
/// Every field becomes exactly one argument; nothing is interpreted by a shell.
#[derive(Clone, Debug, PartialEq)]
pub struct SubmitRequest {
    /// The array: script, its arguments, array ids and limit, job name, directory, output and
    /// error patterns (`%A`, `%a`), environment.
    pub submission: ArraySubmission,
    /// `--cpus-per-task`, `--mem-per-cpu`, `--time` and `--qos`.
    pub resources: TaskResources,
    /// `--account`, `--partition`, `--gres`, `--constraint` and the extra arguments.
    pub options: Arc<SlurmOptions>,
}

/// What limits the jobs a user may hold in Slurm's queue (every array task counts as one job).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubmitLimits {
    /// `MaxJobCount` of `scontrol show config`: the jobs of every user together.
    pub max_job_count: Option<u64>,
    /// The smallest limit on the user's submitted jobs that accounting reports: the
    /// association's `MaxSubmitJobs` and `GrpSubmitJobs` for the account the jobs go to, and the
    /// QoS's `MaxSubmitJobsPerUser` and `GrpSubmitJobs`. `None` without accounting or limits.
    pub max_submit: Option<u64>,
}

impl SubmitLimits {
    /// The most tasks one controller holds in the queue: the user's limit, and at most half of
    /// `MaxJobCount` (the other half is everyone else's). `None` when Slurm reported neither.
    ///
    /// ```
    /// use slurptuna_exec_slurm::SubmitLimits;
    /// let l = SubmitLimits { max_job_count: Some(10_000), max_submit: Some(2_000) };
    /// assert_eq!(l.queue_cap(), Some(2_000));
    /// let l = SubmitLimits { max_job_count: Some(10_000), max_submit: None };
    /// assert_eq!(l.queue_cap(), Some(5_000));
    /// assert_eq!(SubmitLimits::default().queue_cap(), None);
    /// ```
    pub fn queue_cap(&self) -> Option<u64> {
        let table = self.max_job_count.map(|n| (n / 2).max(1));
        match (table, self.max_submit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// What the Slurm backend needs from Slurm, in Slurm's terms. [`crate::CliSlurm`] runs the real
/// commands; [`crate::FakeSlurm`] runs tasks as local processes; [`crate::SlurmBatchClient`]
/// turns any of them into the batch layer's `BatchClient`.
///
/// # Contract
/// - `submit` returns the array job id once Slurm accepted the array; a submit-limit refusal is
///   [`SlurmError::SubmitLimit`] (the caller backs off), a rejected QoS
///   [`SlurmError::InvalidQos`].
/// - `queue` answers for every task of `jobs` that Slurm still knows (queued, running, or
///   recently finished); a task it does not list has left the queue. Unknown job ids are not
///   an error.
/// - `accounting` is like `queue` from the accounting database; `Ok(None)` means accounting is
///   not available on this cluster.
/// - `cancel` of a job or task that already ended is not an error.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait SlurmClient: Send + Sync {
    /// `sbatch`: submits a job array.
    async fn submit(&self, req: &SubmitRequest) -> Result<JobId, SlurmError>;

    /// `squeue`: states of every task of `jobs` still known to the controller.
    async fn queue(&self, jobs: &[JobId]) -> Result<Vec<SlurmTaskStatus>, SlurmError>;

    /// `sacct`: final states from accounting, or `None` when accounting is disabled.
    async fn accounting(&self, jobs: &[JobId]) -> Result<Option<Vec<SlurmTaskStatus>>, SlurmError>;

    /// `scancel`: cancels jobs or array tasks.
    async fn cancel(&self, targets: &[TaskRef]) -> Result<(), SlurmError>;

    /// `squeue --name`: the ids of the jobs with this exact name that the controller still
    /// knows (queued, running or recently finished).
    async fn find(&self, name: &str) -> Result<Vec<JobId>, SlurmError>;

    /// `scontrol show config`: the cluster's `MaxArraySize` (array task ids must be below it).
    async fn max_array_size(&self) -> Result<u64, SlurmError>;

    /// `sbatch --test-only`: whether Slurm would accept `req`'s options (QoS, account,
    /// partition, resources), submitting nothing. A rejected QoS is
    /// [`SlurmError::InvalidQos`]; a full queue (a submit limit) is not an error here.
    async fn test_submit(&self, req: &SubmitRequest) -> Result<(), SlurmError>;

    /// `scontrol show config` and `sacctmgr`: the limits on the user's queued jobs, for jobs
    /// submitted to `account` (the user's default account when `None`) with `qos`. Limits the
    /// cluster does not report are `None`; only a failing `scontrol` is an error.
    async fn submit_limits(
        &self,
        account: Option<String>,
        qos: Option<String>,
    ) -> Result<SubmitLimits, SlurmError>;
}
