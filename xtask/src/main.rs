//! `cargo xtask`: the project's automation, in Rust instead of shell scripts.
//!
//! - `cargo xtask test` — the whole test suite (all features, then the library without default
//!   features).
//! - `cargo xtask ci` — fmt check, clippy and rustdoc `-D warnings`, then `test`.
//! - `cargo xtask bench sampler|store|product|command|slurm|racing|scale` — side-by-side benchmarks (not part of the tests).
//! - `cargo xtask slurm up [--accounting]|down|status` — a single-node Slurm cluster on this
//!   machine (root); `--accounting` adds MariaDB and slurmdbd enforcing QoS and association limits.

mod bench_command;
mod bench_product;
mod bench_racing;
mod bench_sampler;
mod bench_scale;
mod bench_slurm;
mod bench_store;
mod ci;
mod slurm;
#[cfg(test)]
mod tidy;
mod util;

use anyhow::{bail, Result};

const USAGE: &str = "usage: cargo xtask <command>

commands:
  test                    the whole test suite (all features; the library without defaults)
  ci                      fmt check, clippy and rustdoc -D warnings, then test
  bench sampler [args]    sampler speed/quality vs Optuna and rustuna -> bench/results/sampler.md
  bench store [args]      resume time and memory of a 10,000-trial run -> bench/results/store.md
  bench command [args]    `slurptuna run` with a Python command loss vs the Python original -> bench/results/command.md
  bench product [args]    cost per trial through optimize_run vs rustuna and the Python original -> bench/results/product.md
  bench slurm [args]      per-trial overhead on the local Slurm vs the Python original -> bench/results/slurm.md
  bench racing [args]     seed racing vs racing off on simulated losses -> bench/results/racing.md
  bench scale [args]      the controller against a simulated cluster in virtual time -> bench/results/scale.md
  slurm up [--accounting]|down|status
                          a single-node Slurm cluster on this machine (needs root); with
                          --accounting, MariaDB + slurmdbd enforcing QoS and submit limits";

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = |n: usize| args.get(n..).unwrap_or(&[]);
    match (
        args.first().map(String::as_str),
        args.get(1).map(String::as_str),
    ) {
        (Some("test"), _) => ci::test(rest(1)),
        (Some("ci"), _) => ci::run(rest(1)),
        (Some("bench"), Some("sampler")) => bench_sampler::run(rest(2)),
        (Some("bench"), Some("store")) => bench_store::run(rest(2)),
        (Some("bench"), Some("product")) => bench_product::run(rest(2)),
        (Some("bench"), Some("command")) => bench_command::run(rest(2)),
        (Some("bench"), Some("slurm")) => bench_slurm::run(rest(2)),
        (Some("bench"), Some("racing")) => bench_racing::run(rest(2)),
        (Some("bench"), Some("scale")) => bench_scale::run(rest(2)),
        (Some("slurm"), Some(_)) => slurm::run(rest(1)),
        (Some("help" | "-h" | "--help"), _) | (None, _) => {
            println!("{USAGE}");
            Ok(())
        }
        _ => bail!("unknown command {:?}\n\n{USAGE}", args.join(" ")),
    }
}
