//! Integration tests of `slurptuna-store` (one binary). Tests that need other processes re-run
//! this binary with `--exact <test>` and a role in the environment (see `common::spawn_role`).

/// Atomic documents: no partial JSON is ever visible, even when the writer is killed.
mod atomic;
/// Common test code: a sample `RunMeta`, sample events, child processes with timeouts.
mod common;
/// SIGKILL at random points while appending (under both sync policies), then resume.
mod crash;
/// Journal recovery: torn tails at every byte offset, zero-filled tails, real damage, sidecars.
mod journal;
/// Entry labels used as real directories.
mod labels;
/// The run lock: live holders refused (pid, host), dead holders taken over, racing launchers.
mod lock;
/// `FsStore` as a `Store`: the core conformance suite, meta/summary documents, trial dirs.
mod store;
/// Sync policies: fsyncs counted under `Always` and `Grouped`, the flusher thread, drop, abort.
mod sync;
/// The journal cut at every byte of its last records (what an OS crash can leave).
mod torn;
/// Versioned directories claimed from many threads and processes at once.
mod versions;
