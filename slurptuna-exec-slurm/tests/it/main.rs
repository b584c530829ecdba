//! Integration tests of slurptuna-exec-slurm (one binary).
//!
//! The worker program is the `slurptuna-slurm-fixture` binary of this crate (never this test
//! harness), reached through `CARGO_BIN_EXE_slurptuna-slurm-fixture`.

/// The executor and worker end to end on `FakeSlurm` (local processes).
mod fake_cluster;
/// A trial directory of the previous release resumes.
mod legacy;
/// The test losses, shared with the fixture program.
#[path = "../fixture/losses.rs"]
mod losses;
/// Queue limits, a rejected QoS and the preflight on a real Slurm with accounting
/// (`cargo xtask slurm up --accounting`).
mod real_accounting;
/// The same on a real Slurm cluster, when one answers (`cargo xtask slurm up`).
mod real_cluster;
/// Jobs, sinks, configs and timeouts shared by the tests.
mod support;
