//! `RunOptions` and `EntriesOptions`: the seed's keyword arguments, with its names and defaults.
//! Its DISTRIBUTED knobs (`slurm_poll_seconds`, `cpus_per_task`, `mem_per_cpu`, ...) mean the
//! same for every scheduler and reach it as core's `DistributedOptions`; a scheduler's own
//! options live in its own struct, given as `scheduler` (for Slurm `SlurmOptions`).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use std::time::Duration;

use slurptuna_core::{Direction, DistributedOptions, Sampler};

use crate::backends::Scheduler;
use crate::mode::ExecutionMode;

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

/// The validation seeds of the honest best ([`RunOptions::validation_seeds`]).
///
/// The best of many noisy means is biased low, and often a lucky draw (the winner's curse).
/// After the study, its `validate_top_k` best trials by fit value are evaluated on these seeds,
/// which are disjoint from the fit's: the validated best is the candidate with the best mean
/// over the first half of them, and its reported value is its mean over the other half, which
/// no choice has seen (unbiased). The validation is journalled chunk by chunk and resumes like a
/// trial, in SINGLE and DISTRIBUTED mode.
///
/// ```
/// use slurptuna::{RunOptions, ValidationSeeds};
/// let opts = RunOptions { validation_seeds: Some(ValidationSeeds::Count(2000)), ..Default::default() };
/// let listed = RunOptions { validation_seeds: Some(vec![10_000, 10_001, 10_002, 10_003].into()), ..opts.clone() };
/// # let _ = listed;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValidationSeeds {
    /// This many seeds, right after the fit's largest seed (at least 4).
    Count(u64),
    /// Exactly these seeds (at least 4, none of them a fit seed, no repeats).
    List(Vec<u64>),
}

impl From<u64> for ValidationSeeds {
    fn from(n: u64) -> Self {
        ValidationSeeds::Count(n)
    }
}

impl From<Vec<u64>> for ValidationSeeds {
    fn from(seeds: Vec<u64>) -> Self {
        ValidationSeeds::List(seeds)
    }
}

/// The options of seed racing ([`RunOptions::racing`], the study file's `[racing]` table).
///
/// Each trial after the first races against the incumbent (the best COMPLETE trial when it
/// started) on the same seeds, in its own random order with the seeds where the incumbent is most
/// extreme first. At each chunk boundary of the evaluated prefix (never earlier than `min_seeds`)
/// a control-variate confidence sequence bounds the trial's mean over all seeds; the trial is
/// PRUNED once the bound is worse than the best completed value (+ `margin`).
///
/// **Guarantee.** A trial whose mean over the study's seeds is never worse than the best
/// completed value during its race is pruned with probability at most `alpha`, over its own seed
/// order (asymptotically in `min_seeds`, for losses of finite variance). The eventual best trial
/// is such a trial, so it is lost with probability at most `alpha`, with no union over trials.
/// Effects confined to seeds rarer than about ln(1/alpha)/min_seeds and not shared with the
/// incumbent cannot be seen in time: raise `min_seeds` for such losses.
///
/// Racing needs each trial's per-seed values (8 bytes per seed) while it may serve as a
/// control; they are deleted once no race needs them, unless `keep_seed_values` is on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Racing {
    /// Per-trial false-elimination level, in (0, 0.5). Default 0.01.
    pub alpha: f64,
    /// No decision before this many seeds (rounded up to whole chunks). Default
    /// max(200, ⌈0.02·N⌉), at least one chunk. Racing is active only when N ≥ 2·min_seeds.
    pub min_seeds: Option<u64>,
    /// Prune only when the bound clears the best value by this much (loss units, ≥ 0).
    /// Default 0.
    pub margin: f64,
}

impl Default for Racing {
    fn default() -> Self {
        Racing {
            alpha: slurptuna_core::racing::DEFAULT_ALPHA,
            min_seeds: None,
            margin: 0.0,
        }
    }
}

