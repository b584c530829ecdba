use std::process::Command;
use std::time::Duration;

use slurptuna::{optimize_run, RunOptions};

use crate::util::{assert_success, bowl, opts, run_with_timeout};

fn cli(args: &[&std::ffi::OsStr]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slurptuna"));
    cmd.args(args);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(30));
    assert_success(&cmd, &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn cli_lists_shows_and_prints_trials() {
    let dir = tempfile::tempdir().unwrap();
    let r = optimize_run(
        &bowl("cli"),
        RunOptions {
            n_trials: 5,
            ..opts(dir.path())
        },
    )
    .unwrap();
    let runs = cli(&["runs".as_ref(), dir.path().as_os_str()]);
    assert!(runs.contains("cli_v0001") && runs.contains("5/5"), "{runs}");
    let show = cli(&["show".as_ref(), r.run_dir.as_os_str()]);
    assert!(
        show.contains("5 complete, 0 failed") && show.contains("best"),
        "{show}"
    );
    let trials = cli(&["trials".as_ref(), r.run_dir.as_os_str()]);
    assert_eq!(trials.lines().count(), 6, "a header and 5 trials: {trials}");
    assert!(
        trials.lines().skip(1).all(|l| l.contains("COMPLETE")),
        "{trials}"
    );
    let json = cli(&["trials".as_ref(), r.run_dir.as_os_str(), "--json".as_ref()]);
    for line in json.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["state"], "COMPLETE");
    }
}

#[test]
fn cli_names_a_missing_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slurptuna"));
    cmd.arg("show").arg(dir.path().join("nope"));
    let out = run_with_timeout(&mut cmd, Duration::from_secs(30));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}
