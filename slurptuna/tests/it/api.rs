use std::process::Command;
use std::time::Duration;

use crate::util::{assert_success, fixture, run_with_timeout};

#[test]
fn seed_program_runs_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(fixture("seed-api"));
    cmd.current_dir(dir.path());
    let out = run_with_timeout(&mut cmd, Duration::from_secs(120));
    assert_success(&cmd, &out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let best: f64 = lines[0].split_whitespace().next().unwrap().parse().unwrap();
    assert!(best.is_finite() && best < 0.5, "{stdout}");
    assert!(lines[0].contains("runs/toy_v0001"), "{stdout}");
    let alpha: f64 = lines[1].parse().unwrap();
    assert!((0.0..=1.0).contains(&alpha));
    assert!(dir.path().join("runs/toy_v0001/meta.json").is_file());
    assert!(dir
        .path()
        .join("runs/toy_entries_v0001/summary.json")
        .is_file());
    assert!(dir
        .path()
        .join("runs/toy_entries_v0001/p01/summary.json")
        .is_file());
}
