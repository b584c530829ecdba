//! Test support: an in-memory [`Store`], a scripted [`Executor`], and the conformance suite every
//! `Store` backend runs. Not a stable API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::error::{CoreError, Result};
use crate::evaluate::{evaluate_chunk, ChunkResult, SeedTask};
use crate::executor::{ChunkSink, ExecError, Executor, TrialFailure, TrialJob};
use crate::loss::LossDefinition;
use crate::params::Params;
use crate::store::{RunHistory, RunMeta, RunSummary, Store, TrialEvent};
use crate::trial::{ChunkIndex, TrialNumber, TrialState};

#[derive(Debug, Default)]
struct MemoryInner {
    events: Vec<TrialEvent>,
    meta: Option<RunMeta>,
    summary: Option<RunSummary>,
    fail_appends: bool,
}

/// A [`Store`] in memory. Clones share state, so a test keeps a clone to inspect.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<MemoryInner>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
    fn lock(&self) -> MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// Every event appended so far.
    pub fn events(&self) -> Vec<TrialEvent> {
        self.lock().events.clone()
    }
    /// The last summary written.
    pub fn summary(&self) -> Option<RunSummary> {
        self.lock().summary.clone()
    }
    /// Makes every later `append` fail (to test that the controller stops).
    pub fn fail_appends(&self, fail: bool) {
        self.lock().fail_appends = fail;
    }
}

impl Store for MemoryStore {
    fn name(&self) -> &'static str {
        "memory"
    }
    fn append(&self, event: &TrialEvent) -> Result<()> {
        let mut g = self.lock();
        if g.fail_appends {
            return Err(CoreError::Store {
                store: "memory",
                source: "append failed (scripted)".into(),
            });
        }
        g.events.push(event.clone());
        Ok(())
    }
    fn load(&self) -> Result<RunHistory> {
        Ok(RunHistory::from_events(self.lock().events.clone()))
    }
    fn read_meta(&self) -> Result<Option<RunMeta>> {
        Ok(self.lock().meta.clone())
    }
    fn write_meta(&self, meta: &RunMeta) -> Result<()> {
        self.lock().meta = Some(meta.clone());
        Ok(())
    }
    fn write_summary(&self, summary: &RunSummary) -> Result<()> {
        self.lock().summary = Some(summary.clone());
        Ok(())
    }
    fn run_dir(&self) -> Option<&Path> {
        None
    }
    fn trial_dir(&self, _trial: TrialNumber) -> Result<Option<PathBuf>> {
        Ok(None)
    }
}

#[derive(Debug, Default)]
struct FakeInner {
    fail: BTreeMap<TrialNumber, String>,
    calls: Vec<(TrialNumber, Vec<ChunkIndex>)>,
}

/// An [`Executor`] that evaluates chunks in-process, one after another, and can be scripted to
/// fail given trials. Records every call.
#[derive(Clone, Debug)]
pub struct FakeExecutor {
    loss: LossDefinition,
    inner: Arc<Mutex<FakeInner>>,
}

impl FakeExecutor {
    /// Evaluates `loss`.
    pub fn new(loss: LossDefinition) -> Self {
        Self {
            loss,
            inner: Arc::default(),
        }
    }
    fn lock(&self) -> MutexGuard<'_, FakeInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// Makes trial `n` fail with `reason` (after delivering nothing).
    pub fn fail_trial(&self, n: u64, reason: &str) {
        self.lock().fail.insert(TrialNumber(n), reason.to_string());
    }
    /// `(trial, chunks)` of every `evaluate` call.
    pub fn calls(&self) -> Vec<(TrialNumber, Vec<ChunkIndex>)> {
        self.lock().calls.clone()
    }
}

#[async_trait]
impl Executor for FakeExecutor {
    fn name(&self) -> &'static str {
        "fake"
    }
    async fn evaluate(
        &self,
        job: TrialJob,
        sink: &dyn ChunkSink,
    ) -> std::result::Result<(), ExecError> {
        let fail = {
            let mut g = self.lock();
            g.calls.push((job.trial, job.chunks.clone()));
            g.fail.get(&job.trial).cloned()
        };
        if let Some(reason) = fail {
            return Err(ExecError::Trial(TrialFailure::new(reason)));
        }
        let task = SeedTask {
            loss: &self.loss,
            params: &job.params,
            entry_id: job.entry_id.clone(),
            trial: job.trial,
        };
        let no = AtomicBool::new(false);
        for &c in &job.chunks {
            let r = evaluate_chunk(&task, &job.layout, c, 1, job.keep_seed_values, &no)
                .map_err(|f| ExecError::Trial(TrialFailure::new(f.to_string())))?;
            sink.chunk_done(job.trial, c, r)?;
        }
        Ok(())
    }
}

/// The conformance suite for [`Store`] backends: call it on a fresh, empty store.
pub fn store_suite(store: &dyn Store) -> Result<()> {
    use crate::stats::SeedStats;
    let fail = |what: &str| CoreError::Store {
        store: "suite",
        source: what.to_string().into(),
    };
    if store.load()?.trials().next().is_some() {
        return Err(fail("a fresh store must be empty"));
    }
    let p = |x: f64| -> Params { [("x", x)].into_iter().collect() };
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
            key: "k0".into(),
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
            key: "k1".into(),
            result: result.clone(),
        },
    ];
    for e in &events {
        store.append(e)?;
    }
    let h = store.load()?;
    if h != RunHistory::from_events(events) {
        return Err(fail("load() must return the fold of the appended events"));
    }
    if h.n_finished() != 2 || h.next_trial_number() != TrialNumber(3) {
        return Err(fail("wrong trial counts after reload"));
    }
    if !matches!(h.trial(TrialNumber(1)).map(|t| &t.state), Some(TrialState::Failed { reason }) if reason.contains("quoted"))
    {
        return Err(fail("failure reasons must round-trip"));
    }
    let chunk = h.chunks(TrialNumber(2)).and_then(|c| c.get(&ChunkIndex(1)));
    if chunk.map(|c| &c.result) != Some(&result) {
        return Err(fail("chunk results (with values) must round-trip"));
    }
    let summary = RunSummary {
        best_value: Some(1.5),
        best_params: Some(p(0.1)),
        best_trial: Some(TrialNumber(0)),
        n_complete: 1,
        n_failed: 1,
        n_trials: 3,
        direction: crate::Direction::Minimize,
    };
    store.write_summary(&summary)?;
    store.write_summary(&summary)?;
    if store.read_meta()?.is_some() {
        return Err(fail("a fresh store has no meta"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_passes_the_suite() {
        store_suite(&MemoryStore::new()).unwrap();
    }
}
