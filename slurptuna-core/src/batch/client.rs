//! The scheduler-client trait, [`BatchClient`], and the plain data it speaks in.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::BoxError;
use crate::executor::FailureKind;

/// A job id as the scheduler gave it (for an array: the array's id, Slurm's `%A`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A whole job (`123`) or one task of an array (`123_4`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskRef {
    /// The (array) job.
    pub job: JobId,
    /// The task's index within its array, or `None` for the whole job.
    pub task: Option<u64>,
}

impl fmt::Display for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.task {
            Some(t) => write!(f, "{}_{t}", self.job),
            None => write!(f, "{}", self.job),
        }
    }
}

/// Where a task stands, in the scheduler-independent terms the executor decides on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Queued, starting, running, suspended or requeued: it may still write a result.
    Active,
    /// Finished successfully (its result, if it wrote one, is in the trial directory).
    Completed,
    /// Ended without success: it will not write a result.
    Ended {
        /// What kind of end it was ([`FailureKind::TimeLimit`] for a task killed at its time
        /// limit, [`FailureKind::Scheduler`] for the other ends).
        kind: FailureKind,
        /// The scheduler's own name for the state (`OUT_OF_MEMORY`, `TIMEOUT`, `CANCELLED`).
        label: String,
    },
}

impl TaskState {
    /// True while the task may still write a result.
    pub fn is_active(&self) -> bool {
        matches!(self, TaskState::Active)
    }
}

/// The state of one job or array task, as the scheduler reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskStatus {
    /// The (array) job.
    pub job: JobId,
    /// The task's index within its array, `None` for a plain job.
    pub task: Option<u64>,
    /// Its state.
    pub state: TaskState,
    /// The scheduler's reason or exit code, when it gave one (`NonZeroExitCode`, `3:0`).
    pub detail: Option<String>,
}

/// One job array to submit: a fixed batch script run once per array index.
///
/// Every field is data that becomes exactly one argument or variable; nothing is interpreted by
/// a shell. Scheduler resources (CPUs, memory, time limit, queue, account, ...) are not part of
/// it: the client owns them.
#[derive(Clone, Debug, PartialEq)]
pub struct ArraySubmission {
    /// The batch script (a file the executor wrote; fixed text).
    pub script: PathBuf,
    /// Arguments of the script: the task file, the worker program, the program's arguments.
    pub script_args: Vec<OsString>,
    /// The array indices (any order; each task finds its index in
    /// [`BatchClient::task_index_env`]).
    pub array: Vec<u64>,
    /// How many tasks of this array may run at once (Slurm's `%limit`), if capped.
    pub array_limit: Option<u64>,
    /// The job name: unique to this submission, letters, digits, `_`, `-` and `.` only, so that
    /// [`BatchClient::find`] can find the array by it.
    pub job_name: String,
    /// Working directory of every task.
    pub chdir: PathBuf,
    /// Where a task's stdout goes: a path whose file name holds the placeholders `%A` (the
    /// array's job id) and `%a` (the task's index), as Slurm writes them. A client for another
    /// scheduler translates them to its own syntax; the file must end up at the expanded path
    /// (the executor reads the stderr tail of a failed task from there).
    pub output: PathBuf,
    /// Where a task's stderr goes (same placeholders as [`ArraySubmission::output`]).
    pub error: PathBuf,
    /// Environment variables set for every task on top of the submitting environment.
    pub env: Vec<(String, String)>,
}

/// What a [`ClientError`] means for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientErrorKind {
    /// The scheduler refused a submission because of a submit limit (too many jobs queued):
    /// back off and submit again, for as long as the attempt timeout allows.
    SubmitLimit,
    /// A command failed in a way that may pass (a failed or unreadable answer): try again a
    /// few times.
    Transient,
    /// Retrying will not help (the scheduler's commands are missing, an option was rejected):
    /// the run stops with this error.
    Fatal,
}

/// An error of a [`BatchClient`]: its kind, which drives what the executor does, and the
/// client's own error, which says what happened.
///
/// It displays as its source (the kind is for decisions, not for people).
#[derive(Debug)]
pub struct ClientError {
    /// What the error means for the caller.
    pub kind: ClientErrorKind,
    /// The client's own error (e.g. `slurptuna-exec-slurm`'s `SlurmError`).
    pub source: BoxError,
}

impl ClientError {
    /// An error of `kind`.
    pub fn new(kind: ClientErrorKind, source: impl Into<BoxError>) -> Self {
        Self {
            kind,
            source: source.into(),
        }
    }

    /// A submit-limit refusal ([`ClientErrorKind::SubmitLimit`]).
    pub fn submit_limit(source: impl Into<BoxError>) -> Self {
        Self::new(ClientErrorKind::SubmitLimit, source)
    }

    /// A failure worth retrying ([`ClientErrorKind::Transient`]).
    pub fn transient(source: impl Into<BoxError>) -> Self {
        Self::new(ClientErrorKind::Transient, source)
    }

    /// A failure that retrying will not fix ([`ClientErrorKind::Fatal`]).
    pub fn fatal(source: impl Into<BoxError>) -> Self {
        Self::new(ClientErrorKind::Fatal, source)
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.source()
    }
}

/// Used by [`BatchClient::max_array_size`] when a scheduler has no such limit to report
/// (Slurm's own default `MaxArraySize`).
pub const DEFAULT_MAX_ARRAY_SIZE: u64 = 1001;

