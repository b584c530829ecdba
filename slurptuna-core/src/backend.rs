//! The `Backend` trait: an execution backend as a value, with its own options.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{BoxError, CoreError, Result};
use crate::executor::Executor;
use crate::loss::LossDefinition;

/// How to start this program again as a worker: the program, its arguments, its working
/// directory. Workers are the user's own program; when it reaches `optimize_run` it sees that
/// it is a worker and evaluates what it was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerCommand {
    /// The program (by default the running one, `std::env::current_exe()`).
    pub program: PathBuf,
    /// Its arguments (the launcher's `argv[1..]` when `forward_sys_argv_to_workers`).
    pub args: Vec<OsString>,
    /// The working directory of the workers.
    pub cwd: PathBuf,
}

/// An amount of memory: a whole number > 0 of kibibytes, written like a batch scheduler's
/// memory option (`2G`, `500M`, `1024` — no suffix means megabytes —, `64K`, `1T`; the suffix in
/// any case, no spaces, no decimals).
///
/// ```
/// use slurptuna_core::MemorySize;
/// let m: MemorySize = "2G".parse().unwrap();
/// assert_eq!(m.megabytes(), 2048);
/// assert_eq!(m.to_string(), "2G");
/// assert_eq!("1024".parse::<MemorySize>().unwrap().to_string(), "1G");
/// for bad in ["4gb", "0", "2 G", "-1G", "1.5G", "", "G"] {
///     assert!(bad.parse::<MemorySize>().is_err(), "{bad}");
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemorySize {
    kib: u64,
}

impl MemorySize {
    /// `n` megabytes (mebibytes, as schedulers count them).
    pub fn from_megabytes(n: u64) -> Self {
        Self {
            kib: n.saturating_mul(1024),
        }
    }

    /// The size in kibibytes.
    pub fn kibibytes(self) -> u64 {
        self.kib
    }

    /// The size in mebibytes, rounded up.
    pub fn megabytes(self) -> u64 {
        self.kib.div_ceil(1024)
    }
}

impl FromStr for MemorySize {
    type Err = String;

    /// Parses `2G`, `500M`, `1024`, `64k`; the error says what is expected.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let expected = || {
            format!(
                "{s:?} is not a memory size: use a whole number > 0 with an optional K, M, G or T suffix, like 2G, 500M or 1024 (megabytes)"
            )
        };
        let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let shift = match s[digits.len()..].to_ascii_uppercase().as_str() {
            "K" => 0,
            "" | "M" => 10,
            "G" => 20,
            "T" => 30,
            _ => return Err(expected()),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(expected());
        }
        let n: u64 = digits.parse().map_err(|_| expected())?;
        let kib = n
            .checked_mul(1 << shift)
            .filter(|&k| k > 0)
            .ok_or_else(expected)?;
        Ok(MemorySize { kib })
    }
}

impl fmt::Display for MemorySize {
    /// The largest unit that is exact: `2G`, `1536M`, `64K`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [(30, 'T'), (20, 'G'), (10, 'M')];
        for (shift, unit) in units {
            if self.kib.is_multiple_of(1 << shift) {
                return write!(f, "{}{unit}", self.kib >> shift);
            }
        }
        write!(f, "{}K", self.kib)
    }
}

/// What every task of a job array asks of the scheduler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskResources {
    /// CPUs per task (the seed's `cpus_per_task`).
    pub cpus_per_task: u32,
    /// Memory per CPU (the seed's `mem_per_cpu`).
    pub mem_per_cpu: MemorySize,
    /// Wall-time limit of one task (the seed's `worker_time_limit`).
    pub time_limit: Duration,
    /// The scheduler's quality-of-service class for the tasks, if any (the seed's `slurm_qos`;
    /// a scheduler without such classes may refuse a value).
    pub qos: Option<String>,
}

/// The options of DISTRIBUTED mode that every batch scheduler honours, in scheduler-independent
/// terms. The facade builds them from the seed's keyword arguments (`slurm_poll_seconds`,
/// `slurm_timeout_minutes`, `cpus_per_task`, `mem_per_cpu`, `worker_time_limit`, `slurm_qos`,
/// `array_parallelism_limit`, `max_queued_tasks`, `trial_retry_attempts`, `fail_on_chunk_error`),
/// checking each once
/// under its seed name; a scheduler adds only its own options.
#[derive(Clone, Debug, PartialEq)]
pub struct DistributedOptions {
    /// How often the scheduler is asked for task states (one call for all live jobs).
    pub poll_interval: Duration,
    /// Upper bound on one attempt of a task, from submission (queue time counts).
    pub attempt_timeout: Duration,
    /// Retries after a failed attempt (1: two attempts in all).
    pub trial_retry_attempts: u32,
    /// On a failed chunk, cancel the trial's other tasks and retry its missing chunks (`true`),
    /// or retry only the failed chunk (`false`).
    pub fail_on_chunk_error: bool,
    /// Cap on tasks submitted and not finished across every trial and entry of one call.
    pub array_parallelism_limit: Option<u64>,
    /// Most tasks held in the scheduler's queue (pending or running) at once, across every
    /// trial and entry of one call. `None` (default): as many as the cluster lets the user hold
    /// (Slurm: the association's and QoS's submit limits, and half of `MaxJobCount`), read once
    /// at the first submission. The cluster's limits apply in any case.
    pub max_queued_tasks: Option<u64>,
    /// What each task asks for.
    pub resources: TaskResources,
}