impl Racing {
    /// The race configuration for a study of `n_seeds` seeds in chunks of `chunk_size`.
    pub fn config(&self, n_seeds: u64, chunk_size: u64) -> slurptuna_core::racing::RaceConfig {
        let mut c = slurptuna_core::racing::RaceConfig::for_seeds(n_seeds, chunk_size);
        c.alpha = self.alpha;
        c.margin = self.margin;
        if let Some(m) = self.min_seeds {
            let chunk = chunk_size.max(1);
            c.min_seeds = m.div_ceil(chunk).saturating_mul(chunk);
        }
        c
    }
}

/// How hard the run directory is pushed to disk (`durability`).
///
/// Every event is written to the journal (`write()`) before the controller acts on it, whatever
/// the choice: a killed controller (kill -9, an out-of-memory kill, a lost login session) loses
/// nothing that was reported. The choice is about an operating-system crash or a power loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// fsync grouped: at most one per `sync_interval`, and always at the end of a run, at a clean
    /// interrupt and before work is submitted to a batch scheduler. An OS crash may lose the
    /// last `sync_interval` of reported events (they are recomputed on resume).
    #[default]
    Grouped,
    /// fsync after every trial boundary (the behaviour before group commit), for the cautious:
    /// costly on network file systems (1–30 ms per fsync).
    Always,
}

impl Durability {
    /// The option's spelling: `"grouped"` or `"always"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Grouped => "grouped",
            Durability::Always => "always",
        }
    }
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "grouped" => Ok(Durability::Grouped),
            "always" => Ok(Durability::Always),
            other => Err(format!(
                "unknown durability {other:?}: use \"grouped\" (default) or \"always\""
            )),
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The seed's defaults of the DISTRIBUTED knobs (one source, in core).
fn seed() -> DistributedOptions {
    DistributedOptions::seed_defaults()
}

