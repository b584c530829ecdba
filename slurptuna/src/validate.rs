//! Every option checked before anything touches the disk or a scheduler.

use std::time::Duration;

use slurptuna_core::{
    positive_duration, DistributedOptions, LossDefinition, MemorySize, SeedLayout, SeedList,
    SeedSpec, TaskResources,
};
use slurptuna_store::{RunName, StoreError};

use crate::error::{Error, Result};
use crate::mode::ExecutionMode;
use crate::options::{RunOptions, ValidationSeeds};

/// Checks every option of `opts` for `loss` and resolves the seed layout, then runs the loss's
/// preflight check (a command loss: its program exists and starts), before any run directory
/// exists. Nothing is written.
pub(crate) fn validate(loss: &LossDefinition, opts: &RunOptions) -> Result<SeedLayout> {
    let layout = check(loss, opts)?;
    // Last: it may start a process, so only once every option is known to be valid.
    loss.preflight()?;
    Ok(layout)
}

/// The option checks of [`validate`], without the preflight: no side effects at all.
pub(crate) fn check(loss: &LossDefinition, opts: &RunOptions) -> Result<SeedLayout> {
    if opts.n_trials == 0 {
        return Err(Error::option(
            "n_trials",
            "must be >= 1 (it is the total number of finished trials)",
        ));
    }
    if opts.max_concurrent_trials == 0 {
        return Err(Error::option("max_concurrent_trials", "must be >= 1"));
    }
    if opts.worker_parallelism == 0 {
        return Err(Error::option("worker_parallelism", "must be >= 1"));
    }
    if opts.sync_interval.is_zero() || opts.sync_interval > Duration::from_secs(60) {
        return Err(Error::option(
            "sync_interval",
            format!(
                "must be between 1 ms and 60 s, got {:?} (use durability = \"always\" for an fsync per trial)",
                opts.sync_interval
            ),
        ));
    }
    if let Some(r) = &opts.racing {
        // The rest is checked on the seed layout below (min_seeds rounds up to whole chunks).
        if r.min_seeds.is_some_and(|m| m < 2) {
            return Err(Error::option(
                "racing.min_seeds",
                "must be >= 2 (no decision is taken before this many seeds)",
            ));
        }
    }
    // The DISTRIBUTED knobs and the scheduler's own options are checked in every mode (they
    // are recorded in meta.json, and a typo is better found on a laptop than on the cluster).
    distributed_options(opts)?;
    if let Some(scheduler) = opts.scheduler.backend() {
        scheduler.validate()?;
    }
    if opts.run_root.as_os_str().is_empty() {
        return Err(Error::option(
            "run_root",
            "must not be empty (use \".\" for the working directory)",
        ));
    }
    if let Some(name) = &opts.run_name {
        check_dir_name("run_name", name)?;
    }
    if let Some(program) = &opts.loss_module {
        if opts.mode == ExecutionMode::Distributed && !program.is_file() {
            return Err(Error::option(
                "loss_module",
                format!(
                    "{} is not a file: name the worker program to run in array tasks",
                    program.display()
                ),
            ));
        }
    }
    if opts.mode == ExecutionMode::Distributed && opts.scheduler.backend().is_none() {
        return Err(Error::NoScheduler);
    }
    let spec = SeedSpec {
        seeds: opts.seeds.clone(),
        n_seeds: opts.n_seeds,
        chunk_size: opts.chunk_size,
        num_chunks: opts.num_chunks,
    };
    let layout = SeedLayout::resolve(&spec, loss.seed_start())?;
    if let Some(r) = &opts.racing {
        r.config(layout.n_seeds(), layout.chunk_size()).validate()?;
    }
    validation_layout(opts, &layout)?;
    Ok(layout)
}

/// The fewest validation seeds: two to choose the validated best, two to report its value.
const MIN_VALIDATION_SEEDS: u64 = 4;

/// The seed layout of the honest best ([`RunOptions::validation_seeds`]) for a study of seeds
/// `fit`, or `None` without validation. Its chunks are at most the fit's and there are at least
/// two: the first half of them choose the validated best, the rest report its value.
pub(crate) fn validation_layout(opts: &RunOptions, fit: &SeedLayout) -> Result<Option<SeedLayout>> {
    let Some(spec) = &opts.validation_seeds else {
        return Ok(None);
    };
    if opts.validate_top_k == 0 {
        return Err(Error::option(
            "validate_top_k",
            "must be >= 1 (the number of best trials the validation seeds re-evaluate)",
        ));
    }
    let seeds = match spec {
        ValidationSeeds::Count(n) => {
            if *n < MIN_VALIDATION_SEEDS {
                return Err(Error::option(
                    "validation_seeds",
                    format!("is {n}: give at least {MIN_VALIDATION_SEEDS} (half choose the validated best, half report its value)"),
                ));
            }
            let fit_seeds = fit.seeds();
            let largest = (0..fit_seeds.len()).map(|i| fit_seeds.get(i)).max();
            let start = largest.unwrap_or(0).checked_add(1);
            match start.filter(|s| s.checked_add(*n).is_some()) {
                Some(start) => SeedList::Range { start, count: *n },
                None => return Err(Error::option(
                    "validation_seeds",
                    "the seeds after the fit's largest seed overflow u64: give an explicit list",
                )),
            }
        }
        ValidationSeeds::List(list) => {
            if (list.len() as u64) < MIN_VALIDATION_SEEDS {
                return Err(Error::option(
                    "validation_seeds",
                    format!("has {} seeds: give at least {MIN_VALIDATION_SEEDS} (half choose the validated best, half report its value)", list.len()),
                ));
            }
            let mut sorted = list.clone();
            sorted.sort_unstable();
            if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
                return Err(Error::option(
                    "validation_seeds",
                    format!("seed {} appears more than once", w[0]),
                ));
            }
            let fit_seeds = fit.seeds();
            let shared = (0..fit_seeds.len())
                .map(|i| fit_seeds.get(i))
                .filter(|s| sorted.binary_search(s).is_ok())
                .min();
            if let Some(s) = shared {
                return Err(Error::option(
                    "validation_seeds",
                    format!("seed {s} is also a fit seed: validation seeds must be disjoint from the fit's (`seeds` / `n_seeds`)"),
                ));
            }
            SeedList::Explicit {
                seeds: list.clone().into(),
            }
        }
    };
    let n = seeds.len();
    let chunk_size = fit.chunk_size().min(n.div_ceil(2));
    Ok(Some(SeedLayout::new(seeds, chunk_size)?))
}

