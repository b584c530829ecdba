//! `RunOptions` and `EntriesOptions`: the seed's keyword arguments, with its names and defaults.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use slurptuna_core::{Direction, ExecutionMode, Sampler};

/// Which sampler proposes parameters.
#[derive(Clone, Default)]
pub enum SamplerChoice {
    /// Tree-structured Parzen Estimator with Optuna 5's defaults (multivariate, constant liar)
    /// and a local refinement of the acquisition (see `samplers::TpeConfig`), seeded
    /// with `random_seed` (`random_seed + index` per entry). The default.
    #[default]
    Tpe,
    /// Uniform random search.
    Random,
    /// Scrambled Sobol quasi-random search.
    Qmc,
    /// A sampler of your own (it should be deterministic for a given history, see `Sampler`).
    Custom(Arc<dyn Sampler>),
}

impl fmt::Debug for SamplerChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SamplerChoice::Tpe => f.write_str("Tpe"),
            SamplerChoice::Random => f.write_str("Random"),
            SamplerChoice::Qmc => f.write_str("Qmc"),
            SamplerChoice::Custom(s) => write!(f, "Custom({})", s.name()),
        }
    }
}

/// Declares an options struct with the fields shared by `optimize_run` and `optimize_entries`,
/// plus its own, and a `Default` with the documented defaults.
macro_rules! options_struct {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty = $default:expr, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug)]
        pub struct $name {
            /// Target number of finished trials (complete or failed), **in total**: re-running a
            /// stopped run continues until this many have finished. Default 10.
            pub n_trials: u64,
            /// Explicit seeds, in order (any set, non-contiguous allowed). Highest priority.
            pub seeds: Option<Vec<u64>>,
            /// Number of contiguous seeds from the loss's `seed_start`.
            pub n_seeds: Option<u64>,
            /// Seeds per chunk: a chunk is one Slurm array task, and the unit of saved progress.
            /// Default 100. The last chunk may be shorter.
            pub chunk_size: Option<u64>,
            /// Number of chunks when neither `seeds` nor `n_seeds` is given (default 10, so 1,000 seeds).
            pub num_chunks: Option<u64>,
            /// Seed of the sampler. Default 123.
            pub random_seed: u64,
            /// Minimize (default) or maximize the mean loss.
            pub direction: Direction,
            /// SINGLE (in-process, default) or DISTRIBUTED (Slurm job arrays).
            pub mode: ExecutionMode,
            /// Where run directories go. Default `runs`.
            pub run_root: PathBuf,
            /// The program Slurm tasks run to evaluate seeds: by default this very program
            /// (`std::env::current_exe()`), which must reach the same `optimize_*` call.
            pub loss_module: Option<PathBuf>,
            /// How often (seconds) the controller asks Slurm for job states. Default 15.
            pub slurm_poll_seconds: f64,
            /// Upper bound (minutes) on one attempt of a trial in DISTRIBUTED mode, from submission
            /// (queue time counts). Default 120.
            pub slurm_timeout_minutes: f64,
            /// CPUs per Slurm task. Default 1.
            pub cpus_per_task: u32,
            /// Memory per CPU of Slurm tasks, like `2G` or `500M`. Default `2G`.
            pub mem_per_cpu: String,
            /// Trials evaluated at once (constant liar keeps their parameters apart). Default 1.
            pub max_concurrent_trials: usize,
            /// Cap on running Slurm array tasks across all trials (and entries) of this call.
            pub array_parallelism_limit: Option<u64>,
            /// Seeds evaluated in parallel per worker (threads, or processes with `use_processes`). Default 1.
            pub worker_parallelism: usize,
            /// Wall-time limit of one Slurm task (`--time`). Default 2 hours; at least 1 second.
            pub worker_time_limit: Duration,
            /// Slurm QoS (`--qos`); `None` for none. Default `short`. A rejected QoS is an error.
            pub slurm_qos: Option<String>,
            /// Retries of a failed trial attempt (DISTRIBUTED): default 1, i.e. two attempts.
            /// Only the chunks without a result are resubmitted.
            pub trial_retry_attempts: u32,
            /// DISTRIBUTED: on a failed chunk, cancel the trial's other tasks and retry (true, default),
            /// or keep them running and retry only the failed chunks (false).
            pub fail_on_chunk_error: bool,
            /// SINGLE: evaluate seeds in a pool of worker processes (this program re-executed) instead
            /// of threads, so a loss that aborts or segfaults fails its trial, not the run. Default false.
            pub use_processes: bool,
            /// Give workers this program's command-line arguments (so `main` reaches the same call).
            /// Default true.
            pub forward_sys_argv_to_workers: bool,
            /// Which sampler proposes parameters. Default TPE.
            pub sampler: SamplerChoice,
            /// Keep every per-seed value on disk (compact binary), not only the statistics. Default false.
            pub keep_seed_values: bool,
            /// Slurm `--account`.
            pub slurm_account: Option<String>,
            /// Slurm `--partition`.
            pub slurm_partition: Option<String>,
            /// Slurm `--gres` (e.g. `gpu:1`).
            pub slurm_gres: Option<String>,
            /// Slurm `--constraint`.
            pub slurm_constraint: Option<String>,
            /// Extra `sbatch` arguments, passed as given (each one argument, no shell).
            pub slurm_extra_args: Vec<String>,
            /// On Ctrl-C / SIGTERM, leave submitted Slurm jobs running so a resume re-adopts them
            /// (default false: they are cancelled).
            pub keep_jobs_on_interrupt: bool,
            /// Show a progress bar on stderr when it is a terminal (default true); otherwise
            /// progress goes to `tracing` events.
            pub progress: bool,
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                Self {
                    n_trials: 10,
                    seeds: None,
                    n_seeds: None,
                    chunk_size: None,
                    num_chunks: None,
                    random_seed: 123,
                    direction: Direction::Minimize,
                    mode: ExecutionMode::Single,
                    run_root: PathBuf::from("runs"),
                    loss_module: None,
                    slurm_poll_seconds: 15.0,
                    slurm_timeout_minutes: 120.0,
                    cpus_per_task: 1,
                    mem_per_cpu: "2G".to_string(),
                    max_concurrent_trials: 1,
                    array_parallelism_limit: None,
                    worker_parallelism: 1,
                    worker_time_limit: Duration::from_secs(2 * 3600),
                    slurm_qos: Some("short".to_string()),
                    trial_retry_attempts: 1,
                    fail_on_chunk_error: true,
                    use_processes: false,
                    forward_sys_argv_to_workers: true,
                    sampler: SamplerChoice::Tpe,
                    keep_seed_values: false,
                    slurm_account: None,
                    slurm_partition: None,
                    slurm_gres: None,
                    slurm_constraint: None,
                    slurm_extra_args: Vec::new(),
                    keep_jobs_on_interrupt: false,
                    progress: true,
                    $( $field: $default, )*
                }
            }
        }
    };
}

