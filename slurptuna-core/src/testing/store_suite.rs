//! `store_suite`: the conformance suite of [`Store`] backends.

use crate::error::Result;
use crate::evaluate::ChunkResult;
use crate::mode::Direction;
use crate::params::Params;
use crate::space::{search_param, ParamSpace};
use crate::stats::SeedStats;
use crate::store::{
    ResumeRecord, RunHistory, RunMeta, RunSummary, Store, TrialEvent, ValidatedBest, ValidatedTrial,
};
use crate::testing::conformance;
use crate::trial::{ChunkIndex, ChunkKey, TrialNumber, TrialState};

fn p(x: f64) -> Params {
    [("x", x)].into_iter().collect()
}

/// A `meta.json` with every field set, backend settings included.
fn meta() -> Result<RunMeta> {
    let space = ParamSpace::new([
        ("x", search_param().range(0.0, 1.0)),
        ("k", search_param().allowed(["a", "b"])),
    ])?;
    let mut settings = serde_json::Map::new();
    settings.insert("slurm_qos".into(), "short".into());
    settings.insert("array_parallelism_limit".into(), serde_json::Value::Null);
    Ok(RunMeta {
        format_version: crate::RUN_FORMAT_VERSION,
        loss_name: "suite".into(),
        description: "store suite \"quoted\"\nnewline".into(),
        run_name: "suite_v0001".into(),
        run_dir: "runs/suite_v0001".into(),
        mode: "distributed".into(),
        backend: "slurm".into(),
        n_trials: 3,
        entry_id: Some("p 01/ü".into()),
        started_at_utc: "2026-01-01T00:00:00+00:00".into(),
        seed_start: 5,
        seed_end: 104,
        n_seeds: 100,
        chunk_size: 10,
        num_chunks: 10,
        max_concurrent_trials: 2,
        worker_parallelism: 4,
        direction: Direction::Maximize,
        random_seed: 123,
        sampler: "tpe".into(),
        space,
        seeds_fingerprint: "00ff00ff00ff00ff".into(),
        resumes: vec![ResumeRecord {
            at_utc: "2026-01-02T00:00:00+00:00".into(),
            finished_trials: 1,
            unfinished_trials: 1,
        }],
        completed_at_utc: Some("2026-01-03T00:00:00+00:00".into()),
        duration_seconds: Some(12.5),
        best_value: Some(-0.25),
        best_params: Some(p(0.1)),
        settings,
    })
}

