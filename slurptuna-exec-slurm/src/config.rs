//! `SlurmConfig`: everything the Slurm backend needs to know besides the trial itself.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::SlurmError;

/// Options of the Slurm backend, one per controller (shared by all trials and entries).
///
/// Build it with struct-update syntax and check it with [`SlurmConfig::validate`] (the executor
/// does too):
///
/// ```
/// use std::time::Duration;
/// use slurptuna_exec_slurm::SlurmConfig;
/// let cfg = SlurmConfig {
///     program: "/usr/bin/true".into(),
///     mem_per_cpu: "500M".into(),
///     time_limit: Duration::from_secs(600),
///     ..Default::default()
/// };
/// assert!(cfg.validate().is_ok());
/// let bad = SlurmConfig { mem_per_cpu: "lots".into(), ..cfg };
/// assert!(bad.validate().unwrap_err().to_string().contains("mem_per_cpu"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct SlurmConfig {
    /// The worker program every array task runs: the user's own program (default
    /// `std::env::current_exe()`), which must reach the same `optimize_*` call and build the same
    /// loss. Relative paths are resolved against the controller's working directory.
    pub program: PathBuf,
    /// Arguments given to the worker program (the launcher's `argv[1..]` when
    /// `forward_sys_argv_to_workers`, else empty). Passed as separate arguments, never through a
    /// shell.
    pub args: Vec<OsString>,
    /// Working directory of every task (`sbatch --chdir`). Default: the controller's working
    /// directory.
    pub cwd: PathBuf,
    /// `--cpus-per-task`. Default 1.
    pub cpus_per_task: u32,
    /// `--mem-per-cpu`: a whole number with an optional `K`, `M`, `G` or `T` suffix (`2G`,
    /// `500M`; no suffix means megabytes). Default `2G`.
    pub mem_per_cpu: String,
    /// `--time` of every task (Slurm rounds up to whole minutes). At least 1 second. Default 2 h.
    pub time_limit: Duration,
    /// `--qos`, or `None` for the cluster's default. A QoS that sbatch rejects fails the run
    /// with a clear error; there is no silent retry without it. Default `None`.
    pub qos: Option<String>,
    /// `--account`. Default `None`.
    pub account: Option<String>,
    /// `--partition`. Default `None` (the cluster's default partition).
    pub partition: Option<String>,
    /// `--gres` (e.g. `gpu:1`). Default `None`.
    pub gres: Option<String>,
    /// `--constraint`. Default `None`.
    pub constraint: Option<String>,
    /// Further sbatch arguments, each passed as one argument as given (no shell). Flags that
    /// this backend sets itself (`--array`, `--output`, `--error`, `--chdir`, `--parsable`,
    /// `--wrap`, `--job-name`) are refused.
    pub extra_sbatch_args: Vec<String>,
    /// Cap on chunk tasks submitted and not yet finished across **all** trials and entries of
    /// this executor (each array also carries `%limit`). `None`: no cap.
    pub array_parallelism_limit: Option<u64>,
    /// How often the controller asks Slurm (`squeue`, one call for all live jobs) for task
    /// states; a failed task is noticed within one interval. Default 15 s.
    pub poll_interval: Duration,
    /// How often the controller looks for finished chunk results in the trial directories
    /// (a cheap file check, so results land without waiting for the next `squeue`).
    /// Default 200 ms; never longer than `poll_interval` in effect.
    pub result_check_interval: Duration,
    /// Upper bound on one attempt of a chunk task, counted **from submission, so queue time
    /// counts**; a task still unfinished then is cancelled and treated as failed (and retried
    /// if attempts remain). Default 120 min.
    pub attempt_timeout: Duration,
    /// On a failed chunk: `true` (default) cancels the trial's other tasks and retries the
    /// trial with only its missing chunks; `false` keeps the other tasks running and retries
    /// only the failed chunks.
    pub fail_on_chunk_error: bool,
    /// Retries after a failed attempt: default 1, i.e. two attempts in all (the original's
    /// code and tests do this; its "(no retries)" remark was wrong). Retries never resubmit a
    /// chunk whose result is stored or whose task is still running.
    pub trial_retry_attempts: u32,
    /// Threads each task uses to evaluate the seeds of its chunk. Default 1.
    pub worker_parallelism: usize,
    /// When the controller is cancelled (Ctrl-C, SIGTERM, dropped future), leave submitted jobs
    /// running so that a resumed controller re-adopts them. Default `false`: they are cancelled.
    pub keep_jobs_on_cancel: bool,
    /// First part of every job name (`<prefix>-<loss>[-<entry>]-t<trial>`). Letters, digits,
    /// `_`, `-` and `.` only. Default `slurptuna`.
    pub job_name_prefix: String,
    /// Directory for the files of trials the store gives no directory (in-memory stores).
    /// It must be visible from the compute nodes. Default `None`: such trials fail to submit.
    pub scratch_dir: Option<PathBuf>,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        Self {
            program: std::env::current_exe().unwrap_or_default(),
            args: Vec::new(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            cpus_per_task: 1,
            mem_per_cpu: "2G".to_string(),
            time_limit: Duration::from_secs(2 * 3600),
            qos: None,
            account: None,
            partition: None,
            gres: None,
            constraint: None,
            extra_sbatch_args: Vec::new(),
            array_parallelism_limit: None,
            poll_interval: Duration::from_secs(15),
            result_check_interval: Duration::from_millis(200),
            attempt_timeout: Duration::from_secs(120 * 60),
            fail_on_chunk_error: true,
            trial_retry_attempts: 1,
            worker_parallelism: 1,
            keep_jobs_on_cancel: false,
            job_name_prefix: "slurptuna".to_string(),
            scratch_dir: None,
        }
    }
}

