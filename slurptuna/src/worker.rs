//! Worker mode: when this program was started as a worker (a local pool process or a Slurm task),
//! `optimize_run` / `optimize_entries` evaluate the assigned seeds and exit instead of optimising.

/// Runs the worker side and exits the process if this process is a worker; returns otherwise.
pub(crate) fn dispatch() {
    if slurptuna_exec_local::is_pool_worker() {
        let code = match slurptuna_exec_local::serve_pool_worker() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("slurptuna worker: {e}");
                1
            }
        };
        std::process::exit(code);
    }
    #[cfg(feature = "slurm")]
    if slurptuna_exec_slurm::is_slurm_worker() {
        let code = match slurptuna_exec_slurm::run_slurm_worker() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("slurptuna worker: {e}");
                1
            }
        };
        std::process::exit(code);
    }
}
