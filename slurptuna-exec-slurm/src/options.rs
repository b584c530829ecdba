//! [`SlurmOptions`]: every option of the Slurm backend, in one struct, with the one validator.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use slurptuna_core::batch::BatchConfig;
use slurptuna_core::{Backend, BackendEnv, CoreError, Executor};

use crate::executor::SlurmExecutor;

/// The options of the Slurm backend (DISTRIBUTED mode), under the names and with the defaults
/// of the Python original's keyword arguments. This is the one place Slurm options exist: the
/// scheduler-independent ones become a [`BatchConfig`] ([`SlurmOptions::batch_config`]), the
/// resources go to `sbatch` by reference ([`crate::SubmitRequest::options`]).
///
/// As a [`slurptuna_core::Backend`] it validates itself, records its settings in `meta.json`,
/// and builds a [`SlurmExecutor`] over the real commands ([`crate::CliSlurm`]).
///
/// ```
/// use std::time::Duration;
/// use slurptuna_exec_slurm::SlurmOptions;
/// let opts = SlurmOptions {
///     mem_per_cpu: "500M".into(),
///     worker_time_limit: Duration::from_secs(600),
///     slurm_partition: Some("gpu".into()),
///     ..Default::default()
/// };
/// assert!(opts.validate().is_ok());
/// assert_eq!(opts.batch_config().poll_interval, Duration::from_secs(15));
/// let bad = SlurmOptions { mem_per_cpu: "4gb".into(), ..opts };
/// assert!(bad.validate().unwrap_err().to_string().contains("mem_per_cpu"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct SlurmOptions {
    /// How often (seconds) the controller asks Slurm (`squeue`, one call for all live jobs)
    /// for task states; a failed task is noticed within one interval. Default 15.
    pub slurm_poll_seconds: f64,
    /// Upper bound (minutes) on one attempt of a chunk task, counted from submission, so queue
    /// time counts; a task unfinished then is cancelled and retried if attempts remain.
    /// Default 120.
    pub slurm_timeout_minutes: f64,
    /// `--cpus-per-task`. Default 1.
    pub cpus_per_task: u32,
    /// `--mem-per-cpu`: a whole number > 0 with an optional `K`, `M`, `G` or `T` suffix (any
    /// case; no suffix means megabytes), like `2G`, `500M` or `1024`. Default `2G`.
    pub mem_per_cpu: String,
    /// Cap on running array tasks across all trials and entries of one call (each array also
    /// carries `%limit`). `None` (default): no cap.
    pub array_parallelism_limit: Option<u64>,
    /// `--time` of every task (Slurm rounds up to whole minutes). At least 1 second.
    /// Default 2 hours.
    pub worker_time_limit: Duration,
    /// `--qos`, or `None` for none. Default `short`. A QoS that sbatch rejects fails the run
    /// with a clear error; there is no silent retry without it.
    pub slurm_qos: Option<String>,
    /// Retries of a failed attempt: default 1, i.e. two attempts. Only chunks without a result
    /// are resubmitted.
    pub trial_retry_attempts: u32,
    /// On a failed chunk: cancel the trial's other tasks and retry its missing chunks (`true`,
    /// default), or keep them running and retry only the failed chunk (`false`).
    pub fail_on_chunk_error: bool,
    /// `--account`. Default `None`.
    pub slurm_account: Option<String>,
    /// `--partition`. Default `None` (the cluster's default partition).
    pub slurm_partition: Option<String>,
    /// `--gres` (e.g. `gpu:1`). Default `None`.
    pub slurm_gres: Option<String>,
    /// `--constraint`. Default `None`.
    pub slurm_constraint: Option<String>,
    /// Further sbatch arguments, each passed as one argument as given (no shell). Flags the
    /// backend sets itself (`--array`, `--output`, `--error`, `--chdir`, `--parsable`, `--wrap`,
    /// `--job-name`, `--export`) are refused. Default empty.
    pub slurm_extra_args: Vec<String>,
    /// First part of every job name (`<prefix>-<loss>[-<entry>]-t<trial>-<token>`). Letters,
    /// digits, `_`, `-` and `.` only. Default `slurptuna`.
    pub job_name_prefix: String,
    /// Directory for the files of trials the store gives no directory (in-memory stores); it
    /// must be visible from the compute nodes. Default `None`.
    pub scratch_dir: Option<PathBuf>,
    /// How often the controller looks for finished chunk results in the trial directories (a
    /// file check between two `squeue`s). Default 200 ms.
    pub result_check_interval: Duration,
}

