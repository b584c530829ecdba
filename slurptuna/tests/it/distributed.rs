//! DISTRIBUTED mode through the public API on a real Slurm cluster. These tests run when `sinfo`
//! answers; with `SLURPTUNA_TEST_SLURM=1` (CI) a missing cluster fails them; otherwise they print a
//! visible skip message and pass.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{assert_success, cluster, fixture, run_with_timeout};

/// Job ids of jobs whose working directory is under `dir` (what a test left behind).
fn jobs_under(dir: &Path) -> Vec<String> {
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

fn assert_no_jobs_left(dir: &Path) {
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

fn study(root: &Path, name: &str, n: u64, loss: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(fixture("study"));
    cmd.arg(root)
        .arg(name)
        .arg(n.to_string())
        .arg(loss)
        .args(extra)
        .current_dir(root);
    cmd
}

fn run_json(cmd: &mut Command) -> serde_json::Value {
    let out = run_with_timeout(cmd, Duration::from_secs(240));
    assert_success(cmd, &out);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn distributed_trials_equal_single_mode() {
    if !cluster() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let args = ["n_seeds=16", "chunk=4", "poll=0.3"];
    let single = run_json(&mut study(dir.path(), "single", 3, "bowl", &args));
    let mut dist_args = args.to_vec();
    dist_args.push("mode=distributed");
    let dist = run_json(&mut study(dir.path(), "dist", 3, "bowl", &dist_args));
    assert_eq!(
        single["trials"], dist["trials"],
        "trial params and values must be identical"
    );
    assert_eq!(dist["n_complete"], 3);
    assert!(dir.path().join("dist/trials/trial_00000").is_dir());
    assert_no_jobs_left(dir.path());
}

#[test]
fn distributed_explicit_seeds_give_the_single_mode_mean() {
    if !cluster() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let r = run_json(&mut study(
        dir.path(),
        "seeds",
        1,
        "seedsum",
        &[
            "seeds=100,7,3,55,12",
            "chunk=2",
            "poll=0.3",
            "mode=distributed",
        ],
    ));
    assert_eq!(r["best_value"], 35.4);
    assert_no_jobs_left(dir.path());
}

#[test]
fn failing_task_fails_its_trial_and_the_study_goes_on() {
    if !cluster() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let r = run_json(&mut study(
        dir.path(),
        "exit",
        3,
        "exit",
        &["n_seeds=4", "chunk=2", "poll=0.3", "mode=distributed"],
    ));
    assert_eq!(r["n_failed"], 1, "{r}");
    assert_eq!(r["n_complete"], 2, "{r}");
    let failed = r["trials"][1][1].as_str().unwrap();
    assert!(
        failed.contains("FAILED"),
        "the reason must carry the Slurm state: {failed}"
    );
    assert_no_jobs_left(dir.path());
}

#[test]
fn controller_killed_mid_array_resumes_without_recomputing() {
    if !cluster() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("evaluations.log");
    let log_arg = format!("log={}", log.display());
    let args = [
        "n_seeds=12",
        "chunk=3",
        "poll=0.3",
        "mode=distributed",
        "concurrent=2",
        log_arg.as_str(),
    ];
    let mut child = study(dir.path(), "killed", 4, "logged", &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill the controller once some seeds were evaluated by its array tasks.
    let start = Instant::now();
    while std::fs::read_to_string(&log).map_or(0, |s| s.lines().count()) < 4 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no seed was evaluated"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the study ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let r = run_json(&mut study(dir.path(), "killed", 4, "logged", &args));
    assert_eq!(r["n_complete"], 4, "{r}");
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        *seen.entry(line.to_string()).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).collect();
    assert!(
        twice.is_empty(),
        "seeds evaluated more than once: {twice:?}"
    );
    assert_eq!(seen.len(), 4 * 12);
    assert_no_jobs_left(dir.path());
}

#[test]
fn hostile_entry_ids_and_descriptions_execute_nothing() {
    if !cluster() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ids = [
        "p 1",
        "it's \"quoted\"",
        "$(touch pwned)",
        "line\nbreak; touch pwned2",
    ];
    let entries = format!("entries={}", serde_json::to_string(&ids).unwrap());
    let r = run_json(&mut study(
        dir.path(),
        "hostile",
        2,
        "bowl",
        &[
            "n_seeds=4",
            "chunk=2",
            "poll=0.3",
            "mode=distributed",
            &entries,
            "description=`touch pwned3` $(touch pwned4)",
        ],
    ));
    assert_eq!(r["entries"], serde_json::json!(ids));
    for id in ids {
        assert!(r["best_values_by_entry"][id].is_number(), "{id}: {r}");
    }
    for f in ["pwned", "pwned2", "pwned3", "pwned4"] {
        assert!(
            !dir.path().join(f).exists(),
            "{f} was created: a string was executed"
        );
        assert!(
            !Path::new(f).exists(),
            "{f} was created in the test's working directory"
        );
    }
    assert_no_jobs_left(dir.path());
}