/// What the batch executor needs from a scheduler: the small trait a new scheduler (PBS, LSF,
/// HTCondor, Flux) implements to get everything else of [`crate::batch`] — polling, submission
/// records, re-adoption, retries, the worker — for free.
///
/// # Contract
/// - `name` is a short lowercase name (`"slurm"`); it names the executor in logs and errors.
/// - `task_index_env` names the environment variable in which the scheduler gives each array
///   task its index (`SLURM_ARRAY_TASK_ID`); the worker reads the index from it.
/// - `submit` returns the array's job id once the scheduler accepted the whole array, with one
///   task per index of [`ArraySubmission::array`], each running `script` with `script_args`, in
///   `chdir`, with `env` set, its output in the expanded `output`/`error` paths, at most
///   `array_limit` at once, named `job_name`. It never passes anything through a shell. A
///   submit-limit refusal is [`ClientErrorKind::SubmitLimit`], a failure worth retrying
///   [`ClientErrorKind::Transient`], anything else [`ClientErrorKind::Fatal`].
/// - `states` answers, in one call, for every task of `jobs` that the scheduler still knows
///   (queued, running, or recently finished). A task it does not list has left the queue;
///   unknown job ids are not an error. Array tasks are reported one by one (a pending range
///   expanded): the executor looks each task up by `(job, task)`.
/// - `final_states` is like `states` from the scheduler's accounting, for tasks that left the
///   queue; `Ok(None)` means there is no accounting (the default).
/// - `cancel` of a job or task that already ended is not an error.
/// - `find` returns the ids of the jobs named exactly `name` that the scheduler still knows.
/// - `max_array_size`: array indices must be below it (the executor splits larger arrays and
///   adds an offset); default [`DEFAULT_MAX_ARRAY_SIZE`].
/// - `check_submission` asks the scheduler whether it would accept `sub` as configured, without
///   submitting anything (Slurm: `sbatch --test-only`); a refusal for the options (unknown QoS,
///   account, partition) is an error, a full queue is not. Default: accepted.
/// - `queue_limit`: the most tasks the executor may hold submitted and unfinished at once, as
///   the scheduler and the user's limits allow (each array task counts as one job); `Ok(None)`
///   (the default) when the scheduler does not say. The executor asks once, never holds more,
///   and still adapts to refusals below it (other jobs of the user count too).
/// - All methods may be called concurrently.
#[async_trait]
pub trait BatchClient: Send + Sync {
    /// A short name for logs and errors (`"slurm"`).
    fn name(&self) -> &'static str;

    /// The environment variable holding a task's index within its array
    /// (`SLURM_ARRAY_TASK_ID`).
    fn task_index_env(&self) -> &'static str;

    /// Submits a job array; returns its job id.
    async fn submit(&self, sub: &ArraySubmission) -> Result<JobId, ClientError>;

    /// States of every task of `jobs` still known to the scheduler, in one call.
    async fn states(&self, jobs: &[JobId]) -> Result<Vec<TaskStatus>, ClientError>;

    /// Final states from accounting, or `None` when the scheduler keeps none.
    async fn final_states(&self, jobs: &[JobId]) -> Result<Option<Vec<TaskStatus>>, ClientError> {
        let _ = jobs;
        Ok(None)
    }

    /// Cancels jobs or array tasks.
    async fn cancel(&self, targets: &[TaskRef]) -> Result<(), ClientError>;

    /// The ids of the jobs named exactly `name`.
    async fn find(&self, name: &str) -> Result<Vec<JobId>, ClientError>;

    /// Array indices must be below this.
    async fn max_array_size(&self) -> Result<u64, ClientError> {
        Ok(DEFAULT_MAX_ARRAY_SIZE)
    }

    /// The most tasks to hold submitted and unfinished at once, if the scheduler says.
    async fn queue_limit(&self) -> Result<Option<u64>, ClientError> {
        Ok(None)
    }

    /// Whether the scheduler would accept `sub`, asked without submitting it.
    async fn check_submission(&self, sub: &ArraySubmission) -> Result<(), ClientError> {
        let _ = sub;
        Ok(())
    }
}

#[async_trait]
impl<T: BatchClient + ?Sized> BatchClient for Arc<T> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn task_index_env(&self) -> &'static str {
        (**self).task_index_env()
    }
    async fn submit(&self, sub: &ArraySubmission) -> Result<JobId, ClientError> {
        (**self).submit(sub).await
    }
    async fn states(&self, jobs: &[JobId]) -> Result<Vec<TaskStatus>, ClientError> {
        (**self).states(jobs).await
    }
    async fn final_states(&self, jobs: &[JobId]) -> Result<Option<Vec<TaskStatus>>, ClientError> {
        (**self).final_states(jobs).await
    }
    async fn cancel(&self, targets: &[TaskRef]) -> Result<(), ClientError> {
        (**self).cancel(targets).await
    }
    async fn find(&self, name: &str) -> Result<Vec<JobId>, ClientError> {
        (**self).find(name).await
    }
    async fn max_array_size(&self) -> Result<u64, ClientError> {
        (**self).max_array_size().await
    }
    async fn queue_limit(&self) -> Result<Option<u64>, ClientError> {
        (**self).queue_limit().await
    }
    async fn check_submission(&self, sub: &ArraySubmission) -> Result<(), ClientError> {
        (**self).check_submission(sub).await
    }
}