impl Default for SlurmOptions {
    fn default() -> Self {
        // The scheduler-independent defaults have one source: the batch layer's.
        let batch = BatchConfig::default();
        Self {
            slurm_poll_seconds: batch.poll_interval.as_secs_f64(),
            slurm_timeout_minutes: batch.attempt_timeout.as_secs_f64() / 60.0,
            cpus_per_task: 1,
            mem_per_cpu: "2G".to_string(),
            array_parallelism_limit: batch.array_parallelism_limit,
            worker_time_limit: Duration::from_secs(2 * 3600),
            slurm_qos: Some("short".to_string()),
            trial_retry_attempts: batch.trial_retry_attempts,
            fail_on_chunk_error: batch.fail_on_chunk_error,
            slurm_account: None,
            slurm_partition: None,
            slurm_gres: None,
            slurm_constraint: None,
            slurm_extra_args: Vec::new(),
            job_name_prefix: batch.job_name_prefix,
            scratch_dir: batch.scratch_dir,
            result_check_interval: batch.result_check_interval,
        }
    }
}

/// Flags the backend sets itself; `slurm_extra_args` may not repeat them.
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
    "--export",
];

/// A whole number > 0 with an optional single `K`/`M`/`G`/`T` suffix (any case), no spaces.
fn valid_memory(s: &str) -> bool {
    let digits = s
        .strip_suffix(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't'])
        .unwrap_or(s);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.parse::<u64>().is_ok_and(|n| n > 0)
}

/// `x` seconds as a duration, or `None` when that is not a duration > 0.
fn positive_duration(secs: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
}

impl SlurmOptions {
    /// Checks every option: the one validator of the Slurm backend. An error is
    /// [`CoreError::InvalidOption`] naming the option (`mem_per_cpu`, `slurm_qos`, ...) and
    /// saying what is expected.
    pub fn validate(&self) -> Result<(), CoreError> {
        for (option, value, unit) in [
            ("slurm_poll_seconds", self.slurm_poll_seconds, 1.0),
            ("slurm_timeout_minutes", self.slurm_timeout_minutes, 60.0),
        ] {
            if !(value.is_finite() && value > 0.0 && positive_duration(value * unit).is_some()) {
                return Err(CoreError::option(
                    option,
                    format!("must be a finite number > 0, got {value}"),
                ));
            }
        }
        if self.cpus_per_task == 0 {
            return Err(CoreError::option("cpus_per_task", "must be at least 1"));
        }
        if !valid_memory(&self.mem_per_cpu) {
            return Err(CoreError::option(
                "mem_per_cpu",
                format!(
                    "{:?} is not a Slurm memory size: use a whole number > 0 with an optional K, M, G or T suffix and no spaces, like 2G, 500M or 1024",
                    self.mem_per_cpu
                ),
            ));
        }
        if self.worker_time_limit < Duration::from_secs(1) {
            return Err(CoreError::option(
                "worker_time_limit",
                format!(
                    "is {:?}: a task needs at least 1 second",
                    self.worker_time_limit
                ),
            ));
        }
        for (option, value) in [
            ("slurm_qos", &self.slurm_qos),
            ("slurm_account", &self.slurm_account),
            ("slurm_partition", &self.slurm_partition),
            ("slurm_gres", &self.slurm_gres),
            ("slurm_constraint", &self.slurm_constraint),
        ] {
            if let Some(v) = value {
                if v.trim().is_empty() {
                    return Err(CoreError::option(
                        option,
                        "is blank: give a non-empty value or None",
                    ));
                }
                if v.chars().any(char::is_control) {
                    return Err(CoreError::option(
                        option,
                        format!("{v:?} contains control characters"),
                    ));
                }
            }
        }
        for a in &self.slurm_extra_args {
            if a.trim().is_empty() {
                return Err(CoreError::option(
                    "slurm_extra_args",
                    "contains a blank argument",
                ));
            }
            let flag = a.split('=').next().unwrap_or(a);
            if RESERVED_FLAGS.contains(&flag) {
                return Err(CoreError::option(
                    "slurm_extra_args",
                    format!("{a:?} is set by slurptuna itself; remove it"),
                ));
            }
        }
        // The scheduler-independent options, under this struct's names.
        self.batch_config().validate().map_err(|e| match e {
            CoreError::InvalidOption { option, reason } => CoreError::InvalidOption {
                option: match option {
                    "poll_interval" => "slurm_poll_seconds",
                    "attempt_timeout" => "slurm_timeout_minutes",
                    other => other,
                },
                reason,
            },
            other => other,
        })
    }

