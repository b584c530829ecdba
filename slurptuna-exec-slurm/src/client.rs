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
        ) || matches!(self, JobState::Other(s) if s == "REVOKED" || s == "SPECIAL_EXIT")
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
}
