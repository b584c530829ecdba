use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use slurptuna_core::{Direction, RunSummary, TrialNumber};
use slurptuna_store::{read_json, write_json_atomic, FsStore, SUMMARY_FILE};

use crate::common::{child_role, params, spawn_role, Rng, CHILD_MAX_LIFE};

const KILL_TEST: &str = "atomic::writer_killed_mid_write_never_leaves_partial_json";

fn summary(i: u64) -> RunSummary {
    RunSummary {
        best_value: Some(i as f64),
        best_params: Some(params(i)),
        best_trial: Some(TrialNumber(i)),
        n_complete: i,
        n_failed: 0,
        n_pruned: 0,
        seeds_evaluated: 0,
        seeds_saved: 0,
        n_trials: u64::MAX,
        direction: Direction::Minimize,
        validated: None,
    }
}

/// A document big enough that a non-atomic write would be visible half-way.
fn big(i: u64) -> Vec<RunSummary> {
    (0..200).map(|k| summary(i * 1000 + k)).collect()
}

#[test]
fn readers_never_see_a_partial_document() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(SUMMARY_FILE);
    write_json_atomic(&path, &big(0)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (path, stop) = (path.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let doc: Vec<RunSummary> = read_json(&path).unwrap().unwrap();
                assert_eq!(doc.len(), 200);
                reads += 1;
            }
            reads
        })
    };
    for i in 1..300 {
        write_json_atomic(&path, &big(i)).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "temporary files left behind");
}

fn child_rewrite(dir: &Path) {
    let path = dir.join(SUMMARY_FILE);
    println!("WRITING");
    let deadline = Instant::now() + CHILD_MAX_LIFE;
    let mut i = 0;
    while Instant::now() < deadline {
        write_json_atomic(&path, &big(i)).unwrap();
        i += 1;
    }
}

#[test]
fn writer_killed_mid_write_never_leaves_partial_json() {
    if let Some((_, arg)) = child_role() {
        return child_rewrite(Path::new(&arg));
    }
    let dir = tempfile::tempdir().unwrap();
    write_json_atomic(&dir.path().join(SUMMARY_FILE), &big(0)).unwrap();
    let (mut rng, seed) = Rng::from_time();
    for round in 0..10 {
        let mut child = spawn_role(KILL_TEST, "rewrite", dir.path());
        child.expect_line("WRITING", Duration::from_secs(30));
        std::thread::sleep(Duration::from_micros(2_000 + rng.below(30_000)));
        child.kill();
        let doc: Vec<RunSummary> = read_json(&dir.path().join(SUMMARY_FILE))
            .unwrap_or_else(|e| panic!("round {round} (seed {seed}): {e}"))
            .unwrap();
        assert_eq!(doc.len(), 200);
    }
    // A store opened on the directory clears the temporary files of killed writers.
    drop(FsStore::attach(dir.path()).unwrap());
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["run.lock", "summary.json"]);
}
