//! Run directories written by slurptuna 0.1.0 (`tests/fixtures/runs-v1`, see its README) resume
//! under this code to the result the uninterrupted run had.

use std::path::Path;

use slurptuna::{optimize_run, RunOptions};

use crate::util::{bowl, trial_sequence};

fn fixtures() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/runs-v1"
    ))
}

/// Copies the directory tree `from` to `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

#[test]
fn an_interrupted_single_mode_run_of_the_previous_release_resumes_to_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(
        &fixtures().join("single/interrupted"),
        &dir.path().join("interrupted"),
    );
    let r = optimize_run(
        &bowl("legacy"),
        RunOptions {
            run_root: dir.path().to_path_buf(),
            run_name: Some("interrupted".into()),
            n_trials: 10,
            n_seeds: Some(6),
            chunk_size: Some(2),
            progress: false,
            ..Default::default()
        },
    )
    .unwrap();
    let expected: Vec<(String, String)> = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("single/expected.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(trial_sequence(&r), expected);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.run_dir.join("meta.json")).unwrap())
            .unwrap();
    assert_eq!(meta["resumes"].as_array().unwrap().len(), 2, "{meta}");
    assert_eq!(meta["resumes"][1]["unfinished_trials"], 1, "{meta}");
    // The original's DISTRIBUTED fields are recorded in SINGLE mode too.
    for key in [
        "slurm_qos",
        "worker_time_limit_seconds",
        "array_parallelism_limit",
    ] {
        assert!(meta.get(key).is_some(), "meta.json keeps '{key}': {meta}");
    }
}

#[cfg(all(feature = "fixtures", feature = "slurm"))]
#[test]
fn an_interrupted_distributed_run_finishes_from_its_trial_directory() {
    use crate::util::{assert_success, fixture, run_with_timeout};
    use std::process::Command;
    use std::time::Duration;

    // Chunk 1 of trial 2 is only in the trial directory, so the resumed controller delivers it
    // from there and submits nothing: no cluster is needed.
    let dir = tempfile::tempdir().unwrap();
    copy_tree(
        &fixtures().join("distributed/legacy-dist"),
        &dir.path().join("legacy-dist"),
    );
    let mut cmd = Command::new(fixture("study"));
    cmd.arg(dir.path())
        .args(["legacy-dist", "3", "bowl", "mode=distributed", "poll=1"])
        .args(["n_seeds=6", "chunk=3"])
        .current_dir(dir.path());
    let out = run_with_timeout(&mut cmd, Duration::from_secs(120));
    assert_success(&cmd, &out);
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("distributed/expected.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(got["trials"], want["trials"]);
    assert_eq!(got["best_params"], want["best_params"]);
    let jobs = std::fs::read_to_string(dir.path().join("legacy-dist/trials/trial_00002/jobs.json"))
        .unwrap();
    let jobs: serde_json::Value = serde_json::from_str(&jobs).unwrap();
    assert_eq!(
        jobs["jobs"].as_array().unwrap().len(),
        1,
        "nothing was submitted: {jobs}"
    );
}
