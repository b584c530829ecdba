//! [`SlurmOptions`]: Slurm's own options of the Slurm backend, in one struct, with their one
//! validator.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use slurptuna_core::batch::BatchConfig;
use slurptuna_core::{Backend, BackendEnv, CoreError, DistributedOptions, Executor};

use crate::executor::SlurmExecutor;

/// Slurm's own options of the Slurm backend (DISTRIBUTED mode); the scheduler-independent ones
/// (poll interval, attempt timeout, retries, cap on running tasks, and the resources every task
/// asks for: CPUs, memory, time limit, QoS) come as a [`DistributedOptions`], which the
/// `slurptuna` facade builds from the seed's keyword arguments and checks once.
///
/// Together they make the executor's [`BatchConfig`] ([`SlurmOptions::batch_config`]); the
/// resources and these options go to `sbatch` by reference ([`crate::SubmitRequest`]).
///
/// As a [`slurptuna_core::Backend`] it validates itself, records its settings in `meta.json`,
/// and builds a [`SlurmExecutor`] over the real commands ([`crate::CliSlurm`]).
///
/// ```
/// use std::time::Duration;
/// use slurptuna_core::DistributedOptions;
/// use slurptuna_exec_slurm::SlurmOptions;
/// let opts = SlurmOptions {
///     slurm_partition: Some("gpu".into()),
///     ..Default::default()
/// };
/// assert!(opts.validate().is_ok());
/// let distributed = DistributedOptions {
///     poll_interval: Duration::from_secs(5),
///     ..DistributedOptions::seed_defaults()
/// };
/// assert_eq!(opts.batch_config(&distributed).poll_interval, Duration::from_secs(5));
/// let bad = SlurmOptions { slurm_partition: Some(" ".into()), ..opts };
/// assert!(bad.validate().unwrap_err().to_string().contains("slurm_partition"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct SlurmOptions {
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
    /// Most calls to Slurm (`sbatch`, `squeue`, `sacct`, `scancel`, `scontrol`) per second,
    /// sustained, across every trial and entry of the executor; bursts of up to 10 calls go
    /// at once. slurmctld limits each user's RPC rate (a bucket of 30, refilled at 2 per second
    /// by default) and its administrators ask clients not to call in loops. Default 1.
    pub slurm_rpc_per_second: f64,
    /// `--requeue` (default `true`): a task preempted, or whose node failed, goes back to the
    /// queue and runs its chunk again from the start; it is not a failed attempt (a chunk's
    /// result is written whole at its end, so a task stopped midway publishes nothing).
    /// `false` passes `--no-requeue`: such a task ends, and its chunk is retried as a failed
    /// attempt.
    pub slurm_requeue: bool,
    /// Most requeues of one task (seen as a task `squeue` listed running, then pending again)
    /// before it is cancelled and its chunk fails with the reason, instead of looping. Default 5
    /// (Slurm's own `MaxBatchRequeue`).
    pub slurm_max_requeues: u32,
}

