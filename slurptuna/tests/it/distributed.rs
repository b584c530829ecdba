//! DISTRIBUTED mode through the public API on a real Slurm cluster. These tests run when `sinfo`
//! answers; with `SLURPTUNA_TEST_SLURM=1` (CI) a missing cluster fails them; otherwise they print a
//! visible skip message and pass.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{
    assert_no_jobs_left, assert_success, cluster, fixture, present, run_with_timeout,
};

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

/// True when the cluster keeps accounting (`cargo xtask slurm up --accounting`); without it the
/// test prints a visible skip, or fails where accounting is required (`CI=true`).
fn accounting() -> bool {
    let answers = Command::new("sacctmgr")
        .args(["-n", "-P", "show", "qos", "format=name"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    present(
        answers,
        "Slurm accounting",
        "start the cluster with `cargo xtask slurm up --accounting`",
    )
}

#[test]
fn an_unknown_qos_is_rejected_before_any_run_dir_or_job() {
    if !cluster() || !accounting() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = study(
        dir.path(),
        "qos",
        3,
        "bowl",
        &[
            "n_seeds=16",
            "chunk=4",
            "poll=0.3",
            "mode=distributed",
            "qos=slurptuna_no_such_qos",
        ],
    );
    let out = run_with_timeout(&mut cmd, Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("slurm_qos") && stderr.contains("slurptuna_no_such_qos"),
        "the error must name the option and the value: {stderr}"
    );
    assert!(
        !dir.path().join("qos").exists(),
        "no run dir before the cluster accepted the submission"
    );
    assert_no_jobs_left(dir.path());
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

/// A racing study's arguments: 400 seeds in chunks of 50, decisions from 100 seeds on.
const RACE: [&str; 6] = [
    "n_seeds=400",
    "chunk=50",
    "racing=1",
    "min_seeds=100",
    "sampler=random",
    "poll=0.3",
];

/// Trial params and states with every race statistic, for comparing runs. A pruned trial's raw
/// statistics are left out: they also count chunks that finished beyond the decisive prefix,
/// which depends on timing (the decision itself does not).
fn decisions(r: &serde_json::Value) -> Vec<String> {
    let trials = r["trials"].as_array().expect("trials");
    trials
        .iter()
        .map(|t| {
            let state = t[1].as_str().expect("state");
            let state = match (state.find(", stats: SeedStats {"), state.find("}, looks")) {
                (Some(a), Some(b)) if state.starts_with("Pruned") => {
                    format!("{}{}", &state[..a], &state[b + 1..])
                }
                _ => state.to_string(),
            };
            format!("{} {state}", t[0])
        })
        .collect()
}

#[test]
fn racing_single_and_distributed_make_the_same_decisions() {
    if !cluster() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let single = run_json(&mut study(dir.path(), "single", 6, "noisy", &RACE));
    let mut dist_args = RACE.to_vec();
    dist_args.push("mode=distributed");
    let dist = run_json(&mut study(dir.path(), "dist", 6, "noisy", &dist_args));
    assert!(
        single["n_pruned"].as_u64().unwrap() >= 1,
        "the study must prune: {single}"
    );
    assert_eq!(
        decisions(&single),
        decisions(&dist),
        "SINGLE and DISTRIBUTED must prune the same trials at the same prefix"
    );
    // Chunks that finish beyond the decisive prefix (parallel array tasks) count as evaluated:
    // DISTRIBUTED saves at most what SINGLE does, and still saves.
    let saved = |r: &serde_json::Value| r["seeds_saved"].as_u64().expect("seeds_saved");
    assert!(
        saved(&dist) > 0 && saved(&dist) <= saved(&single),
        "{single} {dist}"
    );
    assert_no_jobs_left(dir.path());
}

#[test]
fn a_pruned_trial_cancels_the_rest_of_its_array() {
    if !cluster() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // One task at a time, 50 ms per seed (2.5 s per chunk): a prune comes while most of the
    // array is still pending.
    let mut args = RACE.to_vec();
    args.extend(["mode=distributed", "limit=1", "sleep_ms=50"]);
    let r = run_json(&mut study(dir.path(), "cancel", 4, "noisy", &args));
    let pruned = r["n_pruned"].as_u64().unwrap();
    assert!(pruned >= 1, "the study must prune: {r}");
    // Pruned trials ran only part of their array: fewer chunk results than chunks.
    let run = dir.path().join("cancel");
    let mut short = 0;
    for t in 0..4 {
        let chunks = run.join(format!("trials/trial_{t:05}/chunks"));
        let mut done: Vec<String> = std::fs::read_dir(&chunks)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".json") && !n.ends_with(".failed.json"))
                    .collect()
            })
            .unwrap_or_default();
        done.sort();
        if done.len() < 8 {
            short += 1;
        }
        // Array index = plan position, and Slurm starts an array's tasks in index order: the
        // chunks that ran are the plan's first ones (the census and min_seeds first).
        let first: Vec<String> = (0..done.len())
            .map(|c| format!("chunk_{c:05}.json"))
            .collect();
        assert_eq!(done, first, "trial {t} ran chunks out of plan order");
    }
    assert!(
        short as u64 >= pruned,
        "{short} trials have fewer than 8 chunk results, {pruned} were pruned"
    );
    assert!(r["seeds_saved"].as_u64().unwrap() > 0, "{r}");
    // And nothing of their arrays is left in the queue.
    assert_no_jobs_left(dir.path());
}

