use std::path::Path;
use std::time::Duration;

use slurptuna_core::{RunHistory, Store, TrialEvent, TrialNumber};
use slurptuna_store::{FsStore, SyncPolicy};

use crate::common::{child_role, spawn_role, trial_events, Rng};

const TRIALS: u64 = 600;
const CHUNKS: u64 = 4;
const TEST: &str = "crash::sigkill_anywhere_then_resume_loses_nothing";

/// Child: resumes the run in `dir` with `policy`, finishing an in-flight trial from its stored
/// chunks, and appends until `TRIALS` trials are complete.
fn child_append(dir: &Path, policy: SyncPolicy) {
    let store = FsStore::attach(dir).unwrap().with_sync_policy(policy);
    let h = store.load().unwrap();
    println!("STARTED");
    for t in 0..TRIALS {
        let done = h.trial(TrialNumber(t)).map(|r| r.is_finished());
        if done == Some(true) {
            continue;
        }
        let stored = h.chunks(TrialNumber(t));
        for e in trial_events(t, CHUNKS, true) {
            let skip = match &e {
                TrialEvent::Asked { .. } => done.is_some(),
                TrialEvent::ChunkDone { chunk, .. } => {
                    stored.is_some_and(|s| s.contains_key(chunk))
                }
                _ => false,
            };
            if !skip {
                store.append(&e).unwrap();
            }
        }
    }
    println!("DONE");
}

fn expected(n_finished: u64) -> RunHistory {
    RunHistory::from_events((0..n_finished).flat_map(|t| trial_events(t, CHUNKS, true)))
}

#[test]
fn sigkill_anywhere_then_resume_loses_nothing() {
    if let Some((role, arg)) = child_role() {
        // Grouped with a short interval, so inline and background syncs happen mid-run.
        let policy = match role.as_str() {
            "append-always" => SyncPolicy::Always,
            "append-grouped" => SyncPolicy::Grouped {
                interval: Duration::from_millis(3),
            },
            other => panic!("unknown role {other}"),
        };
        return child_append(Path::new(&arg), policy);
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut rng, seed) = Rng::from_time();
    eprintln!("kill-point seed {seed}");
    let mut kills = 0;
    let mut torn = 0;
    let mut progress = Vec::new();
    for round in 0..200 {
        let role = if round % 2 == 0 {
            "append-grouped"
        } else {
            "append-always"
        };
        let mut child = spawn_role(TEST, role, dir.path());
        let kill = kills < 25;
        if kill {
            child.expect_line("STARTED", Duration::from_secs(30));
            std::thread::sleep(Duration::from_micros(500 + rng.below(15_000)));
            child.kill();
            kills += 1;
        } else {
            child.expect_line("DONE", Duration::from_secs(60));
            assert!(child.wait_timeout(Duration::from_secs(30)).success());
        }
        let store = FsStore::attach(dir.path()).unwrap();
        let (h, report) = store.load_with_report().unwrap();
        torn += u64::from(report.dropped_tail_bytes > 0);
        assert_eq!(report.invalid_chunks, 0, "round {round}");
        // A prefix of the uninterrupted run: finished trials exact, at most one in flight
        // whose stored chunks are exactly the expected ones.
        let n = h.n_finished() as u64;
        let mut want = expected(n);
        if let Some(t) = h.unfinished().next() {
            assert_eq!(t.number, TrialNumber(n), "round {round}");
            assert_eq!(h.unfinished().count(), 1);
            let full = trial_events(n, CHUNKS, true);
            let stored = h.chunks(t.number).map_or(0, |c| c.len());
            for e in full.into_iter().take(1 + stored) {
                want.apply(e);
            }
        }
        assert_eq!(h, want, "round {round} (seed {seed})");
        progress.push(n);
        drop(store);
        if !kill {
            assert_eq!(n, TRIALS);
            break;
        }
    }
    assert_eq!(kills, 25);
    eprintln!("{kills} kills, {torn} left a torn tail; finished trials after each: {progress:?}");
    // The kills landed mid-run, not after the work was done.
    assert!(
        progress.iter().filter(|&&n| n < TRIALS).count() >= 20,
        "{progress:?}"
    );
}