/// Passes the fields shared by `optimize_run` and `optimize_entries` (written once, here) to
/// the macro `$callback`, after its own arguments.
macro_rules! with_shared_fields {
    ($callback:ident ! { $($args:tt)* }) => {
        $callback! {
            $($args)*
            ; shared {
        /// Target number of finished trials (complete or failed), **in total**: re-running a
        /// stopped run continues until this many have finished. Default 10.
        n_trials: u64 = 10,
        /// Explicit seeds, in order (any set, non-contiguous allowed). Highest priority.
        seeds: Option<Vec<u64>> = None,
        /// Number of contiguous seeds from the loss's `seed_start`.
        n_seeds: Option<u64> = None,
        /// Seeds per chunk: a chunk is one array task, and the unit of saved progress.
        /// Default 100. The last chunk may be shorter.
        chunk_size: Option<u64> = None,
        /// Number of chunks when neither `seeds` nor `n_seeds` is given (default 10, so 1,000 seeds).
        num_chunks: Option<u64> = None,
        /// Seed of the sampler. Default 123.
        random_seed: u64 = 123,
        /// Minimize (default) or maximize the mean loss.
        direction: Direction = Direction::Minimize,
        /// SINGLE (in this process, default) or DISTRIBUTED (job arrays of `scheduler`).
        mode: ExecutionMode = ExecutionMode::Single,
        /// DISTRIBUTED mode's scheduler with its own options (for Slurm `slurm::SlurmOptions`:
        /// account, partition, gres, constraint, extra `sbatch` arguments). Default: the first
        /// scheduler of this build (Slurm with the `slurm` feature). Give
        /// `SlurmOptions { .. }.into()`, a scheduler of your own ([`Scheduler::new`]) or your own
        /// executor ([`Scheduler::executor`]). Its options are checked in every mode and its
        /// settings recorded in `meta.json`.
        scheduler: Scheduler = Scheduler::default(),
        /// How often (seconds) the controller asks the scheduler for task states. Default 15.
        slurm_poll_seconds: f64 = seed().poll_interval.as_secs_f64(),
        /// Upper bound (minutes) on one attempt of a trial in DISTRIBUTED mode, from submission
        /// (queue time counts). Default 120.
        slurm_timeout_minutes: f64 = seed().attempt_timeout.as_secs_f64() / 60.0,
        /// CPUs per array task. Default 1.
        cpus_per_task: u32 = seed().resources.cpus_per_task,
        /// Memory per CPU of array tasks, like `2G`, `500M` or `1024` (megabytes). Default `2G`.
        mem_per_cpu: String = seed().resources.mem_per_cpu.to_string(),
        /// Cap on running array tasks across all trials (and entries) of this call.
        array_parallelism_limit: Option<u64> = seed().array_parallelism_limit,
        /// Most array tasks held in the queue (pending or running) at once across all trials
        /// (and entries) of this call. Default `None`: as many as the cluster lets you hold
        /// (your association's and QoS's submit limits, half of `MaxJobCount`), read once; the
        /// cluster's limits apply in any case.
        max_queued_tasks: Option<u64> = seed().max_queued_tasks,
        /// Wall-time limit of one array task. Default 2 hours; at least 1 second.
        worker_time_limit: Duration = seed().resources.time_limit,
        /// The tasks' QoS (Slurm `--qos`); `None` for none. Default `short`. A rejected QoS is
        /// an error.
        slurm_qos: Option<String> = seed().resources.qos,
        /// Retries of a failed trial attempt (DISTRIBUTED): default 1, i.e. two attempts. Only
        /// the chunks without a result are resubmitted.
        trial_retry_attempts: u32 = seed().trial_retry_attempts,
        /// DISTRIBUTED: on a failed chunk, cancel the trial's other tasks and retry (true,
        /// default), or keep them running and retry only the failed chunks (false).
        fail_on_chunk_error: bool = seed().fail_on_chunk_error,
        /// Where run directories go. Default `runs`.
        run_root: PathBuf = PathBuf::from("runs"),
        /// The program workers run to evaluate seeds: by default this very program
        /// (`std::env::current_exe()`), which must reach the same `optimize_*` call.
        loss_module: Option<PathBuf> = None,
        /// Trials evaluated at once (constant liar keeps their parameters apart). Default 1.
        max_concurrent_trials: usize = 1,
        /// Seeds evaluated in parallel per worker (threads, or processes with `use_processes`). Default 1.
        worker_parallelism: usize = 1,
        /// SINGLE: evaluate seeds in a pool of worker processes (this program re-executed) instead
        /// of threads, so a loss that aborts or segfaults fails its trial, not the run. Default false.
        /// A command loss (`build_batch`, study files) already runs in processes of its own: for
        /// it this option changes nothing.
        use_processes: bool = false,
        /// Give workers this program's command-line arguments (so `main` reaches the same call).
        /// Default true.
        forward_sys_argv_to_workers: bool = true,
        /// Which sampler proposes parameters. Default TPE.
        sampler: SamplerChoice = SamplerChoice::Tpe,
        /// Keep every per-seed value on disk (compact binary), not only the statistics. Default false.
        keep_seed_values: bool = false,
        /// On Ctrl-C / SIGTERM, leave submitted jobs running so a resume re-adopts them
        /// (default false: they are cancelled).
        keep_jobs_on_interrupt: bool = false,
        /// Show a progress bar on stderr when it is a terminal (default true); otherwise
        /// progress goes to `tracing` events, or plain lines on stderr when the program set no
        /// `tracing` subscriber.
        progress: bool = true,
        /// How hard the run directory is pushed to disk (see [`Durability`]).
        durability: Durability = Durability::Grouped,
        /// With `Durability::Grouped`: the longest time between two fsyncs of the run directory
        /// (what an OS crash may lose at most). Default 100 ms.
        sync_interval: Duration = Duration::from_millis(100),
        /// Seed racing: stop a trial early once its evaluated seeds show, with error at most
        /// `alpha`, that its mean over all seeds is worse than the best completed value (see
        /// [`Racing`]). Default `None` (off): every trial evaluates every seed.
        racing: Option<Racing> = None,
        /// The honest best: after the study, its `validate_top_k` best trials are evaluated again
        /// on these seeds, disjoint from the fit's (a count: the seeds right after the fit's last
        /// one; or an explicit list), and the result reports the validated best beside the fit's
        /// best (see [`ValidationSeeds`]). Default `None`: no validation.
        validation_seeds: Option<ValidationSeeds> = None,
        /// How many of the study's best trials (by fit value) the honest best re-evaluates.
        /// Default 5.
        validate_top_k: usize = 5,
            }
        }
    };
}

