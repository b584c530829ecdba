//! Integration tests of the public API.

/// Shared helpers: temp run roots, fixture programs with timeouts.
mod util;

/// The seed's example program, verbatim, runs and prints sensible results.
mod api;
/// The `slurptuna` command-line tool on a real run directory.
mod cli;
/// SIGKILL at random points, then resume: nothing lost, duplicated or corrupted.
mod crash;
/// DISTRIBUTED mode on a real Slurm cluster (skips visibly without one).
mod distributed;
/// optimize_entries: per-entry studies, labels, partial failure.
mod entries;
/// Run directories of the previous release resume to the same result.
mod legacy;
/// Worker processes (`use_processes`): a loss that aborts fails its trial only.
mod processes;
/// Resume: totals, same sequence as an uninterrupted run, refused on mismatch, locks.
mod resume;
/// Determinism, explicit seeds, concurrency, failures, no completed trial.
mod single;
/// Every invalid input is a typed error naming the option, with no run directory created.
mod validation;
