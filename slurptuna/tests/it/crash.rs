use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{assert_success, fixture, run_with_timeout};

const N_TRIALS: u64 = 30;
const ARGS: [&str; 3] = ["n_seeds=6", "chunk=2", "parallelism=1"];

fn study(root: &Path, name: &str) -> Command {
    let mut cmd = Command::new(fixture("study"));
    cmd.arg(root)
        .arg(name)
        .arg(N_TRIALS.to_string())
        .arg("slow")
        .args(ARGS)
        .current_dir(root);
    cmd
}

/// `(params, value)` of every finished trial, from the journal, checking that no trial is finished
/// twice and every trial number is used once.
fn sequence(run_dir: &Path) -> Vec<(String, String)> {
    let history = slurptuna_store::read_history(run_dir).unwrap();
    let journal = std::fs::read_to_string(run_dir.join("journal.jsonl")).unwrap();
    let mut finishes: BTreeMap<u64, usize> = BTreeMap::new();
    for line in journal.lines() {
        let e: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("bad journal line {line:?}: {e}"));
        if matches!(e["event"].as_str(), Some("completed" | "failed")) {
            *finishes.entry(e["trial"].as_u64().unwrap()).or_default() += 1;
        }
    }
    assert!(
        finishes.values().all(|&n| n == 1),
        "a trial finished twice: {finishes:?}"
    );
    history
        .trials()
        .map(|t| {
            assert!(t.is_finished(), "trial {} left unfinished", t.number);
            (t.params.to_json(), format!("{:?}", t.state))
        })
        .collect()
}

/// The finished trials of a run (number → state), read without the run lock; an empty map when
/// the run does not exist yet.
fn finished_trials(run_dir: &Path) -> BTreeMap<u64, String> {
    match slurptuna_store::read_history(run_dir) {
        Ok(h) => h
            .trials()
            .filter(|t| t.is_finished())
            .map(|t| (t.number.0, format!("{:?}", t.state)))
            .collect(),
        Err(_) => BTreeMap::new(),
    }
}

fn all_json_parses(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all_json_parses(&path);
        } else if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            serde_json::from_str::<serde_json::Value>(&text)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}\n{text}", path.display()));
        }
    }
}

/// A small deterministic generator for kill times.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn sigkill_anywhere_then_resume_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut reference = study(dir.path(), "reference");
    let out = run_with_timeout(&mut reference, Duration::from_secs(120));
    assert_success(&reference, &out);
    let want = sequence(&dir.path().join("reference"));
    assert_eq!(want.len() as u64, N_TRIALS);

    let mut rng = 0x2545_F491_4F6C_DD1D_u64;
    let mut kills = 0;
    let mut seen: BTreeMap<u64, String> = BTreeMap::new();
    let started = Instant::now();
    while kills < 25 {
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "crash test took too long"
        );
        let mut child = study(dir.path(), "crashy")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Dense kill points: from the first milliseconds of a start (opening the run, reading
        // the journal) to well inside the trial loop.
        let delay = Duration::from_micros(500 + next(&mut rng) % 150_000);
        std::thread::sleep(delay);
        match child.try_wait().unwrap() {
            Some(status) => {
                assert!(status.success(), "the study failed on its own: {status}");
                break;
            }
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
            }
        }
        // Nothing a killed controller reported is lost: every trial finished before this kill
        // is still finished, with the same result, in every later state of the run.
        let now = finished_trials(&dir.path().join("crashy"));
        for (trial, state) in &seen {
            assert_eq!(
                now.get(trial),
                Some(state),
                "trial {trial} was finished before kill {kills} and is not any more"
            );
        }
        seen = now;
    }
    assert!(
        kills >= 25,
        "only {kills} kills landed before the study finished"
    );
    let mut finish = study(dir.path(), "crashy");
    let out = run_with_timeout(&mut finish, Duration::from_secs(120));
    assert_success(&finish, &out);
    let got = sequence(&dir.path().join("crashy"));
    assert_eq!(
        got, want,
        "the resumed run differs from the uninterrupted one"
    );
    all_json_parses(dir.path());
}

#[test]
fn two_launchers_on_one_run_exactly_one_runs() {
    let dir = tempfile::tempdir().unwrap();
    let spawn = || {
        study(dir.path(), "shared")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let ok = [&a, &b].iter().filter(|o| o.status.success()).count();
    assert_eq!(ok, 1, "exactly one launcher must run");
    let loser = if a.status.success() { &b } else { &a };
    let err = String::from_utf8_lossy(&loser.stderr);
    assert!(
        err.contains("pid"),
        "the lock error must name the holder: {err}"
    );
    assert_eq!(sequence(&dir.path().join("shared")).len() as u64, N_TRIALS);
    all_json_parses(dir.path());
}

#[test]
fn ctrl_c_stops_cleanly_and_the_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = study(dir.path(), "interrupted")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the journal exists, the run is in progress and its signal handling armed.
    let journal = dir.path().join("interrupted/journal.jsonl");
    let start = Instant::now();
    while !journal.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the study did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: sending a signal to our own child process.
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(rc, 0);
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the study ignored SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("interrupted") && err.contains("resume"),
        "{err}"
    );
    let mut finish = study(dir.path(), "interrupted");
    let out = run_with_timeout(&mut finish, Duration::from_secs(120));
    assert_success(&finish, &out);
    assert_eq!(
        sequence(&dir.path().join("interrupted")).len() as u64,
        N_TRIALS
    );
}
