//! `cargo xtask` command module: bench_store.

use anyhow::{bail, Result};

pub(crate) fn run(args: &[String]) -> Result<()> {
    bail!("bench_store is not available yet (args: {args:?})")
}