/// The conformance suite for [`Store`] backends: call it on a fresh, empty store.
///
/// Checks that `load` returns the fold of what was appended (failure reasons with quotes and
/// newlines, chunk results with per-seed values, unfinished trials and their chunks), that
/// `sync` succeeds (also twice, and after documents were written) and `load` after it returns
/// every event, that `meta.json` and `summary.json` round-trip exactly, the last write winning,
/// and that `trial_dir` names a directory (the same each time, inside the run directory)
/// without creating it.
pub fn store_suite(store: &dyn Store) -> Result<()> {
    let fail = |check: &'static str, detail: String| conformance("store", check, detail);
    if store.load()?.trials().next().is_some() {
        return Err(fail("fresh store", "a fresh store must be empty".into()));
    }
    if store.read_meta()?.is_some() || store.read_summary()?.is_some() {
        return Err(fail(
            "fresh store",
            "a fresh store has no meta and no summary".into(),
        ));
    }
    let result = ChunkResult {
        stats: SeedStats::from_values(&[1.0, 2.0]),
        values: Some(vec![1.0, 2.0]),
    };
    let events = vec![
        TrialEvent::Asked {
            trial: TrialNumber(0),
            params: p(0.1),
            control: None,
        },
        TrialEvent::ChunkDone {
            trial: TrialNumber(0),
            chunk: ChunkIndex(0),
            key: ChunkKey::new("k0"),
            result: result.clone(),
        },
        TrialEvent::Completed {
            trial: TrialNumber(0),
            stats: result.stats,
        },
        TrialEvent::Asked {
            trial: TrialNumber(1),
            params: p(0.2),
            control: None,
        },
        TrialEvent::Failed {
            trial: TrialNumber(1),
            reason: "boom \"quoted\"\nline".into(),
        },
        TrialEvent::Asked {
            trial: TrialNumber(2),
            params: p(0.3),
            control: None,
        },
        TrialEvent::ChunkDone {
            trial: TrialNumber(2),
            chunk: ChunkIndex(1),
            key: ChunkKey::new("k1"),
            result: result.clone(),
        },
    ];
    for e in &events {
        store.append(e)?;
    }
    let h = store.load()?;
    if h != RunHistory::from_events(events.clone()) {
        return Err(fail(
            "journal",
            "load() must return the fold of the appended events".into(),
        ));
    }
    store
        .sync()
        .map_err(|e| fail("sync", format!("sync() after appends failed: {e}")))?;
    if store.load()? != h {
        return Err(fail(
            "sync",
            "load() after sync() must return every event appended before it".into(),
        ));
    }
    // Syncing twice, and syncing with nothing new, is harmless.
    store
        .sync()
        .map_err(|e| fail("sync", format!("a second sync() failed: {e}")))?;
    if h.n_finished() != 2 || h.next_trial_number() != TrialNumber(3) {
        return Err(fail(
            "journal",
            format!(
                "after reload: {} finished (want 2), next trial {} (want 3)",
                h.n_finished(),
                h.next_trial_number()
            ),
        ));
    }
    if !matches!(h.trial(TrialNumber(1)).map(|t| &t.state), Some(TrialState::Failed { reason }) if reason.contains("quoted"))
    {
        return Err(fail("journal", "failure reasons must round-trip".into()));
    }
    let chunk = h.chunks(TrialNumber(2)).and_then(|c| c.get(&ChunkIndex(1)));
    if chunk.map(|c| &c.result) != Some(&result) {
        return Err(fail(
            "journal",
            "chunk results (with values) must round-trip".into(),
        ));
    }

    let first = meta()?;
    store.write_meta(&first)?;
    let mut second = first.clone();
    second.resumes.push(ResumeRecord {
        at_utc: "2026-01-04T00:00:00+00:00".into(),
        finished_trials: 2,
        unfinished_trials: 1,
    });
    second
        .settings
        .insert("slurm_qos".into(), serde_json::Value::Null);
    store.write_meta(&second)?;
    match store.read_meta()? {
        Some(m) if m == second => {}
        other => {
            return Err(fail(
                "meta round trip",
                format!("read_meta() must return the last meta written, exactly: wrote {second:?}, read {other:?}"),
            ))
        }
    }
    let summary = |n_complete: u64| RunSummary {
        best_value: Some(1.5),
        best_params: Some(p(0.1)),
        best_trial: Some(TrialNumber(0)),
        n_complete,
        n_failed: 1,
        n_pruned: 0,
        seeds_evaluated: 4,
        seeds_saved: 0,
        n_trials: 3,
        direction: Direction::Minimize,
        // The honest best, when the study has validation seeds (it survives the round trip).
        validated: (n_complete > 0).then(|| ValidatedBest {
            trial: TrialNumber(0),
            params: p(0.1),
            value: 1.75,
            stderr: 0.125,
            n_seeds: 50,
            fit_best_trial: TrialNumber(0),
            candidates: vec![ValidatedTrial {
                trial: TrialNumber(0),
                fit_value: 1.5,
                selection_mean: 1.625,
                value: 1.75,
                stderr: 0.125,
            }],
        }),
    };
    store.write_summary(&summary(0))?;
    store.write_summary(&summary(1))?;
    match store.read_summary()? {
        Some(s) if s == summary(1) => {}
        other => {
            return Err(fail(
                "summary round trip",
                format!("read_summary() must return the last summary written: read {other:?}"),
            ))
        }
    }
    if store.load()? != h {
        return Err(fail(
            "journal",
            "writing meta and summary must not change the journal".into(),
        ));
    }
    store.sync().map_err(|e| {
        fail(
            "sync",
            format!("sync() after writing documents failed: {e}"),
        )
    })?;
    if store.read_summary()? != Some(summary(1)) || store.read_meta()? != Some(second) {
        return Err(fail(
            "sync",
            "sync() must not change meta.json or summary.json".into(),
        ));
    }
    // One more event after a sync, then everything again.
    let late = TrialEvent::Completed {
        trial: TrialNumber(2),
        stats: SeedStats::from_values(&[4.0]),
    };
    store.append(&late)?;
    store.sync()?;
    let all = RunHistory::from_events(events.into_iter().chain([late]));
    if store.load()? != all {
        return Err(fail(
            "sync",
            "an event appended after a sync must be loaded back like the others".into(),
        ));
    }
    check_trial_dir(store)
}