    /// The scheduler-independent part of these options, for the batch layer's executor
    /// (`keep_jobs_on_cancel` is off; [`SlurmExecutor::keep_jobs_on_cancel`] sets it).
    pub fn batch_config(&self) -> BatchConfig {
        let secs = |s: f64| positive_duration(s).unwrap_or(Duration::ZERO);
        BatchConfig {
            poll_interval: secs(self.slurm_poll_seconds),
            result_check_interval: self.result_check_interval,
            attempt_timeout: secs(self.slurm_timeout_minutes * 60.0),
            trial_retry_attempts: self.trial_retry_attempts,
            fail_on_chunk_error: self.fail_on_chunk_error,
            array_parallelism_limit: self.array_parallelism_limit,
            keep_jobs_on_cancel: false,
            job_name_prefix: self.job_name_prefix.clone(),
            scratch_dir: self.scratch_dir.clone(),
        }
    }
}

impl Backend for SlurmOptions {
    fn name(&self) -> &'static str {
        "slurm"
    }

    fn validate(&self) -> Result<(), CoreError> {
        SlurmOptions::validate(self)
    }

    /// The settings under the original's `meta.json` names: `array_parallelism_limit`,
    /// `worker_time_limit_seconds` (whole seconds), `slurm_qos` (null when `None`), the poll,
    /// timeout, resource and retry options, and the account, partition, gres, constraint and
    /// extra arguments when set.
    fn settings(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(
            "array_parallelism_limit".into(),
            json!(self.array_parallelism_limit),
        );
        m.insert(
            "worker_time_limit_seconds".into(),
            json!(self.worker_time_limit.as_secs()),
        );
        m.insert("slurm_qos".into(), json!(self.slurm_qos));
        m.insert("slurm_poll_seconds".into(), json!(self.slurm_poll_seconds));
        m.insert(
            "slurm_timeout_minutes".into(),
            json!(self.slurm_timeout_minutes),
        );
        m.insert("cpus_per_task".into(), json!(self.cpus_per_task));
        m.insert("mem_per_cpu".into(), json!(self.mem_per_cpu));
        m.insert(
            "trial_retry_attempts".into(),
            json!(self.trial_retry_attempts),
        );
        m.insert(
            "fail_on_chunk_error".into(),
            json!(self.fail_on_chunk_error),
        );
        for (key, value) in [
            ("slurm_account", &self.slurm_account),
            ("slurm_partition", &self.slurm_partition),
            ("slurm_gres", &self.slurm_gres),
            ("slurm_constraint", &self.slurm_constraint),
        ] {
            if let Some(v) = value {
                m.insert(key.into(), json!(v));
            }
        }
        if !self.slurm_extra_args.is_empty() {
            m.insert("slurm_extra_args".into(), json!(self.slurm_extra_args));
        }
        m
    }

    /// A [`SlurmExecutor`] over the real commands ([`crate::CliSlurm`]), running `env.worker`
    /// with `env.worker_parallelism` threads per task, keeping its jobs on an interrupt when
    /// `env.keep_jobs_on_interrupt`.
    fn executor(&self, env: &BackendEnv<'_>) -> Result<Arc<dyn Executor>, CoreError> {
        SlurmOptions::validate(self)?;
        Ok(Arc::new(
            SlurmExecutor::cli(self.clone(), env.worker.clone(), env.worker_parallelism)
                .keep_jobs_on_cancel(env.keep_jobs_on_interrupt),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option_of(o: &SlurmOptions) -> &'static str {
        match o.validate() {
            Err(CoreError::InvalidOption { option, reason }) => {
                assert!(!reason.is_empty());
                option
            }
            other => panic!("expected an invalid option, got {other:?} for {o:?}"),
        }
    }

    #[test]
    fn defaults_are_the_seeds_and_valid() {
        let d = SlurmOptions::default();
        d.validate().unwrap();
        assert_eq!(
            d,
            SlurmOptions {
                slurm_poll_seconds: 15.0,
                slurm_timeout_minutes: 120.0,
                cpus_per_task: 1,
                mem_per_cpu: "2G".into(),
                array_parallelism_limit: None,
                worker_time_limit: Duration::from_secs(7200),
                slurm_qos: Some("short".into()),
                trial_retry_attempts: 1,
                fail_on_chunk_error: true,
                slurm_account: None,
                slurm_partition: None,
                slurm_gres: None,
                slurm_constraint: None,
                slurm_extra_args: vec![],
                job_name_prefix: "slurptuna".into(),
                scratch_dir: None,
                result_check_interval: Duration::from_millis(200),
            }
        );
        assert_eq!(d.batch_config(), BatchConfig::default());
    }

    #[test]
    fn each_bad_option_is_named() {
        let ok = SlurmOptions::default;
        let cases: Vec<(SlurmOptions, &str)> = vec![
            (
                SlurmOptions {
                    slurm_poll_seconds: 0.0,
                    ..ok()
                },
                "slurm_poll_seconds",
            ),
            (
                SlurmOptions {
                    slurm_poll_seconds: -1.0,
                    ..ok()
                },
                "slurm_poll_seconds",
            ),
            (
                SlurmOptions {
                    slurm_poll_seconds: f64::NAN,
                    ..ok()
                },
                "slurm_poll_seconds",
            ),
            (
                SlurmOptions {
                    slurm_poll_seconds: 1e-12,
                    ..ok()
                },
                "slurm_poll_seconds",
            ),
            (
                SlurmOptions {
                    slurm_poll_seconds: f64::INFINITY,
                    ..ok()
                },
                "slurm_poll_seconds",
            ),
            (
                SlurmOptions {
                    slurm_timeout_minutes: 0.0,
                    ..ok()
                },
                "slurm_timeout_minutes",
            ),
            (
                SlurmOptions {
                    slurm_timeout_minutes: 1e300,
                    ..ok()
                },
                "slurm_timeout_minutes",
            ),
            (
                SlurmOptions {
                    cpus_per_task: 0,
                    ..ok()
                },
                "cpus_per_task",
            ),
            (
                SlurmOptions {
                    mem_per_cpu: "4gb".into(),
                    ..ok()
                },
                "mem_per_cpu",
            ),
            (
                SlurmOptions {
                    worker_time_limit: Duration::from_millis(999),
                    ..ok()
                },
                "worker_time_limit",
            ),
            (
                SlurmOptions {
                    slurm_qos: Some("  ".into()),
                    ..ok()
                },
                "slurm_qos",
            ),
            (
                SlurmOptions {
                    slurm_qos: Some("a\nb".into()),
                    ..ok()
                },
                "slurm_qos",
            ),
            (
                SlurmOptions {
                    slurm_account: Some("".into()),
                    ..ok()
                },
                "slurm_account",
            ),
            (
                SlurmOptions {
                    slurm_partition: Some("a\tb".into()),
                    ..ok()
                },
                "slurm_partition",
            ),
            (
                SlurmOptions {
                    slurm_gres: Some(" ".into()),
                    ..ok()
                },
                "slurm_gres",
            ),
            (
                SlurmOptions {
                    slurm_constraint: Some("".into()),
                    ..ok()
                },
                "slurm_constraint",
            ),
            (
                SlurmOptions {
                    slurm_extra_args: vec!["--array=1".into()],
                    ..ok()
                },
                "slurm_extra_args",
            ),
            (
                SlurmOptions {
                    slurm_extra_args: vec!["-J".into(), "x".into()],
                    ..ok()
                },
                "slurm_extra_args",
            ),
            (
                SlurmOptions {
                    slurm_extra_args: vec![" ".into()],
                    ..ok()
                },
                "slurm_extra_args",
            ),
            (
                SlurmOptions {
                    array_parallelism_limit: Some(0),
                    ..ok()
                },
                "array_parallelism_limit",
            ),
            (
                SlurmOptions {
                    job_name_prefix: "a b".into(),
                    ..ok()
                },
                "job_name_prefix",
            ),
            (
                SlurmOptions {
                    scratch_dir: Some(PathBuf::new()),
                    ..ok()
                },
                "scratch_dir",
            ),
            (
                SlurmOptions {
                    result_check_interval: Duration::ZERO,
                    ..ok()
                },
                "result_check_interval",
            ),
        ];
        for (o, option) in cases {
            assert_eq!(option_of(&o), option, "{o:?}");
            let msg = o.validate().unwrap_err().to_string();
            assert!(msg.contains(&format!("'{option}'")), "{msg}");
        }
        SlurmOptions {
            slurm_extra_args: vec!["--exclusive".into(), "--nice=10".into()],
            slurm_qos: None,
            array_parallelism_limit: Some(3),
            ..ok()
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn memory_sizes() {
        for good in ["2G", "500M", "1024", "64k", "3t", "1m", "8g"] {
            let o = SlurmOptions {
                mem_per_cpu: good.into(),
                ..Default::default()
            };
            assert!(o.validate().is_ok(), "{good}");
        }
        for bad in [
            "4gb", "0", "0G", "2 G", " 2G", "2G ", "-1G", "+1G", "1.5G", "", "G", "2X", "2GG",
            "１G",
        ] {
            let o = SlurmOptions {
                mem_per_cpu: bad.into(),
                ..Default::default()
            };
            assert_eq!(option_of(&o), "mem_per_cpu", "{bad:?}");
        }
    }

    #[test]
    fn policy_options_become_the_batch_config() {
        let o = SlurmOptions {
            slurm_poll_seconds: 0.5,
            slurm_timeout_minutes: 1.5,
            trial_retry_attempts: 3,
            fail_on_chunk_error: false,
            array_parallelism_limit: Some(7),
            job_name_prefix: "p".into(),
            scratch_dir: Some("/scratch".into()),
            result_check_interval: Duration::from_millis(30),
            ..Default::default()
        };
        assert_eq!(
            o.batch_config(),
            BatchConfig {
                poll_interval: Duration::from_millis(500),
                result_check_interval: Duration::from_millis(30),
                attempt_timeout: Duration::from_secs(90),
                trial_retry_attempts: 3,
                fail_on_chunk_error: false,
                array_parallelism_limit: Some(7),
                keep_jobs_on_cancel: false,
                job_name_prefix: "p".into(),
                scratch_dir: Some("/scratch".into()),
            }
        );
        // Invalid numbers never panic: they become zero, which the validator names.
        let bad = SlurmOptions {
            slurm_poll_seconds: f64::NAN,
            slurm_timeout_minutes: -3.0,
            ..Default::default()
        };
        assert_eq!(bad.batch_config().poll_interval, Duration::ZERO);
        assert_eq!(bad.batch_config().attempt_timeout, Duration::ZERO);
    }

    #[test]
    fn backend_name_and_settings_use_the_originals_keys() {
        let d = SlurmOptions::default();
        assert_eq!(Backend::name(&d), "slurm");
        let s = Value::Object(Backend::settings(&d));
        assert_eq!(
            s,
            json!({
                "array_parallelism_limit": null,
                "worker_time_limit_seconds": 7200,
                "slurm_qos": "short",
                "slurm_poll_seconds": 15.0,
                "slurm_timeout_minutes": 120.0,
                "cpus_per_task": 1,
                "mem_per_cpu": "2G",
                "trial_retry_attempts": 1,
                "fail_on_chunk_error": true,
            })
        );
        let o = SlurmOptions {
            slurm_qos: None,
            array_parallelism_limit: Some(4),
            worker_time_limit: Duration::from_millis(90_500),
            slurm_account: Some("lab".into()),
            slurm_partition: Some("gpu".into()),
            slurm_gres: Some("gpu:1".into()),
            slurm_constraint: Some("a100".into()),
            slurm_extra_args: vec!["--exclusive".into()],
            ..d
        };
        let s = Backend::settings(&o);
        assert_eq!(s["slurm_qos"], Value::Null);
        assert_eq!(s["array_parallelism_limit"], 4);
        assert_eq!(s["worker_time_limit_seconds"], 90);
        assert_eq!(s["slurm_account"], "lab");
        assert_eq!(s["slurm_partition"], "gpu");
        assert_eq!(s["slurm_gres"], "gpu:1");
        assert_eq!(s["slurm_constraint"], "a100");
        assert_eq!(s["slurm_extra_args"], json!(["--exclusive"]));
        assert!(Backend::validate(&SlurmOptions {
            cpus_per_task: 0,
            ..o
        })
        .is_err());
    }
}
