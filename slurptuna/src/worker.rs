//! Worker mode: when this program was started as a worker (a local pool process, a batch
//! scheduler's array task, or a worker of the configured scheduler), `optimize_run` /
//! `optimize_entries` evaluate the assigned seeds and exit instead of optimising.

use std::fmt::Display;

use crate::backends::{self, Scheduler};

/// Runs the worker side and exits the process if this process is a worker; returns otherwise.
pub(crate) fn dispatch(scheduler: &Scheduler) {
    if slurptuna_exec_local::is_pool_worker() {
        exit(slurptuna_exec_local::serve_pool_worker());
    }
    if slurptuna_core::batch::is_batch_worker() {
        exit(slurptuna_core::batch::run_batch_worker());
    }
    if let Some(outcome) = backends::run_worker(scheduler) {
        exit(outcome);
    }
}

fn exit<E: Display>(outcome: Result<(), E>) -> ! {
    let code = match outcome {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("slurptuna worker: {e}");
            1
        }
    };
    std::process::exit(code)
}
