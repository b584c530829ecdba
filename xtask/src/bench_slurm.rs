//! `cargo xtask` command module: bench_slurm.

use anyhow::{bail, Result};

pub(crate) fn run(args: &[String]) -> Result<()> {
    bail!("bench_slurm is not available yet (args: {args:?})")
}
