//! `cargo xtask` command module: slurm.

use anyhow::{bail, Result};

pub(crate) fn run(args: &[String]) -> Result<()> {
    bail!("slurm is not available yet (args: {args:?})")
}
