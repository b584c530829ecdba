//! Integration tests of `slurptuna-sampler`, through the public `Sampler` trait only.

/// Model behaviour: failed trials excluded, the direction honoured, TPE beats random.
mod behaviour;
/// Regression pins: checksums of every proposal along fixed runs must never change.
mod checksums;
/// Shared test utilities: spaces, objective loops, history records.
mod common;
/// The conformance suite of `slurptuna_core::testing` on every sampler of this crate.
mod conformance;
/// Determinism: a fixed seed gives the same sequence; a resumed run proposes the same.
mod determinism;
/// Contract checks: 10,000 proposals stay legal (bounds, grids, log scale, ints, choices).
mod legality;
/// Constant liar: with 8 trials running, no two proposals are equal.
mod liar;
/// Pruned trials: Optuna's below/above split, determinism, and pruned regions avoided.
mod pruned;
