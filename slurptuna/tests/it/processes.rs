use std::process::Command;
use std::time::Duration;

use crate::util::{assert_success, fixture, run_with_timeout};

fn run_study(
    root: &std::path::Path,
    name: &str,
    n: u64,
    loss: &str,
    extra: &[&str],
) -> (Command, std::process::Output) {
    let mut cmd = Command::new(fixture("study"));
    cmd.arg(root)
        .arg(name)
        .arg(n.to_string())
        .arg(loss)
        .args(extra)
        .current_dir(root);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(120));
    (cmd, out)
}

#[test]
fn aborting_loss_fails_only_its_trial() {
    let dir = tempfile::tempdir().unwrap();
    let (cmd, out) = run_study(
        dir.path(),
        "abort",
        6,
        "abort",
        &["processes=1", "parallelism=2", "n_seeds=4"],
    );
    assert_success(&cmd, &out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["n_failed"], 1, "{v}");
    assert_eq!(v["n_complete"], 5, "{v}");
    let journal = std::fs::read_to_string(dir.path().join("abort/journal.jsonl")).unwrap();
    let failed: Vec<&str> = journal
        .lines()
        .filter(|l| l.contains("\"failed\""))
        .collect();
    assert_eq!(failed.len(), 1, "{journal}");
    assert!(
        failed[0].contains("\"trial\":2") && failed[0].contains("seed 1"),
        "{}",
        failed[0]
    );
}

#[test]
fn processes_and_threads_agree() {
    let dir = tempfile::tempdir().unwrap();
    let base = ["n_seeds=9", "chunk=4", "parallelism=3"];
    let (c1, threads) = run_study(dir.path(), "threads", 8, "bowl", &base);
    assert_success(&c1, &threads);
    let mut with_proc = base.to_vec();
    with_proc.push("processes=1");
    let (c2, procs) = run_study(dir.path(), "procs", 8, "bowl", &with_proc);
    assert_success(&c2, &procs);
    let a: serde_json::Value = serde_json::from_slice(&threads.stdout).unwrap();
    let b: serde_json::Value = serde_json::from_slice(&procs.stdout).unwrap();
    assert_eq!(a["best_value"], b["best_value"]);
    assert_eq!(a["best_params"], b["best_params"]);
}

/// The loss of the `bowl` fixture, recomputed here.
fn bowl(p: &serde_json::Value, seed: u64) -> f64 {
    let (x, y, k) = (
        p["x"].as_f64().unwrap(),
        p["y"].as_f64().unwrap(),
        p["k"].as_i64().unwrap() as f64,
    );
    (x - 0.3).powi(2) + (y - 0.6).powi(2) + 0.01 * (k - 3.0).abs() + (seed % 5) as f64 * 1e-3
}

#[test]
fn concurrent_trials_in_processes_get_their_own_results() {
    let dir = tempfile::tempdir().unwrap();
    let (cmd, out) = run_study(
        dir.path(),
        "conc",
        16,
        "bowl",
        &[
            "processes=1",
            "parallelism=3",
            "concurrent=4",
            "n_seeds=7",
            "chunk=2",
        ],
    );
    assert_success(&cmd, &out);
    let journal = std::fs::read_to_string(dir.path().join("conc/journal.jsonl")).unwrap();
    let mut params = std::collections::BTreeMap::new();
    let mut checked = 0;
    for line in journal.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        let trial = e["trial"].as_u64().unwrap();
        match e["event"].as_str().unwrap() {
            "asked" => {
                params.insert(trial, e["params"].clone());
            }
            "completed" => {
                let want = (0..7).map(|s| bowl(&params[&trial], s)).sum::<f64>() / 7.0;
                let got = e["stats"]["mean"].as_f64().unwrap();
                assert!((got - want).abs() < 1e-12, "trial {trial}: {got} != {want}");
                checked += 1;
            }
            _ => {}
        }
    }
    assert_eq!(checked, 16);
}