impl Default for SlurmOptions {
    fn default() -> Self {
        // The defaults shared with other schedulers have one source: the batch layer's.
        let batch = BatchConfig::default();
        Self {
            slurm_account: None,
            slurm_partition: None,
            slurm_gres: None,
            slurm_constraint: None,
            slurm_extra_args: Vec::new(),
            job_name_prefix: batch.job_name_prefix,
            scratch_dir: batch.scratch_dir,
            result_check_interval: batch.result_check_interval,
            slurm_rpc_per_second: 1.0,
            slurm_requeue: true,
            slurm_max_requeues: 5,
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

impl SlurmOptions {
    /// Checks every option of this struct: the one validator of Slurm's own options (the
    /// [`DistributedOptions`] are checked by whoever builds them, the facade under the seed's
    /// names). An error is [`CoreError::InvalidOption`] naming the field (`slurm_partition`,
    /// `slurm_extra_args`, `job_name_prefix`, ...) and saying what is expected.
    pub fn validate(&self) -> Result<(), CoreError> {
        for (option, value) in [
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
        if !(self.slurm_rpc_per_second.is_finite() && self.slurm_rpc_per_second > 0.0) {
            return Err(CoreError::option(
                "slurm_rpc_per_second",
                format!(
                    "is {}: give a positive number of calls per second (default 1)",
                    self.slurm_rpc_per_second
                ),
            ));
        }
        // `result_check_interval`, `job_name_prefix` and `scratch_dir` follow the batch layer's
        // rules (one source): checked next to the seed's policy, which is valid, so an error can
        // only name one of them, under the same name as here.
        self.batch_config(&DistributedOptions::seed_defaults())
            .validate()
    }

    /// The batch layer's configuration: the policy of `distributed` (poll interval, attempt
    /// timeout, retries, cap on running tasks) with this struct's result check interval, job
    /// name prefix and scratch directory (`keep_jobs_on_cancel` is off;
    /// [`SlurmExecutor::keep_jobs_on_cancel`] sets it).
    pub fn batch_config(&self, distributed: &DistributedOptions) -> BatchConfig {
        BatchConfig {
            result_check_interval: self.result_check_interval,
            job_name_prefix: self.job_name_prefix.clone(),
            scratch_dir: self.scratch_dir.clone(),
            ..BatchConfig::new(distributed)
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

    /// Slurm's own options that are set, under their field names: `slurm_account`,
    /// `slurm_partition`, `slurm_gres`, `slurm_constraint`, `slurm_extra_args` (the seed's
    /// scheduler-independent knobs, `slurm_qos` and the others, are recorded by the facade).
    fn settings(&self) -> Map<String, Value> {
        let mut m = Map::new();
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
        if !self.slurm_requeue {
            m.insert("slurm_requeue".into(), json!(false));
        }
        if self.slurm_max_requeues != SlurmOptions::default().slurm_max_requeues {
            m.insert("slurm_max_requeues".into(), json!(self.slurm_max_requeues));
        }
        if self.slurm_rpc_per_second != SlurmOptions::default().slurm_rpc_per_second {
            m.insert(
                "slurm_rpc_per_second".into(),
                json!(self.slurm_rpc_per_second),
            );
        }
        m
    }

    /// A [`SlurmExecutor`] over the real commands ([`crate::CliSlurm`]) with `env.distributed`,
    /// running `env.worker` with `env.worker_parallelism` threads per task, keeping its jobs on
    /// an interrupt when `env.keep_jobs_on_interrupt`.
    fn executor(&self, env: &BackendEnv<'_>) -> Result<Arc<dyn Executor>, CoreError> {
        SlurmOptions::validate(self)?;
        Ok(Arc::new(
            SlurmExecutor::cli(
                self.clone(),
                env.distributed.clone(),
                env.worker.clone(),
                env.worker_parallelism,
            )
            .keep_jobs_on_cancel(env.keep_jobs_on_interrupt),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slurptuna_core::WorkerCommand;

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
                slurm_account: None,
                slurm_partition: None,
                slurm_gres: None,
                slurm_constraint: None,
                slurm_extra_args: vec![],
                job_name_prefix: "slurptuna".into(),
                scratch_dir: None,
                result_check_interval: Duration::from_millis(200),
                slurm_rpc_per_second: 1.0,
                slurm_requeue: true,
                slurm_max_requeues: 5,
            }
        );
        assert_eq!(
            d.batch_config(&DistributedOptions::seed_defaults()),
            BatchConfig::default()
        );
    }

    #[test]
    fn each_bad_option_is_named() {
        let ok = SlurmOptions::default;
        let cases: Vec<(SlurmOptions, &str)> = vec![
            (
                SlurmOptions {
                    slurm_account: Some("".into()),
                    ..ok()
                },
                "slurm_account",
            ),
            (
                SlurmOptions {
                    slurm_account: Some("a\nb".into()),
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
                    slurm_partition: Some("  ".into()),
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
                    job_name_prefix: "a b".into(),
                    ..ok()
                },
                "job_name_prefix",
            ),
            (
                SlurmOptions {
                    job_name_prefix: String::new(),
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
            (
                SlurmOptions {
                    slurm_rpc_per_second: 0.0,
                    ..ok()
                },
                "slurm_rpc_per_second",
            ),
            (
                SlurmOptions {
                    slurm_rpc_per_second: f64::NAN,
                    ..ok()
                },
                "slurm_rpc_per_second",
            ),
        ];
        for (o, option) in cases {
            assert_eq!(option_of(&o), option, "{o:?}");
            let msg = o.validate().unwrap_err().to_string();
            assert!(msg.contains(&format!("'{option}'")), "{msg}");
        }
        SlurmOptions {
            slurm_extra_args: vec!["--exclusive".into(), "--nice=10".into()],
            slurm_account: Some("lab".into()),
            slurm_partition: Some("gpu".into()),
            slurm_gres: Some("gpu:1".into()),
            slurm_constraint: Some("a100".into()),
            job_name_prefix: "my.study_2-x".into(),
            scratch_dir: Some("/scratch".into()),
            result_check_interval: Duration::from_millis(1),
            slurm_rpc_per_second: 50.0,
            slurm_requeue: false,
            slurm_max_requeues: 0,
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn policy_options_become_the_batch_config() {
        let o = SlurmOptions {
            job_name_prefix: "p".into(),
            scratch_dir: Some("/scratch".into()),
            result_check_interval: Duration::from_millis(30),
            ..Default::default()
        };
        let distributed = DistributedOptions {
            poll_interval: Duration::from_millis(500),
            attempt_timeout: Duration::from_secs(90),
            trial_retry_attempts: 3,
            fail_on_chunk_error: false,
            array_parallelism_limit: Some(7),
            max_queued_tasks: Some(40),
            ..DistributedOptions::seed_defaults()
        };
        assert_eq!(
            o.batch_config(&distributed),
            BatchConfig {
                poll_interval: Duration::from_millis(500),
                result_check_interval: Duration::from_millis(30),
                attempt_timeout: Duration::from_secs(90),
                trial_retry_attempts: 3,
                fail_on_chunk_error: false,
                array_parallelism_limit: Some(7),
                max_queued_tasks: Some(40),
                keep_jobs_on_cancel: false,
                job_name_prefix: "p".into(),
                scratch_dir: Some("/scratch".into()),
            }
        );
        // The resources are not the batch layer's: they go to sbatch.
        let other_resources = DistributedOptions {
            resources: slurptuna_core::TaskResources {
                cpus_per_task: 8,
                qos: None,
                ..distributed.resources.clone()
            },
            ..distributed.clone()
        };
        assert_eq!(
            o.batch_config(&other_resources),
            o.batch_config(&distributed)
        );
    }

    #[test]
    fn backend_name_and_settings_are_slurms_own_options_when_set() {
        let d = SlurmOptions::default();
        assert_eq!(Backend::name(&d), "slurm");
        assert_eq!(Value::Object(Backend::settings(&d)), json!({}));
        let o = SlurmOptions {
            slurm_account: Some("lab".into()),
            slurm_partition: Some("gpu".into()),
            slurm_gres: Some("gpu:1".into()),
            slurm_constraint: Some("a100".into()),
            slurm_extra_args: vec!["--exclusive".into()],
            ..d
        };
        assert_eq!(
            Value::Object(Backend::settings(&o)),
            json!({
                "slurm_account": "lab",
                "slurm_partition": "gpu",
                "slurm_gres": "gpu:1",
                "slurm_constraint": "a100",
                "slurm_extra_args": ["--exclusive"],
            })
        );
        let partial = SlurmOptions {
            slurm_partition: Some("debug".into()),
            ..Default::default()
        };
        assert_eq!(
            Value::Object(Backend::settings(&partial)),
            json!({"slurm_partition": "debug"})
        );
        assert!(Backend::validate(&o).is_ok());
        assert!(Backend::validate(&SlurmOptions {
            slurm_gres: Some("".into()),
            ..o
        })
        .is_err());
    }

    #[test]
    fn backend_builds_a_slurm_executor_or_names_the_bad_option() {
        let loss = slurptuna_core::testing::suite_loss();
        let worker = WorkerCommand {
            program: "/bin/true".into(),
            args: vec![],
            cwd: "/".into(),
        };
        let distributed = DistributedOptions::seed_defaults();
        let env = BackendEnv {
            loss: &loss,
            worker: &worker,
            worker_parallelism: 2,
            keep_jobs_on_interrupt: true,
            distributed: &distributed,
        };
        let exec = Backend::executor(&SlurmOptions::default(), &env).unwrap();
        assert_eq!(exec.name(), "slurm");
        let bad = SlurmOptions {
            slurm_extra_args: vec!["--wrap=x".into()],
            ..Default::default()
        };
        match Backend::executor(&bad, &env) {
            Err(CoreError::InvalidOption { option, .. }) => assert_eq!(option, "slurm_extra_args"),
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("an invalid option built an executor"),
        }
    }
}
