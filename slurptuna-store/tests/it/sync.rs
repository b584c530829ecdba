use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slurptuna_core::{
    Direction, RunHistory, RunSummary, SeedStats, Store, TrialEvent, TrialNumber,
};
use slurptuna_store::{FsStore, SyncPolicy};

use crate::common::{child_role, params, spawn_role, trial_events};

fn grouped(ms: u64) -> SyncPolicy {
    SyncPolicy::Grouped {
        interval: Duration::from_millis(ms),
    }
}

fn asked(t: u64) -> TrialEvent {
    TrialEvent::Asked {
        trial: TrialNumber(t),
        params: params(t),
        control: None,
    }
}

fn completed(t: u64) -> TrialEvent {
    TrialEvent::Completed {
        trial: TrialNumber(t),
        stats: SeedStats::from_values(&[t as f64, 1.0]),
    }
}

fn summary(n_complete: u64) -> RunSummary {
    RunSummary {
        best_value: Some(0.5),
        best_params: Some(params(0)),
        best_trial: Some(TrialNumber(0)),
        n_complete,
        n_failed: 0,
        n_pruned: 0,
        seeds_evaluated: 0,
        seeds_saved: 0,
        n_trials: 10,
        direction: Direction::Minimize,
        validated: None,
    }
}

/// Waits until `store` has nothing unsynced; returns how long that took.
fn wait_clean(store: &FsStore, limit: Duration) -> Duration {
    let start = Instant::now();
    while store.is_dirty() {
        assert!(start.elapsed() < limit, "still dirty after {limit:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
    start.elapsed()
}

#[test]
fn always_syncs_every_boundary_event_and_every_summary() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::attach(dir.path())
        .unwrap()
        .with_sync_policy(SyncPolicy::Always);
    let events: Vec<TrialEvent> = (0..20)
        .flat_map(|t| trial_events(t, 2, t % 2 == 0))
        .collect();
    let boundaries = events.iter().filter(|e| e.is_boundary()).count() as u64;
    let before = store.sync_count();
    for e in &events {
        store.append(e).unwrap();
        if e.is_boundary() {
            assert!(
                !store.is_dirty(),
                "a boundary event is synced before append returns"
            );
        }
    }
    assert!(
        store.sync_count() - before >= boundaries,
        "{} syncs for {boundaries} boundary events",
        store.sync_count() - before
    );
    let before = store.sync_count();
    store.write_summary(&summary(1)).unwrap();
    assert_eq!(store.sync_count() - before, 2, "file and directory");
    assert!(!store.is_dirty());
    assert_eq!(store.load().unwrap(), RunHistory::from_events(events));
}

#[test]
fn grouped_issues_at_most_one_sync_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let interval = Duration::from_millis(200);
    let store = FsStore::attach(dir.path())
        .unwrap()
        .with_sync_policy(SyncPolicy::Grouped { interval });
    let mut events = Vec::new();
    for t in 0..500 {
        events.push(asked(t));
        events.push(completed(t));
    }
    let before = store.sync_count();
    let start = Instant::now();
    for e in &events {
        store.append(e).unwrap();
    }
    let elapsed = start.elapsed();
    let syncs = store.sync_count() - before;
    // The directory sync of the new journal, plus at most one journal sync per interval.
    let bound = (elapsed.as_secs_f64() / interval.as_secs_f64()).floor() as u64 + 2;
    assert!(
        syncs <= bound,
        "{syncs} syncs for 1000 appends in {elapsed:?} (at most {bound})"
    );
    // A chunk record is never synced on its own: the journal is dirty until `sync`.
    store.append(&trial_events(500, 1, false)[1]).unwrap();
    events.push(trial_events(500, 1, false)[1].clone());
    assert!(store.is_dirty());
    let before = store.sync_count();
    store.sync().unwrap();
    assert!(store.sync_count() > before);
    assert!(!store.is_dirty());
    let before = store.sync_count();
    store.sync().unwrap();
    assert_eq!(store.sync_count(), before, "nothing new, nothing to sync");
    assert_eq!(store.load().unwrap(), RunHistory::from_events(events));
    eprintln!("1000 grouped appends: {syncs} syncs in {elapsed:?}");
}

#[test]
fn grouped_syncs_inline_after_a_pause_longer_than_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::attach(dir.path())
        .unwrap()
        .with_sync_policy(grouped(100));
    store.append(&asked(0)).unwrap();
    wait_clean(&store, Duration::from_secs(5));
    // The trial "computes" for longer than the interval: its end is synced by `append` itself.
    std::thread::sleep(Duration::from_millis(150));
    let before = store.sync_count();
    store.append(&completed(0)).unwrap();
    assert!(!store.is_dirty(), "synced before append returned");
    assert_eq!(store.sync_count(), before + 1);
}

#[test]
fn grouped_leaves_a_quick_event_to_the_flusher_one_interval_later() {
    let dir = tempfile::tempdir().unwrap();
    let interval = Duration::from_millis(100);
    let store = FsStore::attach(dir.path())
        .unwrap()
        .with_sync_policy(SyncPolicy::Grouped { interval });
    let start = Instant::now();
    store.append(&asked(0)).unwrap(); // first boundary event: synced inline
    assert!(!store.is_dirty());
    let before = store.sync_count();
    store.append(&completed(0)).unwrap();
    assert!(
        store.is_dirty(),
        "a quick second event waits for the interval"
    );
    assert_eq!(store.sync_count(), before);
    wait_clean(&store, Duration::from_secs(10));
    let waited = start.elapsed();
    assert!(
        waited >= interval,
        "synced after {waited:?}, before the interval"
    );
    assert_eq!(store.sync_count(), before + 1);
}