impl DistributedOptions {
    /// The seed's defaults: poll every 15 s, 120 min per attempt, one retry, cancel on a failed
    /// chunk, no cap, 1 CPU with 2G per task for 2 hours, QoS `short`.
    pub fn seed_defaults() -> Self {
        Self {
            poll_interval: Duration::from_secs(15),
            attempt_timeout: Duration::from_secs(120 * 60),
            trial_retry_attempts: 1,
            fail_on_chunk_error: true,
            array_parallelism_limit: None,
            max_queued_tasks: None,
            resources: TaskResources {
                cpus_per_task: 1,
                mem_per_cpu: MemorySize::from_megabytes(2048),
                time_limit: Duration::from_secs(2 * 3600),
                qos: Some("short".to_string()),
            },
        }
    }
}

/// Checks a duration given in `unit`s (the seed gives `slurm_poll_seconds` and
/// `slurm_timeout_minutes` as numbers): finite and > 0. The error names `option`.
pub fn positive_duration(option: &'static str, value: f64, unit: Duration) -> Result<Duration> {
    if !(value.is_finite() && value > 0.0) {
        return Err(CoreError::option(
            option,
            format!("must be a number > 0, got {value}"),
        ));
    }
    match Duration::try_from_secs_f64(value * unit.as_secs_f64()) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(CoreError::option(
            option,
            format!("{value} is shorter than a nanosecond"),
        )),
        Err(e) => Err(CoreError::option(
            option,
            format!("{value} is out of range: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_are_whole_numbers_with_one_optional_unit() {
        for (ok, mb) in [
            ("2G", 2048),
            ("500M", 500),
            ("1024", 1024),
            ("64k", 1),
            ("1T", 1 << 20),
        ] {
            let m: MemorySize = ok.parse().unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(m.megabytes(), mb, "{ok}");
        }
        for bad in [
            "4gb", "0", "0G", "2 G", " 2G", "2G ", "-1G", "+1G", "1.5G", "", "G", "2X", "2GG",
            "１G",
        ] {
            let e = bad.parse::<MemorySize>().unwrap_err();
            assert!(e.contains("like 2G"), "{bad}: {e}");
        }
        assert_eq!(MemorySize::from_megabytes(1536).to_string(), "1536M");
        assert_eq!("64K".parse::<MemorySize>().unwrap().to_string(), "64K");
    }

    #[test]
    fn durations_must_be_finite_positive_and_representable() {
        let s = Duration::from_secs(1);
        assert_eq!(
            positive_duration("p", 1.5, s).unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(
            positive_duration("t", 2.0, Duration::from_secs(60)).unwrap(),
            Duration::from_secs(120)
        );
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-12, 1e300] {
            let e = positive_duration("slurm_poll_seconds", bad, s).unwrap_err();
            assert!(e.to_string().contains("'slurm_poll_seconds'"), "{bad}: {e}");
        }
    }
}

/// What a backend is given to build its executor for one `optimize_run` / `optimize_entries`
/// call (one executor serves every study of the call).
#[derive(Clone, Copy, Debug)]
pub struct BackendEnv<'a> {
    /// The loss being optimised (in-process backends call it; others re-execute
    /// [`BackendEnv::worker`], which builds it again).
    pub loss: &'a LossDefinition,
    /// How to start a worker.
    pub worker: &'a WorkerCommand,
    /// Seeds evaluated in parallel per worker.
    pub worker_parallelism: usize,
    /// On Ctrl-C / SIGTERM, leave work that outlives the controller (scheduler jobs) running for
    /// a resume instead of cancelling it.
    pub keep_jobs_on_interrupt: bool,
    /// The scheduler-independent options of DISTRIBUTED mode (checked already).
    pub distributed: &'a DistributedOptions,
}

/// An execution backend as a value: its options (validated by the backend itself, with errors
/// naming the option) and the [`Executor`] it builds.
///
/// The `slurptuna` facade selects a backend per execution mode; each scheduler crate provides
/// one (`slurptuna-exec-slurm`'s `SlurmOptions`), and users may write their own.
///
/// # Contract
/// - `validate` has no side effects and checks every option; `executor` may assume it passed.
/// - `settings` are recorded in the run's `meta.json` under the keys given (a backend keeps the
///   names its users know, e.g. the seed's `slurm_qos`).
/// - `run_worker` returns `Some` only in a process started as one of this backend's own
///   workers (after doing the work); the facade then exits the process. Workers of the shared
///   batch layer (`batch` feature) and local pool workers are recognised by the facade itself.
pub trait Backend: Send + Sync + fmt::Debug {
    /// A short name for logs, errors and `meta.json` (`"slurm"`).
    fn name(&self) -> &'static str;

    /// Checks every option; an error names the offending one.
    fn validate(&self) -> Result<()>;

    /// The backend's settings as it wants them recorded in `meta.json`.
    fn settings(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::Map::new()
    }

    /// Builds the executor shared by every study of one call.
    fn executor(&self, env: &BackendEnv<'_>) -> Result<Arc<dyn Executor>>;

    /// Does a worker's job if this process is one of this backend's own workers.
    fn run_worker(&self) -> Option<std::result::Result<(), BoxError>> {
        None
    }
}

impl<B: Backend + ?Sized> Backend for Arc<B> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn validate(&self) -> Result<()> {
        (**self).validate()
    }
    fn settings(&self) -> serde_json::Map<String, serde_json::Value> {
        (**self).settings()
    }
    fn executor(&self, env: &BackendEnv<'_>) -> Result<Arc<dyn Executor>> {
        (**self).executor(env)
    }
    fn run_worker(&self) -> Option<std::result::Result<(), BoxError>> {
        (**self).run_worker()
    }
}