/// Flags the backend sets itself; `extra_sbatch_args` may not repeat them.
const RESERVED_FLAGS: &[&str] = &[
    "--array",
    "-a",
    "--output",
    "-o",
    "--error",
    "-e",
    "--chdir",
    "-D",
    "--parsable",
    "--wrap",
    "--job-name",
    "-J",
];

impl SlurmConfig {
    /// Checks every option; the error names the offending one and says what is expected.
    pub fn validate(&self) -> Result<(), SlurmError> {
        if self.program.as_os_str().is_empty() {
            return Err(SlurmError::config(
                "program",
                "is empty: name the worker program (usually std::env::current_exe())",
            ));
        }
        if self.cwd.as_os_str().is_empty() {
            return Err(SlurmError::config(
                "cwd",
                "is empty: give the tasks' working directory",
            ));
        }
        if self.cpus_per_task == 0 {
            return Err(SlurmError::config("cpus_per_task", "must be at least 1"));
        }
        if !valid_memory(&self.mem_per_cpu) {
            return Err(SlurmError::config(
                "mem_per_cpu",
                format!(
                    "{:?} is not a memory size: use a whole number with an optional K, M, G or T suffix, like 2G or 500M",
                    self.mem_per_cpu
                ),
            ));
        }
        if self.time_limit < Duration::from_secs(1) {
            return Err(SlurmError::config(
                "time_limit",
                format!("is {:?}: a task needs at least 1 second", self.time_limit),
            ));
        }
        for (option, value) in [
            ("qos", &self.qos),
            ("account", &self.account),
            ("partition", &self.partition),
            ("gres", &self.gres),
            ("constraint", &self.constraint),
        ] {
            if let Some(v) = value {
                if v.trim().is_empty() {
                    return Err(SlurmError::config(option, "is blank: give a value or None"));
                }
                if v.chars().any(char::is_control) {
                    return Err(SlurmError::config(
                        option,
                        format!("{v:?} contains control characters"),
                    ));
                }
            }
        }
        for a in &self.extra_sbatch_args {
            if a.trim().is_empty() {
                return Err(SlurmError::config(
                    "extra_sbatch_args",
                    "contains a blank argument",
                ));
            }
            let flag = a.split('=').next().unwrap_or(a);
            if RESERVED_FLAGS.contains(&flag) {
                return Err(SlurmError::config(
                    "extra_sbatch_args",
                    format!("{a:?} is set by slurptuna itself; remove it"),
                ));
            }
        }
        if self.array_parallelism_limit == Some(0) {
            return Err(SlurmError::config(
                "array_parallelism_limit",
                "must be > 0 when given (None means no cap)",
            ));
        }
        if self.poll_interval.is_zero() {
            return Err(SlurmError::config("poll_interval", "must be > 0"));
        }
        if self.result_check_interval.is_zero() {
            return Err(SlurmError::config("result_check_interval", "must be > 0"));
        }
        if self.attempt_timeout.is_zero() {
            return Err(SlurmError::config("attempt_timeout", "must be > 0"));
        }
        if self.worker_parallelism == 0 {
            return Err(SlurmError::config(
                "worker_parallelism",
                "must be at least 1",
            ));
        }
        if self.job_name_prefix.is_empty()
            || !self
                .job_name_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(SlurmError::config(
                "job_name_prefix",
                format!(
                    "{:?} must be non-empty and use only letters, digits, '_', '-' or '.'",
                    self.job_name_prefix
                ),
            ));
        }
        Ok(())
    }
}

