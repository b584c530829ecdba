//! `cargo xtask` command module: bench_sampler.

use anyhow::{bail, Result};

pub(crate) fn run(args: &[String]) -> Result<()> {
    bail!("bench_sampler is not available yet (args: {args:?})")
}
