//! [`BatchConfig`]: the scheduler-independent policy of a [`super::BatchExecutor`].

use std::path::PathBuf;
use std::time::Duration;

use crate::backend::DistributedOptions;
use crate::batch::policy::RetryPolicy;
use crate::error::CoreError;

/// How a [`super::BatchExecutor`] polls, times out, retries and names its jobs, whatever the
/// scheduler. Scheduler resources (CPUs, memory, queue, ...) belong to the scheduler's client.
///
/// Build it with struct-update syntax; [`BatchConfig::validate`] checks it (the executor does
/// too, and fails every evaluation naming the bad option):
///
/// ```
/// use std::time::Duration;
/// use slurptuna_core::batch::BatchConfig;
/// let cfg = BatchConfig { poll_interval: Duration::from_secs(5), ..Default::default() };
/// assert!(cfg.validate().is_ok());
/// let bad = BatchConfig { job_name_prefix: "a b".into(), ..cfg };
/// assert!(bad.validate().unwrap_err().to_string().contains("job_name_prefix"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct BatchConfig {
    /// How often the executor asks the scheduler for task states (one call for all live jobs of
    /// the executor); a failed task is noticed within one interval. Default 15 s.
    pub poll_interval: Duration,
    /// How often the executor looks for finished chunk results in the trial directories (a
    /// cheap file check, so results land without waiting for the next poll). Default 200 ms;
    /// never longer than `poll_interval` in effect. While no result arrives, a trial's checks
    /// back off to [`crate::batch::CHECK_BACKOFF`] times this.
    pub result_check_interval: Duration,
    /// Upper bound on one attempt of a chunk task, counted **from submission, so queue time
    /// counts**; a task still unfinished then is cancelled and fails with
    /// [`crate::FailureKind::AttemptTimeout`] (retried if attempts remain). Default 120 min.
    pub attempt_timeout: Duration,
    /// Retries after a failed attempt: default 1, i.e. two attempts in all. Retries never
    /// resubmit a chunk whose result is stored or whose task is still running.
    pub trial_retry_attempts: u32,
    /// On a failed chunk: `true` (default) cancels the trial's other tasks and retries the
    /// trial with only its missing chunks; `false` keeps the other tasks running and retries
    /// only the failed chunks.
    pub fail_on_chunk_error: bool,
    /// Cap on chunk tasks submitted and not yet finished across **all** trials and entries of
    /// the executor (each array also carries it as its own limit). `None` (default): no cap.
    pub array_parallelism_limit: Option<u64>,
    /// Most chunk tasks held in the scheduler's queue at once across all trials and entries of
    /// the executor; `None` (default): as the client's [`crate::batch::BatchClient::queue_limit`]
    /// says. The client's limit applies in any case.
    pub max_queued_tasks: Option<u64>,
    /// When the controller is cancelled (dropped evaluation, or [`crate::Executor::shutdown`]
    /// without `keep_jobs`), leave submitted jobs running so that a resumed controller
    /// re-adopts them. Default `false`: they are cancelled.
    pub keep_jobs_on_cancel: bool,
    /// First part of every job name (`<prefix>-<loss>[-<entry>]-t<trial>-<token>`). Letters,
    /// digits, `_`, `-` and `.` only. Default `slurptuna`.
    pub job_name_prefix: String,
    /// Directory for the files of trials the store gives no directory (in-memory stores); it
    /// must be visible from the compute nodes. Default `None`: such trials fail to submit.
    pub scratch_dir: Option<PathBuf>,
}

impl Default for BatchConfig {
    /// The seed's policy ([`DistributedOptions::seed_defaults`]) and this layer's defaults.
    fn default() -> Self {
        Self::new(&DistributedOptions::seed_defaults())
    }
}

impl BatchConfig {
    /// The policy of `options` (poll interval, attempt timeout, retries, cap on running tasks)
    /// with this layer's defaults for the rest: results checked every 200 ms, jobs cancelled
    /// with their evaluation, job names starting `slurptuna`, no scratch directory.
    pub fn new(options: &DistributedOptions) -> Self {
        Self {
            poll_interval: options.poll_interval,
            result_check_interval: Duration::from_millis(200),
            attempt_timeout: options.attempt_timeout,
            trial_retry_attempts: options.trial_retry_attempts,
            fail_on_chunk_error: options.fail_on_chunk_error,
            array_parallelism_limit: options.array_parallelism_limit,
            max_queued_tasks: options.max_queued_tasks,
            keep_jobs_on_cancel: false,
            job_name_prefix: "slurptuna".to_string(),
            scratch_dir: None,
        }
    }
}

/// True for a non-empty name of letters, digits, `_`, `-` and `.` (safe as a job name and as a
/// name filter of the scheduler, where a comma would separate names).
pub(crate) fn valid_job_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

impl BatchConfig {
    /// Checks every option; the error ([`CoreError::InvalidOption`]) names the field and says
    /// what is expected.
    pub fn validate(&self) -> Result<(), CoreError> {
        for (option, d) in [
            ("poll_interval", self.poll_interval),
            ("result_check_interval", self.result_check_interval),
            ("attempt_timeout", self.attempt_timeout),
        ] {
            if d.is_zero() {
                return Err(CoreError::option(option, "must be longer than zero"));
            }
        }
        if self.array_parallelism_limit == Some(0) {
            return Err(CoreError::option(
                "array_parallelism_limit",
                "must be at least 1 when given (None means no cap)",
            ));
        }
        if self.max_queued_tasks == Some(0) {
            return Err(CoreError::option(
                "max_queued_tasks",
                "must be at least 1 when given (None means as the cluster allows)",
            ));
        }
        if !valid_job_name_part(&self.job_name_prefix) {
            return Err(CoreError::option(
                "job_name_prefix",
                format!(
                    "{:?} must be non-empty and use only letters, digits, '_', '-' or '.'",
                    self.job_name_prefix
                ),
            ));
        }
        if self
            .scratch_dir
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            return Err(CoreError::option(
                "scratch_dir",
                "is empty: name a directory the compute nodes can see, or give None",
            ));
        }
        Ok(())
    }

    /// The retry policy of these options.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            trial_retry_attempts: self.trial_retry_attempts,
            fail_on_chunk_error: self.fail_on_chunk_error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_each_bad_option_is_named() {
        BatchConfig::default().validate().unwrap();
        let ok = BatchConfig::default;
        let cases: Vec<(BatchConfig, &str)> = vec![
            (
                BatchConfig {
                    poll_interval: Duration::ZERO,
                    ..ok()
                },
                "poll_interval",
            ),
            (
                BatchConfig {
                    result_check_interval: Duration::ZERO,
                    ..ok()
                },
                "result_check_interval",
            ),
            (
                BatchConfig {
                    attempt_timeout: Duration::ZERO,
                    ..ok()
                },
                "attempt_timeout",
            ),
            (
                BatchConfig {
                    array_parallelism_limit: Some(0),
                    ..ok()
                },
                "array_parallelism_limit",
            ),
            (
                BatchConfig {
                    job_name_prefix: "a,b".into(),
                    ..ok()
                },
                "job_name_prefix",
            ),
            (
                BatchConfig {
                    job_name_prefix: String::new(),
                    ..ok()
                },
                "job_name_prefix",
            ),
            (
                BatchConfig {
                    scratch_dir: Some(PathBuf::new()),
                    ..ok()
                },
                "scratch_dir",
            ),
        ];
        for (cfg, option) in cases {
            match cfg.validate() {
                Err(CoreError::InvalidOption { option: o, .. }) => assert_eq!(o, option),
                other => panic!("{option}: {other:?}"),
            }
        }
    }
}