fn valid_memory(s: &str) -> bool {
    let digits = s.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    let suffix_len = s.len() - digits.len();
    suffix_len <= 1
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.parse::<u64>().is_ok_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> SlurmConfig {
        SlurmConfig {
            program: "/bin/true".into(),
            ..Default::default()
        }
    }

    #[test]
    fn default_is_valid() {
        ok().validate().unwrap();
    }

    #[test]
    fn each_bad_option_is_named() {
        let cases: Vec<(SlurmConfig, &str)> = vec![
            (
                SlurmConfig {
                    program: "".into(),
                    ..ok()
                },
                "program",
            ),
            (
                SlurmConfig {
                    cpus_per_task: 0,
                    ..ok()
                },
                "cpus_per_task",
            ),
            (
                SlurmConfig {
                    mem_per_cpu: "2GB".into(),
                    ..ok()
                },
                "mem_per_cpu",
            ),
            (
                SlurmConfig {
                    mem_per_cpu: "".into(),
                    ..ok()
                },
                "mem_per_cpu",
            ),
            (
                SlurmConfig {
                    mem_per_cpu: "G".into(),
                    ..ok()
                },
                "mem_per_cpu",
            ),
            (
                SlurmConfig {
                    mem_per_cpu: "0".into(),
                    ..ok()
                },
                "mem_per_cpu",
            ),
            (
                SlurmConfig {
                    mem_per_cpu: "1.5G".into(),
                    ..ok()
                },
                "mem_per_cpu",
            ),
            (
                SlurmConfig {
                    time_limit: Duration::from_millis(999),
                    ..ok()
                },
                "time_limit",
            ),
            (
                SlurmConfig {
                    qos: Some("  ".into()),
                    ..ok()
                },
                "qos",
            ),
            (
                SlurmConfig {
                    account: Some("".into()),
                    ..ok()
                },
                "account",
            ),
            (
                SlurmConfig {
                    partition: Some("a\nb".into()),
                    ..ok()
                },
                "partition",
            ),
            (
                SlurmConfig {
                    gres: Some(" ".into()),
                    ..ok()
                },
                "gres",
            ),
            (
                SlurmConfig {
                    constraint: Some("".into()),
                    ..ok()
                },
                "constraint",
            ),
            (
                SlurmConfig {
                    extra_sbatch_args: vec!["--array=1".into()],
                    ..ok()
                },
                "extra_sbatch_args",
            ),
            (
                SlurmConfig {
                    extra_sbatch_args: vec![" ".into()],
                    ..ok()
                },
                "extra_sbatch_args",
            ),
            (
                SlurmConfig {
                    array_parallelism_limit: Some(0),
                    ..ok()
                },
                "array_parallelism_limit",
            ),
            (
                SlurmConfig {
                    poll_interval: Duration::ZERO,
                    ..ok()
                },
                "poll_interval",
            ),
            (
                SlurmConfig {
                    attempt_timeout: Duration::ZERO,
                    ..ok()
                },
                "attempt_timeout",
            ),
            (
                SlurmConfig {
                    worker_parallelism: 0,
                    ..ok()
                },
                "worker_parallelism",
            ),
            (
                SlurmConfig {
                    job_name_prefix: "a b".into(),
                    ..ok()
                },
                "job_name_prefix",
            ),
        ];
        for (cfg, option) in cases {
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.contains(&format!("'{option}'")), "{option}: {e}");
        }
        for mem in ["2G", "500M", "1024", "3t", "64K"] {
            SlurmConfig {
                mem_per_cpu: mem.into(),
                ..ok()
            }
            .validate()
            .unwrap();
        }
        SlurmConfig {
            extra_sbatch_args: vec!["--exclusive".into(), "--nice=10".into()],
            ..ok()
        }
        .validate()
        .unwrap();
    }
}
