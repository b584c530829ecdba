//! `cargo xtask ci`: what CI checks, runnable anywhere.

use std::process::Command;

use anyhow::Result;

use crate::util::{project_root, run_cmd};

pub(crate) fn run(_args: &[String]) -> Result<()> {
    let root = project_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let c = |args: &[&str]| {
        let mut cmd = Command::new(&cargo);
        cmd.args(args).current_dir(&root);
        cmd
    };
    run_cmd(&mut c(&["fmt", "--all", "--", "--check"]))?;
    run_cmd(&mut c(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run_cmd(&mut c(&["test", "--workspace", "--all-features"]))?;
    Ok(())
}
