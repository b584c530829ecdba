//! `store_suite`: the conformance suite of [`Store`] backends.

use crate::error::Result;
use crate::evaluate::ChunkResult;
use crate::mode::Direction;
use crate::params::Params;
use crate::space::{search_param, ParamSpace};
use crate::stats::SeedStats;
use crate::store::{ResumeRecord, RunHistory, RunMeta, RunSummary, Store, TrialEvent};
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
/// newlines, chunk results with per-seed values, unfinished trials and their chunks), and that
/// `meta.json` and `summary.json` round-trip exactly, the last write winning.
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
        },
        TrialEvent::Failed {
            trial: TrialNumber(1),
            reason: "boom \"quoted\"\nline".into(),
        },
        TrialEvent::Asked {
            trial: TrialNumber(2),
            params: p(0.3),
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
    if h != RunHistory::from_events(events) {
        return Err(fail(
            "journal",
            "load() must return the fold of the appended events".into(),
        ));
    }
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
        n_trials: 3,
        direction: Direction::Minimize,
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
}