options_struct! {
    /// Options of [`crate::optimize_run`]. Build with `RunOptions { n_trials: 50, ..Default::default() }`.
    RunOptions {
        /// Entry id given to the loss's context (`optimize_entries` sets it per entry).
        entry_id: Option<String> = None,
        /// Run directory name under `run_root`. `None`: a new `<loss>_vNNNN`. An existing name
        /// resumes that run.
        run_name: Option<String> = None,
    }
}

options_struct! {
    /// Options of [`crate::optimize_entries`]: those of `optimize_run` (applied to every entry) plus
    /// the parent directory and entry concurrency.
    EntriesOptions {
        /// Parent directory name under `run_root`. `None`: a new `<loss>_entries_vNNNN`. An existing
        /// name resumes every entry.
        run_name_prefix: Option<String> = None,
        /// Entries optimised at once. Default: all.
        max_concurrent_entries: Option<usize> = None,
    }
}

impl EntriesOptions {
    /// The options of entry number `index` (`random_seed + index`), run in `parent` as `label`.
    pub(crate) fn for_entry(
        &self,
        index: usize,
        entry_id: &str,
        parent: PathBuf,
        label: &str,
    ) -> RunOptions {
        let e = self.clone();
        RunOptions {
            n_trials: e.n_trials,
            seeds: e.seeds,
            n_seeds: e.n_seeds,
            chunk_size: e.chunk_size,
            num_chunks: e.num_chunks,
            random_seed: e.random_seed.wrapping_add(index as u64),
            direction: e.direction,
            mode: e.mode,
            run_root: parent,
            loss_module: e.loss_module,
            slurm_poll_seconds: e.slurm_poll_seconds,
            slurm_timeout_minutes: e.slurm_timeout_minutes,
            cpus_per_task: e.cpus_per_task,
            mem_per_cpu: e.mem_per_cpu,
            max_concurrent_trials: e.max_concurrent_trials,
            array_parallelism_limit: e.array_parallelism_limit,
            worker_parallelism: e.worker_parallelism,
            worker_time_limit: e.worker_time_limit,
            slurm_qos: e.slurm_qos,
            trial_retry_attempts: e.trial_retry_attempts,
            fail_on_chunk_error: e.fail_on_chunk_error,
            use_processes: e.use_processes,
            forward_sys_argv_to_workers: e.forward_sys_argv_to_workers,
            sampler: e.sampler,
            keep_seed_values: e.keep_seed_values,
            slurm_account: e.slurm_account,
            slurm_partition: e.slurm_partition,
            slurm_gres: e.slurm_gres,
            slurm_constraint: e.slurm_constraint,
            slurm_extra_args: e.slurm_extra_args,
            keep_jobs_on_interrupt: e.keep_jobs_on_interrupt,
            progress: e.progress,
            entry_id: Some(entry_id.to_string()),
            run_name: Some(label.to_string()),
        }
    }
}