/// The seed's DISTRIBUTED knobs of `opts` as the scheduler-independent options every backend
/// receives: the one place they are checked, errors naming them as the seed does.
pub(crate) fn distributed_options(opts: &RunOptions) -> Result<DistributedOptions> {
    let poll_interval = positive_duration(
        "slurm_poll_seconds",
        opts.slurm_poll_seconds,
        Duration::from_secs(1),
    )?;
    let attempt_timeout = positive_duration(
        "slurm_timeout_minutes",
        opts.slurm_timeout_minutes,
        Duration::from_secs(60),
    )?;
    if opts.cpus_per_task == 0 {
        return Err(Error::option("cpus_per_task", "must be >= 1"));
    }
    let mem_per_cpu: MemorySize = opts
        .mem_per_cpu
        .parse()
        .map_err(|reason: String| Error::option("mem_per_cpu", reason))?;
    if opts.worker_time_limit < Duration::from_secs(1) {
        return Err(Error::option(
            "worker_time_limit",
            format!(
                "must be at least 1 second, got {:?}",
                opts.worker_time_limit
            ),
        ));
    }
    if let Some(qos) = &opts.slurm_qos {
        if qos.trim().is_empty() {
            return Err(Error::option(
                "slurm_qos",
                "must be a non-empty string or None",
            ));
        }
        if qos.chars().any(char::is_control) {
            return Err(Error::option(
                "slurm_qos",
                format!("{qos:?} contains control characters"),
            ));
        }
    }
    if opts.array_parallelism_limit == Some(0) {
        return Err(Error::option(
            "array_parallelism_limit",
            "must be >= 1 when given (None means no limit)",
        ));
    }
    if opts.max_queued_tasks == Some(0) {
        return Err(Error::option(
            "max_queued_tasks",
            "must be >= 1 when given (None means as many as the cluster allows)",
        ));
    }
    Ok(DistributedOptions {
        poll_interval,
        attempt_timeout,
        trial_retry_attempts: opts.trial_retry_attempts,
        fail_on_chunk_error: opts.fail_on_chunk_error,
        array_parallelism_limit: opts.array_parallelism_limit,
        max_queued_tasks: opts.max_queued_tasks,
        resources: TaskResources {
            cpus_per_task: opts.cpus_per_task,
            mem_per_cpu,
            time_limit: opts.worker_time_limit,
            qos: opts.slurm_qos.clone(),
        },
    })
}

/// Checks a directory name given by the user (`run_name`, `run_name_prefix`): one path
/// component that cannot leave the run root.
pub(crate) fn check_dir_name(option: &'static str, name: &str) -> Result<RunName> {
    RunName::new(name).map_err(|e| match e {
        StoreError::InvalidName { name, reason } => Error::option(
            option,
            format!("'{name}' is not a directory name: {reason}"),
        ),
        other => Error::Store(other),
    })
}

/// Checks `optimize_entries`' own options for `ids` and returns the entries' directory labels and
/// the options of the first entry (every other option is checked on those). No side effects.
pub(crate) fn entries(
    ids: &[String],
    opts: &crate::options::EntriesOptions,
) -> Result<(Vec<slurptuna_store::EntryLabel>, RunOptions)> {
    if ids.is_empty() {
        return Err(Error::option("entry_ids", "must not be empty"));
    }
    let labels = slurptuna_store::EntryLabel::assign(ids)
        .map_err(|e| Error::option("entry_ids", e.to_string()))?;
    if opts.max_concurrent_entries == Some(0) {
        return Err(Error::option(
            "max_concurrent_entries",
            "must be >= 1 when given (None means all)",
        ));
    }
    if let Some(prefix) = &opts.run_name_prefix {
        check_dir_name("run_name_prefix", prefix)?;
    }
    let probe = opts.for_entry(0, &ids[0], opts.run_root.clone(), labels[0].as_str());
    Ok((labels, probe))
}
