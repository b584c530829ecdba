use slurptuna_core::testing::store_suite;
use slurptuna_core::{
    ChunkIndex, ChunkResult, Direction, ResumeRecord, RunHistory, RunSummary, SeedStats, Store,
    TrialEvent, TrialNumber,
};
use slurptuna_store::{FsStore, StoreError, META_FILE, SUMMARY_FILE};

use crate::common::{meta, params, trial_events};

#[test]
fn fs_store_passes_the_core_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::attach(dir.path()).unwrap();
    store_suite(&store).unwrap();
    // And again from a fresh handle: everything was on disk.
    drop(store);
    let store = FsStore::attach(dir.path()).unwrap();
    assert_eq!(store.load().unwrap().n_finished(), 3);
    assert_eq!(store.name(), "fs");
}

#[test]
fn create_versioned_writes_meta_with_the_claimed_name() {
    let root = tempfile::tempdir().unwrap();
    let a = FsStore::create_versioned(root.path(), "toy", &meta("toy")).unwrap();
    let b = FsStore::create_versioned(root.path(), "toy", &meta("toy")).unwrap();
    assert!(a.dir().ends_with("toy_v0001") && b.dir().ends_with("toy_v0002"));
    let m = a.read_meta().unwrap().unwrap();
    assert_eq!(m.run_name, "toy_v0001");
    assert_eq!(m.run_dir, a.dir().display().to_string());
    assert_eq!(m.space, meta("toy").space);
}

#[test]
fn open_or_create_returns_the_stored_meta_on_resume() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("runs").join("named");
    let (store, old) = FsStore::open_or_create(&dir, &meta("toy")).unwrap();
    assert!(old.is_none());
    for e in trial_events(0, 2, false) {
        store.append(&e).unwrap();
    }
    drop(store);

    let mut changed = meta("other");
    changed.direction = Direction::Maximize;
    let (store, old) = FsStore::open_or_create(&dir, &changed).unwrap();
    let old = old.unwrap();
    assert_eq!(old.loss_name, "toy");
    assert_eq!(old.run_name, "named");
    let diffs = old.resume_conflicts(&changed);
    assert!(diffs.iter().any(|d| d.contains("loss name")), "{diffs:?}");
    assert!(diffs.iter().any(|d| d.contains("direction")), "{diffs:?}");
    // The stored meta is untouched until the caller decides.
    assert_eq!(store.read_meta().unwrap().unwrap().loss_name, "toy");
    // The caller records the resume, keeping the first start.
    let mut resumed = old.clone();
    resumed.resumes.push(ResumeRecord {
        at_utc: "2024-01-02T00:00:00.000000+00:00".into(),
        finished_trials: 1,
        unfinished_trials: 0,
    });
    store.write_meta(&resumed).unwrap();
    assert_eq!(store.read_meta().unwrap(), Some(resumed));
    assert_eq!(store.load().unwrap().n_finished(), 1);
}

#[test]
fn open_requires_an_existing_run() {
    let root = tempfile::tempdir().unwrap();
    let e = FsStore::open(root.path()).unwrap_err();
    assert!(matches!(e, StoreError::NotARun { .. }), "{e}");
    let s = FsStore::create_versioned(root.path(), "toy", &meta("toy")).unwrap();
    let dir = s.dir().to_path_buf();
    drop(s);
    let (_s, m) = FsStore::open(&dir).unwrap();
    assert_eq!(m.run_name, "toy_v0001");
}

#[test]
fn documents_are_pretty_json_with_the_originals_field_names() {
    let root = tempfile::tempdir().unwrap();
    let store = FsStore::create_versioned(root.path(), "toy", &meta("toy")).unwrap();
    let summary = RunSummary {
        best_value: Some(0.25),
        best_params: Some(params(3)),
        best_trial: Some(TrialNumber(3)),
        n_complete: 4,
        n_failed: 1,
        n_pruned: 0,
        seeds_evaluated: 0,
        seeds_saved: 0,
        n_trials: 10,
        direction: Direction::Minimize,
        validated: None,
    };
    store.write_summary(&summary).unwrap();
    for (file, keys) in [
        (
            META_FILE,
            &[
                "loss_name",
                "run_name",
                "run_dir",
                "mode",
                "n_trials",
                "entry_id",
                "started_at_utc",
                "seed_start",
                "seed_end",
                "n_seeds",
                "chunk_size",
                "num_chunks",
                "max_concurrent_trials",
                "array_parallelism_limit",
                "worker_parallelism",
                "worker_time_limit_seconds",
                "slurm_qos",
            ][..],
        ),
        (SUMMARY_FILE, &["best_value", "best_params"][..]),
    ] {
        let text = std::fs::read_to_string(store.dir().join(file)).unwrap();
        assert!(text.starts_with("{\n  \""), "{file} is not pretty: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        for k in keys {
            assert!(v.get(k).is_some(), "{file} lacks {k}");
        }
    }
    assert_eq!(store.read_summary_doc().unwrap(), Some(summary));
}

