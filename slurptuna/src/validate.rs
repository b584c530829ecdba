//! Every option checked before anything touches the disk or a scheduler.

use slurptuna_core::{LossDefinition, SeedLayout, SeedSpec};
use slurptuna_store::{RunName, StoreError};

use crate::error::{Error, Result};
use crate::mode::ExecutionMode;
use crate::options::RunOptions;

/// Checks every option of `opts` for `loss` and resolves the seed layout. No side effects.
pub(crate) fn validate(loss: &LossDefinition, opts: &RunOptions) -> Result<SeedLayout> {
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
    // The scheduler's options are checked in every mode (its settings go into meta.json, and
    // a typo is better found on a laptop than on the cluster); its own validator names them.
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
    Ok(SeedLayout::resolve(&spec, loss.seed_start())?)
}

/// Checks a directory name given by the user (`run_name`, `run_name_prefix`): one path
/// component that cannot leave the run root.
pub(crate) fn check_dir_name(option: &'static str, name: &str) -> Result<RunName> {
    RunName::new(name).map_err(|e| match e {
        StoreError::InvalidName { name, reason } => {
            Error::option(option, format!("'{name}' is not a directory name: {reason}"))
        }
        other => Error::Store(other),
    })
}
