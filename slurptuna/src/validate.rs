//! Every option checked before anything touches the disk or a scheduler.

use std::path::Path;
use std::time::Duration;

use slurptuna_core::{validate_name, ExecutionMode, LossDefinition, SeedLayout, SeedSpec};

use crate::error::{Error, Result};
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
    if opts.array_parallelism_limit == Some(0) {
        return Err(Error::option(
            "array_parallelism_limit",
            "must be >= 1 when given (None means no limit)",
        ));
    }
    if opts.worker_time_limit < Duration::from_secs(1) {
        return Err(Error::option(
            "worker_time_limit",
            format!(
                "must be at least 1 second, got {:?}",
                opts.worker_time_limit
            ),
        ));
    }
    if !(opts.slurm_poll_seconds.is_finite() && opts.slurm_poll_seconds > 0.0) {
        return Err(Error::option(
            "slurm_poll_seconds",
            format!("must be a number > 0, got {}", opts.slurm_poll_seconds),
        ));
    }
    if !(opts.slurm_timeout_minutes.is_finite() && opts.slurm_timeout_minutes > 0.0) {
        return Err(Error::option(
            "slurm_timeout_minutes",
            format!("must be a number > 0, got {}", opts.slurm_timeout_minutes),
        ));
    }
    if opts.cpus_per_task == 0 {
        return Err(Error::option("cpus_per_task", "must be >= 1"));
    }
    if !valid_memory(&opts.mem_per_cpu) {
        return Err(Error::option(
            "mem_per_cpu",
            format!(
                "'{}' is not a Slurm memory size like 2G, 500M or 1024",
                opts.mem_per_cpu
            ),
        ));
    }
    for (name, value) in [
        ("slurm_qos", &opts.slurm_qos),
        ("slurm_account", &opts.slurm_account),
        ("slurm_partition", &opts.slurm_partition),
        ("slurm_gres", &opts.slurm_gres),
        ("slurm_constraint", &opts.slurm_constraint),
    ] {
        if value.as_ref().is_some_and(|v| v.trim().is_empty()) {
            return Err(Error::option(name, "must be a non-empty string or None"));
        }
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
                    "{} is not a file: name the worker program to run in Slurm tasks",
                    program.display()
                ),
            ));
        }
    }
    if opts.mode == ExecutionMode::Distributed && !cfg!(feature = "slurm") {
        return Err(Error::SlurmNotCompiled);
    }
    let spec = SeedSpec {
        seeds: opts.seeds.clone(),
        n_seeds: opts.n_seeds,
        chunk_size: opts.chunk_size,
        num_chunks: opts.num_chunks,
    };
    Ok(SeedLayout::resolve(&spec, loss.seed_start())?)
}

/// Checks a directory name given by the user (`run_name`, `run_name_prefix`).
pub(crate) fn check_dir_name(option: &'static str, name: &str) -> Result<()> {
    validate_name(name).map_err(|e| {
        let reason = e
            .to_string()
            .replace("loss definition: ", "")
            .replace("loss name", "name");
        Error::option(option, reason)
    })?;
    if Path::new(name).components().count() != 1 {
        return Err(Error::option(
            option,
            format!("'{name}' must be a single directory name"),
        ));
    }
    Ok(())
}

fn valid_memory(s: &str) -> bool {
    let s = s.trim();
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && matches!(
            unit.to_ascii_uppercase().as_str(),
            "" | "K" | "M" | "G" | "T" | "KB" | "MB" | "GB" | "TB"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        for ok in ["2G", "500M", "1024", "4gb", "1T"] {
            assert!(valid_memory(ok), "{ok}");
        }
        for bad in ["", "G", "2 G", "-1G", "2X", "1.5G"] {
            assert!(!valid_memory(bad), "{bad}");
        }
    }
}
