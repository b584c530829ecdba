//! Integration tests of the public API.

/// Shared helpers: temp run roots, fixture programs with timeouts.
mod util;

/// The seed's example program, verbatim, runs and prints sensible results.
#[cfg(feature = "fixtures")]
mod api;
/// Backends as values: async runtimes, the async API, a user's own executor, no scheduler.
mod backends;
/// The `slurptuna` command-line tool on a real run directory.
#[cfg(feature = "cli")]
mod cli;
/// SIGKILL at random points, then resume: nothing lost, duplicated or corrupted.
#[cfg(feature = "fixtures")]
mod crash;
/// DISTRIBUTED mode on a real Slurm cluster (skips visibly without one).
#[cfg(all(feature = "fixtures", feature = "slurm"))]
mod distributed;
/// optimize_entries: per-entry studies, labels, partial failure.
mod entries;
/// Exports: the Optuna journal opened by real optuna 5.0, npy read back by numpy (a venv under
/// target/), CSV and JSON rows.
#[cfg(feature = "export")]
mod export;
/// The honest best: validation seeds re-evaluate the top trials; unbiased, beats the lucky draw.
mod honest;
/// Reading runs (`slurptuna::inspect` and `slurptuna runs|show|trials|best|watch|cancel`): the
/// quickstart's run, `watch` in a real terminal (tmux), reading while a controller writes.
#[cfg(feature = "cli")]
mod inspect;
/// Run directories of the previous release resume to the same result.
mod legacy;
/// Worker processes (`use_processes`): a loss that aborts fails its trial only.
#[cfg(feature = "fixtures")]
mod processes;
/// The HTML report: plots present and non-empty, best value and params in the page, loaded in
/// headless Chromium (screenshot under target/), entries runs, PED-ANOVA against optuna 5.0.
#[cfg(feature = "report")]
mod report;
/// Resume: totals, same sequence as an uninterrupted run, refused on mismatch, locks.
mod resume;
/// Determinism, explicit seeds, concurrency, failures, no completed trial.
mod single;
/// Study files and `slurptuna run`: the examples (Python losses) equal the Rust API in SINGLE and
/// DISTRIBUTED mode; errors with file:line:column; `--set`, `--json`, resume.
#[cfg(feature = "cli")]
mod study;
/// `slurptuna submit`: the controller as a Slurm job that requeues itself and resumes.
#[cfg(all(feature = "cli", feature = "slurm"))]
mod submit;
/// Every invalid input is a typed error naming the option, with no run directory created.
mod validation;