/// `trial_dir` names a directory without creating it (whoever writes there creates it).
fn check_trial_dir(store: &dyn Store) -> Result<()> {
    let fail = |detail: String| conformance("store", "trial dir", detail);
    let trial = TrialNumber(977);
    let Some(dir) = store.trial_dir(trial)? else {
        return Ok(());
    };
    if dir.exists() {
        return Err(fail(format!(
            "trial_dir() must not create the directory, but {} exists",
            dir.display()
        )));
    }
    if store.trial_dir(trial)?.as_deref() != Some(dir.as_path()) {
        return Err(fail(
            "trial_dir() must return the same path each time".into(),
        ));
    }
    if store.trial_dir(TrialNumber(978))?.as_deref() == Some(dir.as_path()) {
        return Err(fail("two trials must not share a directory".into()));
    }
    if let Some(run_dir) = store.run_dir() {
        if !dir.starts_with(run_dir) {
            return Err(fail(format!(
                "trial directory {} is not inside the run directory {}",
                dir.display(),
                run_dir.display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MemoryStore;
    use std::path::{Path, PathBuf};

    /// A store that forgets `meta.json`: the suite must notice.
    struct ForgetfulStore(MemoryStore);

    impl Store for ForgetfulStore {
        fn name(&self) -> &'static str {
            "forgetful"
        }
        fn append(&self, event: &TrialEvent) -> Result<()> {
            self.0.append(event)
        }
        fn load(&self) -> Result<RunHistory> {
            self.0.load()
        }
        fn read_meta(&self) -> Result<Option<RunMeta>> {
            Ok(self.0.read_meta()?.map(|mut m| {
                m.settings.clear();
                m
            }))
        }
        fn write_meta(&self, meta: &RunMeta) -> Result<()> {
            self.0.write_meta(meta)
        }
        fn write_summary(&self, summary: &RunSummary) -> Result<()> {
            self.0.write_summary(summary)
        }
        fn read_summary(&self) -> Result<Option<RunSummary>> {
            self.0.read_summary()
        }
        fn run_dir(&self) -> Option<&Path> {
            None
        }
        fn trial_dir(&self, _: TrialNumber) -> Result<Option<PathBuf>> {
            Ok(None)
        }
    }

    #[test]
    fn a_store_that_drops_backend_settings_fails_the_suite() {
        let e = store_suite(&ForgetfulStore(MemoryStore::new())).unwrap_err();
        assert!(e.to_string().contains("meta round trip"), "{e}");
    }

    /// A store whose `sync` fails, or whose `trial_dir` creates the directory.
    struct Misbehaving {
        inner: MemoryStore,
        sync_fails: bool,
        run_dir: PathBuf,
    }

    impl Store for Misbehaving {
        fn name(&self) -> &'static str {
            "misbehaving"
        }
        fn append(&self, event: &TrialEvent) -> Result<()> {
            self.inner.append(event)
        }
        fn load(&self) -> Result<RunHistory> {
            self.inner.load()
        }
        fn read_meta(&self) -> Result<Option<RunMeta>> {
            self.inner.read_meta()
        }
        fn write_meta(&self, meta: &RunMeta) -> Result<()> {
            self.inner.write_meta(meta)
        }
        fn write_summary(&self, summary: &RunSummary) -> Result<()> {
            self.inner.write_summary(summary)
        }
        fn read_summary(&self) -> Result<Option<RunSummary>> {
            self.inner.read_summary()
        }
        fn sync(&self) -> Result<()> {
            if self.sync_fails {
                return Err(crate::CoreError::Store {
                    store: "misbehaving",
                    source: "no disk".into(),
                });
            }
            Ok(())
        }
        fn run_dir(&self) -> Option<&Path> {
            Some(&self.run_dir)
        }
        fn trial_dir(&self, trial: TrialNumber) -> Result<Option<PathBuf>> {
            let d = self.run_dir.join(format!("t{}", trial.0));
            std::fs::create_dir_all(&d).map_err(|e| crate::CoreError::Store {
                store: "misbehaving",
                source: Box::new(e),
            })?;
            Ok(Some(d))
        }
    }

    #[test]
    fn failing_syncs_and_eager_trial_dirs_fail_the_suite() {
        let root = std::env::temp_dir().join(format!("slurptuna-suite-{}", std::process::id()));
        for (sync_fails, check) in [(true, "sync"), (false, "trial dir")] {
            let _ = std::fs::remove_dir_all(&root);
            let store = Misbehaving {
                inner: MemoryStore::new(),
                sync_fails,
                run_dir: root.clone(),
            };
            let e = store_suite(&store).unwrap_err();
            assert!(e.to_string().contains(check), "{check}: {e}");
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}
