//! Small helpers shared by the xtask commands.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The workspace root (the parent of this crate's directory).
pub(crate) fn project_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// Runs `cmd`, echoing it, and fails with its status when it does not succeed.
pub(crate) fn run_cmd(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Re-runs `cargo xtask bench <bench> <args>` from a release build (timings of a debug build
/// mean nothing).
pub(crate) fn rerun_bench_in_release(bench: &str, args: &[String]) -> Result<()> {
    eprintln!("bench {bench}: re-running in release (timings of a debug build mean nothing)");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    run_cmd(
        Command::new(cargo)
            .current_dir(project_root())
            .args([
                "run",
                "--release",
                "--quiet",
                "--package",
                "xtask",
                "--bin",
                "xtask",
            ])
            .args(["--", "bench", bench])
            .args(args),
    )
}

/// The cargo target directory (`CARGO_TARGET_DIR`, else `target/` in the workspace).
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"))
}

/// Builds a program of the `slurptuna` package in release (`kind`: `"--bin"` or `"--example"`)
/// and returns its path.
pub(crate) fn build_release(kind: &str, name: &str) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run_cmd(Command::new(cargo).current_dir(project_root()).args([
        "build",
        "--release",
        "-p",
        "slurptuna",
        kind,
        name,
    ]))?;
    let release = target_dir().join("release");
    Ok(match kind {
        "--example" => release.join("examples").join(name),
        _ => release.join(name),
    })
}

/// The median (the mean of the middle two for an even count; NaN when empty).
pub(crate) fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// The value after option `name` of a benchmark's command line.
pub(crate) fn option_value(it: &mut std::slice::Iter<'_, String>, name: &str) -> Result<String> {
    it.next()
        .with_context(|| format!("{name} needs a value"))
        .cloned()
}
