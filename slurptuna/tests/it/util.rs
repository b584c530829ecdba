use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use slurptuna::{loss, search_param, LossDefinition, RunOptions};

/// Path of a fixture program (built with `--features fixtures`, as the test command does).
#[cfg_attr(not(feature = "fixtures"), allow(dead_code))]
pub(crate) fn fixture(name: &str) -> PathBuf {
    let path = match name {
        "study" => option_env!("CARGO_BIN_EXE_slurptuna-fixture-study"),
        "seed-api" => option_env!("CARGO_BIN_EXE_slurptuna-fixture-seed-api"),
        _ => None,
    };
    match path {
        Some(p) => PathBuf::from(p),
        None => panic!("fixture '{name}' not built: run the tests with `cargo test --workspace --all-features`"),
    }
}

/// Runs `cmd` to completion, killing it after `timeout`; returns its output.
#[cfg_attr(not(feature = "fixtures"), allow(dead_code))]
pub(crate) fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {cmd:?}: {e}"));
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{cmd:?} timed out after {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Panics with the command, status and output unless it succeeded.
#[cfg_attr(not(feature = "fixtures"), allow(dead_code))]
pub(crate) fn assert_success(cmd: &Command, out: &Output) {
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A two-parameter bowl with an int and a categorical, minimum near x = 0.3, y = 0.6.
pub(crate) fn bowl(name: &str) -> LossDefinition {
    loss(name)
        .description("test bowl")
        .param("x", (0.0, 1.0))
        .param("y", search_param().range(0.0, 1.0).step(0.05))
        .param("k", search_param().range(1, 6).dtype("int"))
        .param("c", search_param().allowed(["a", "b", "c"]))
        .build(|p, seed, _| {
            let (x, y, k) = (p.f64("x")?, p.f64("y")?, p.i64("k")? as f64);
            let c = if p.str("c")? == "b" { 0.0 } else { 0.05 };
            Ok(((x - 0.3).powi(2)
                + (y - 0.6).powi(2)
                + 0.01 * (k - 3.0).abs()
                + c
                + (seed % 7) as f64 * 1e-4)
                .into())
        })
        .expect("valid loss")
}

/// Options writing under `root`, quiet, small.
pub(crate) fn opts(root: &Path) -> RunOptions {
    RunOptions {
        run_root: root.to_path_buf(),
        n_trials: 12,
        n_seeds: Some(6),
        progress: false,
        ..Default::default()
    }
}

/// The journal's trial events as `(params, value or failure)`, in trial order.
pub(crate) fn trial_sequence(result: &slurptuna::OptimizeResult) -> Vec<(String, String)> {
    result
        .trials
        .iter()
        .map(|t| {
            let v = match &t.state {
                slurptuna::TrialState::Complete { stats } => format!("{:?}", stats.mean()),
                other => format!("{other:?}"),
            };
            (t.params.to_json(), v)
        })
        .collect()
}

/// True when a cluster answers; panics when one is required (`SLURPTUNA_TEST_SLURM=1`).
#[cfg_attr(
    not(any(all(feature = "slurm", feature = "fixtures"), feature = "cli")),
    allow(dead_code)
)]
pub(crate) fn cluster() -> bool {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .map(|o| o.status.success() && !o.stdout.is_empty())
        .unwrap_or(false);
    if !up {
        if std::env::var("SLURPTUNA_TEST_SLURM").as_deref() == Ok("1") {
            panic!("SLURPTUNA_TEST_SLURM=1 but no Slurm cluster answers `sinfo`: start one with `cargo xtask slurm up`");
        }
        eprintln!(
            "skipped: no Slurm cluster answers `sinfo` (start one with `cargo xtask slurm up`)"
        );
    }
    up
}

/// Whether a test may run without `what`: on a laptop it prints a visible skip (`how` says how to
/// get it) and returns false; where it is required (`CI=true`, or `SLURPTUNA_TEST_PYTHON=1` for
/// Python) it panics. Returns true when `found`.
#[allow(dead_code)]
pub(crate) fn present(found: bool, what: &str, how: &str) -> bool {
    if found {
        return true;
    }
    let required = std::env::var("CI").as_deref() == Ok("true")
        || (what.contains("python")
            && std::env::var("SLURPTUNA_TEST_PYTHON").as_deref() == Ok("1"));
    if required {
        panic!("{what} is required here (CI=true or SLURPTUNA_TEST_PYTHON=1) but missing: {how}");
    }
    eprintln!("SKIPPED: {what} is missing ({how})");
    false
}

/// Job ids of jobs whose working directory is under `dir` (what a test left behind).
#[allow(dead_code)] // not every feature set builds a Slurm test
pub(crate) fn jobs_under(dir: &Path) -> Vec<String> {
    let out = Command::new("squeue")
        .args(["-h", "-o", "%i %Z"])
        .output()
        .expect("squeue");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&*dir.to_string_lossy()))
        .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
        .collect()
}

/// Fails (after cancelling them) if jobs started under `dir` are still queued 20 s on.
#[allow(dead_code)] // not every feature set builds a Slurm test
pub(crate) fn assert_no_jobs_left(dir: &Path) {
    let start = Instant::now();
    loop {
        let left = jobs_under(dir);
        if left.is_empty() {
            return;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = Command::new("scancel").args(&left).status();
            panic!("jobs left in the queue by this test: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