#[test]
fn dropping_a_grouped_store_stops_its_flusher_and_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::attach(dir.path())
        .unwrap()
        .with_sync_policy(grouped(3_600_000));
    let counter = store.sync_counter();
    store.append(&asked(0)).unwrap();
    store.append(&completed(0)).unwrap();
    store.write_summary(&summary(1)).unwrap();
    assert!(store.is_dirty());
    let before = counter.get();
    let start = Instant::now();
    drop(store);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "drop waited for the flusher's hour"
    );
    // The journal, summary.json and the run directory.
    assert_eq!(counter.get(), before + 3);
    let store = FsStore::attach(dir.path()).unwrap();
    assert_eq!(store.load().unwrap().n_finished(), 1);
    assert_eq!(store.read_summary().unwrap(), Some(summary(1)));
}

#[test]
fn grouped_summary_is_renamed_now_and_synced_by_sync() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::attach(dir.path())
        .unwrap()
        .with_sync_policy(grouped(100));
    let before = store.sync_count();
    store.write_summary(&summary(1)).unwrap();
    store.write_summary(&summary(2)).unwrap();
    assert_eq!(store.sync_count(), before, "no fsync when writing");
    assert_eq!(store.read_summary().unwrap(), Some(summary(2)));
    assert!(store.is_dirty());
    store.sync().unwrap();
    assert_eq!(
        store.sync_count(),
        before + 2,
        "summary.json and the run directory"
    );
    assert!(!store.is_dirty());
    // meta.json stays fully synced under every policy.
    let before = store.sync_count();
    store.write_meta(&crate::common::meta("toy")).unwrap();
    assert_eq!(store.sync_count(), before + 2);
    assert!(!store.is_dirty());
}

#[test]
fn switching_policies_keeps_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut events = Vec::new();
    let mut store = FsStore::attach(dir.path()).unwrap();
    for (i, policy) in [grouped(50), SyncPolicy::Always, grouped(0), grouped(10_000)]
        .into_iter()
        .enumerate()
    {
        store = store.with_sync_policy(policy);
        assert_eq!(store.sync_policy(), policy);
        for e in trial_events(i as u64, 2, true) {
            store.append(&e).unwrap();
            events.push(e);
        }
    }
    assert_eq!(
        store.load().unwrap(),
        RunHistory::from_events(events.clone())
    );
    drop(store);
    let store = FsStore::attach(dir.path()).unwrap();
    assert_eq!(store.load().unwrap(), RunHistory::from_events(events));
}

#[test]
fn concurrent_grouped_appends_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        FsStore::attach(dir.path())
            .unwrap()
            .with_sync_policy(grouped(2)),
    );
    let threads: Vec<_> = (0..4u64)
        .map(|k| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..100 {
                    let t = k * 1000 + i;
                    for e in trial_events(t, 1, i % 3 == 0) {
                        store.append(&e).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    store.sync().unwrap();
    assert!(!store.is_dirty());
    let h = store.load().unwrap();
    assert_eq!(h.n_finished(), 400);
    assert_eq!(h.unfinished().count(), 0);
}

const ABORT_TEST: &str = "sync::an_aborted_process_loses_nothing_it_appended";
const ABORT_TRIALS: u64 = 30;

/// The events the aborting child appends: finished trials, then one in flight.
fn abort_events() -> Vec<TrialEvent> {
    let mut ev: Vec<TrialEvent> = (0..ABORT_TRIALS)
        .flat_map(|t| trial_events(t, 2, t % 2 == 0))
        .collect();
    let mut last = trial_events(ABORT_TRIALS, 2, true);
    last.pop();
    ev.extend(last);
    ev
}

/// Child: appends under `Grouped` with an interval of an hour (nothing is synced after the
/// first event), says so, and aborts: no sync, no destructor.
fn child_append_then_abort(dir: &Path) {
    let store = FsStore::attach(dir)
        .unwrap()
        .with_sync_policy(grouped(3_600_000));
    for e in abort_events() {
        store.append(&e).unwrap();
    }
    store.write_summary(&summary(ABORT_TRIALS)).unwrap();
    assert!(store.is_dirty());
    println!("APPENDED");
    std::process::abort();
}

#[test]
fn an_aborted_process_loses_nothing_it_appended() {
    if let Some((role, arg)) = child_role() {
        assert_eq!(role, "append-abort");
        return child_append_then_abort(Path::new(&arg));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_role(ABORT_TEST, "append-abort", dir.path());
    child.expect_line("APPENDED", Duration::from_secs(60));
    let status = child.wait_timeout(Duration::from_secs(30));
    assert!(!status.success(), "the child must have aborted: {status}");
    let store = FsStore::attach(dir.path()).unwrap();
    let (h, report) = store.load_with_report().unwrap();
    assert_eq!(h, RunHistory::from_events(abort_events()));
    assert_eq!(report.dropped_tail_bytes, 0);
    assert_eq!(report.invalid_chunks, 0);
    assert_eq!(
        h.chunks(TrialNumber(ABORT_TRIALS)).map(|c| c.len()),
        Some(2)
    );
    assert_eq!(store.read_summary().unwrap(), Some(summary(ABORT_TRIALS)));
}