#[test]
fn a_race_killed_mid_array_resumes_to_the_same_decisions() {
    if !cluster() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut args = RACE.to_vec();
    args.extend(["mode=distributed", "sleep_ms=5"]);
    let full = run_json(&mut study(dir.path(), "full", 5, "noisy", &args));
    assert!(full["n_pruned"].as_u64().unwrap() >= 1, "{full}");
    let mut child = study(dir.path(), "killed", 5, "noisy", &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // SIGKILL once the third trial (a racing one) has stored a chunk.
    let journal = dir.path().join("killed/journal.jsonl");
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(&journal).unwrap_or_default();
        if text.contains("\"event\":\"chunk_done\",\"trial\":2") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no chunk of trial 2"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the study ended too soon"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let resumed = run_json(&mut study(dir.path(), "killed", 5, "noisy", &args));
    assert_eq!(
        decisions(&full),
        decisions(&resumed),
        "a resumed race must decide as the uninterrupted one"
    );
    assert_eq!(full["best_value"], resumed["best_value"]);
    assert_no_jobs_left(dir.path());
}

/// The honest best: 4 trials of 100 seeds, the top 2 validated on 400 fresh seeds in chunks of 50.
const VALIDATE: [&str; 6] = [
    "n_seeds=100",
    "chunk=50",
    "validation=400",
    "top_k=2",
    "sampler=random",
    "poll=0.3",
];

#[test]
fn the_honest_best_runs_on_slurm_equals_single_and_resumes_after_a_kill() {
    if !cluster() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let single = run_json(&mut study(dir.path(), "single", 4, "noisy", &VALIDATE));
    let mut args = VALIDATE.to_vec();
    args.extend(["mode=distributed", "sleep_ms=5"]);
    let dist = run_json(&mut study(dir.path(), "dist", 4, "noisy", &args));
    let v = &single["validated"];
    assert_eq!(v["n_seeds"], 200, "{single}");
    assert_eq!(
        v["candidates"].as_array().map(Vec::len),
        Some(2),
        "{single}"
    );
    assert_eq!(
        &dist["validated"], v,
        "SINGLE and DISTRIBUTED must validate to the same honest best"
    );
    // The validation's arrays ran in their own directory, beside the trial's own files.
    let best = v["trial"].as_u64().unwrap();
    let chunks = dir
        .path()
        .join(format!("dist/trials/trial_{best:05}/validation/chunks"));
    assert!(
        std::fs::read_dir(&chunks).map_or(0, |d| d.count()) >= 8,
        "no validation chunk results in {}",
        chunks.display()
    );
    // SIGKILL once the first validation chunk is journalled, then resume.
    let mut child = study(dir.path(), "killed", 4, "noisy", &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let journal = dir.path().join("killed/journal.jsonl");
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(&journal).unwrap_or_default();
        if text.contains("\"event\":\"validation_chunk_done\"") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no validation chunk"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the study ended too soon"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let resumed = run_json(&mut study(dir.path(), "killed", 4, "noisy", &args));
    assert_eq!(
        &resumed["validated"], v,
        "a resumed validation must end as the uninterrupted one"
    );
    let text = std::fs::read_to_string(&journal).unwrap();
    assert_eq!(
        text.matches("\"event\":\"validated\"").count(),
        2,
        "each candidate is validated once"
    );
    assert_no_jobs_left(dir.path());
}