#[test]
fn trial_dirs_are_named_not_created() {
    let root = tempfile::tempdir().unwrap();
    let store = FsStore::attach(root.path()).unwrap();
    let d = store.trial_dir(TrialNumber(42)).unwrap().unwrap();
    assert!(d.ends_with("trials/trial_00042") && !d.exists());
    assert!(!root.path().join("trials").exists());
    assert_eq!(store.trial_dir(TrialNumber(42)).unwrap().unwrap(), d);
    assert_eq!(store.trial_path(TrialNumber(42)), d);
    assert_eq!(store.create_trial_dir(TrialNumber(42)).unwrap(), d);
    assert!(d.is_dir());
    assert_eq!(store.run_dir(), Some(root.path()));
}

#[test]
fn per_seed_values_live_in_binary_sidecars_not_in_the_journal() {
    let root = tempfile::tempdir().unwrap();
    let store = FsStore::attach(root.path()).unwrap();
    let values: Vec<f64> = (0..1000)
        .map(|i| {
            if i == 5 {
                f64::INFINITY
            } else {
                i as f64 / 3.0
            }
        })
        .collect();
    let result = ChunkResult {
        stats: SeedStats::from_values(&values),
        values: Some(values.clone()),
    };
    let events = [
        TrialEvent::Asked {
            trial: TrialNumber(0),
            params: params(0),
            control: None,
        },
        TrialEvent::ChunkDone {
            trial: TrialNumber(0),
            chunk: ChunkIndex(3),
            key: "abc".into(),
            result,
        },
    ];
    for e in &events {
        store.append(e).unwrap();
    }
    let journal = std::fs::read(store.journal_path()).unwrap();
    assert!(
        journal.len() < 600,
        "values leaked into the journal: {} bytes",
        journal.len()
    );
    let sidecars: Vec<_> = std::fs::read_dir(root.path().join("trials/trial_00000/seed_values"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect();
    assert_eq!(sidecars, vec![8000]);
    let (h, report) = store.load_with_report().unwrap();
    assert_eq!(h, RunHistory::from_events(events));
    assert_eq!(report.records, 2);
    assert_eq!(report.invalid_chunks, 0);
}

#[test]
fn store_errors_convert_to_core_errors_with_the_cause() {
    let root = tempfile::tempdir().unwrap();
    let store = FsStore::attach(root.path()).unwrap();
    std::fs::write(root.path().join(SUMMARY_FILE), "{not json").unwrap();
    let e = store.read_meta().unwrap();
    assert!(e.is_none());
    std::fs::write(root.path().join(META_FILE), "{\"loss_name\": 3").unwrap();
    let e = store.read_meta().unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("store 'fs'"), "{msg}");
    let src = std::error::Error::source(&e).unwrap().to_string();
    assert!(
        src.contains("meta.json") && src.contains("move the run directory aside"),
        "{src}"
    );
}

#[test]
fn trial_times_are_recorded_and_old_records_have_none() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::attach(dir.path()).unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    for e in crate::common::trial_events(0, 2, false) {
        store.append(&e).unwrap();
    }
    drop(store);
    // A record written before times were recorded.
    let journal = dir.path().join(slurptuna_store::JOURNAL_FILE);
    let mut text = std::fs::read_to_string(&journal).unwrap();
    text.push_str("{\"event\":\"asked\",\"trial\":1,\"params\":{\"x\":0.5}}\n");
    std::fs::write(&journal, text).unwrap();
    let h = slurptuna_store::read_history(dir.path()).unwrap();
    let t = h.times(slurptuna_core::TrialNumber(0)).unwrap();
    let (s, f) = (t.started.unwrap(), t.finished.unwrap());
    assert!(before - 1.0 <= s && s <= f, "{t:?}");
    assert!(h.times(slurptuna_core::TrialNumber(1)).is_none());
    assert!(h.trial(slurptuna_core::TrialNumber(1)).is_some());
}