/// Declares an options struct: its own fields and the shared ones, and a `Default` with the
/// documented defaults.
macro_rules! options_struct {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$fmeta:meta])* $field:ident : $ty:ty = $default:expr, )* }
        ; shared { $( $(#[$smeta:meta])* $sfield:ident : $sty:ty = $sdefault:expr, )* }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug)]
        pub struct $name {
            $( $(#[$smeta])* pub $sfield: $sty, )*
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                Self {
                    $( $sfield: $sdefault, )*
                    $( $field: $default, )*
                }
            }
        }

        // The study file's `[run]` keys: one per field, under the field's name, converted by
        // the field type's `FromStudyValue` (a field whose type has none does not compile).
        #[cfg(feature = "study")]
        impl crate::study::convert::StudyOptions for $name {
            const KEYS: &'static [&'static str] =
                &[ $( stringify!($sfield), )* $( stringify!($field), )* ];

            fn set_key(
                &mut self,
                key: &str,
                value: &crate::study::doc::Value,
                cx: &crate::study::convert::Cx<'_>,
            ) -> Option<Result<(), crate::study::convert::Invalid>> {
                use crate::study::convert::FromStudyValue;
                Some(match key {
                    $( stringify!($sfield) => <$sty as FromStudyValue>::from_study(value, cx)
                        .map(|v| self.$sfield = v), )*
                    $( stringify!($field) => <$ty as FromStudyValue>::from_study(value, cx)
                        .map(|v| self.$field = v), )*
                    _ => return None,
                })
            }
        }
    };
}

/// `EntriesOptions::shared_into`: `RunOptions` with the shared fields copied.
macro_rules! shared_into {
    ( ; shared { $( $(#[$smeta:meta])* $sfield:ident : $sty:ty = $sdefault:expr, )* } ) => {
        impl EntriesOptions {
            /// `RunOptions` with the shared fields of `self` and the defaults of its own.
            fn shared_into(&self) -> RunOptions {
                RunOptions {
                    $( $sfield: self.$sfield.clone(), )*
                    ..RunOptions::default()
                }
            }
        }
    };
}

with_shared_fields!(options_struct! {
    /// Options of [`crate::optimize_run`]. Build with `RunOptions { n_trials: 50, ..Default::default() }`.
    RunOptions {
        /// Entry id given to the loss's context (`optimize_entries` sets it per entry).
        entry_id: Option<String> = None,
        /// Run directory name under `run_root`. `None`: a new `<loss>_vNNNN`. An existing name
        /// resumes that run.
        run_name: Option<String> = None,
    }
});

with_shared_fields!(options_struct! {
    /// Options of [`crate::optimize_entries`]: those of `optimize_run` (applied to every entry) plus
    /// the parent directory and entry concurrency.
    EntriesOptions {
        /// Parent directory name under `run_root`. `None`: a new `<loss>_entries_vNNNN`. An existing
        /// name resumes every entry.
        run_name_prefix: Option<String> = None,
        /// Entries optimised at once. Default: all.
        max_concurrent_entries: Option<usize> = None,
    }
});

with_shared_fields!(shared_into! {});

impl EntriesOptions {
    /// The options of entry number `index` (`random_seed + index`), run in `parent` as `label`.
    pub(crate) fn for_entry(
        &self,
        index: usize,
        entry_id: &str,
        parent: PathBuf,
        label: &str,
    ) -> RunOptions {
        RunOptions {
            random_seed: self.random_seed.wrapping_add(index as u64),
            run_root: parent,
            entry_id: Some(entry_id.to_string()),
            run_name: Some(label.to_string()),
            ..self.shared_into()
        }
    }
}
