//! `cargo xtask ci`: what CI checks, runnable anywhere.

use std::process::Command;

use anyhow::Result;

use crate::util::{project_root, run_cmd};

fn cargo(args: &[&str]) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.args(args).current_dir(project_root());
    cmd
}

/// `cargo xtask test`: the whole test suite, the README's test command and what CI runs: every
/// crate with every feature, then the library as built without default features (no CLI, no
/// Slurm).
pub(crate) fn test(_args: &[String]) -> Result<()> {
    run_cmd(&mut cargo(&["test", "--workspace", "--all-features"]))?;
    run_cmd(&mut cargo(&[
        "test",
        "-p",
        "slurptuna",
        "--no-default-features",
    ]))?;
    Ok(())
}

/// `cargo xtask ci`: formatting, clippy and rustdoc with warnings as errors, then the tests.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let c = cargo;
    run_cmd(&mut c(&["fmt", "--all", "--", "--check"]))?;
    run_cmd(&mut c(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))?;
    let mut doc = c(&["doc", "--workspace", "--no-deps", "--all-features"]);
    doc.env("RUSTDOCFLAGS", "-D warnings");
    run_cmd(&mut doc)?;
    test(args)
}
