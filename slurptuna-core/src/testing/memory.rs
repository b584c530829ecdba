//! `MemoryStore`: the in-memory [`Store`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{CoreError, Result};
use crate::store::{RunHistory, RunMeta, RunSummary, Store, TrialEvent};
use crate::trial::TrialNumber;

#[derive(Debug, Default)]
struct MemoryInner {
    events: Vec<TrialEvent>,
    meta: Option<RunMeta>,
    summary: Option<RunSummary>,
    fail_appends: bool,
    /// Calls of `sync`.
    syncs: u64,
    /// Events appended before the last `sync`.
    synced: usize,
    /// Control values kept by `save_control_values`.
    controls: std::collections::BTreeMap<TrialNumber, Vec<f64>>,
    /// Trials whose seed values were discarded.
    discarded: Vec<TrialNumber>,
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
    /// Trials whose per-seed values were discarded ([`Store::discard_seed_values`]), in call
    /// order.
    pub fn discarded(&self) -> Vec<TrialNumber> {
        self.lock().discarded.clone()
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
    /// How many times [`Store::sync`] was called.
    pub fn sync_calls(&self) -> u64 {
        self.lock().syncs
    }
    /// Events appended since the last [`Store::sync`] (all of them if it was never called):
    /// what an OS crash could take from a store that syncs only when asked.
    pub fn unsynced_events(&self) -> usize {
        let g = self.lock();
        g.events.len() - g.synced
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
    fn read_summary(&self) -> Result<Option<RunSummary>> {
        Ok(self.lock().summary.clone())
    }
    fn sync(&self) -> Result<()> {
        let mut g = self.lock();
        g.syncs += 1;
        g.synced = g.events.len();
        Ok(())
    }
    fn run_dir(&self) -> Option<&Path> {
        None
    }
    fn trial_dir(&self, _trial: TrialNumber) -> Result<Option<PathBuf>> {
        Ok(None)
    }
    fn save_control_values(&self, trial: TrialNumber, values: &[f64]) -> Result<()> {
        self.lock().controls.insert(trial, values.to_vec());
        Ok(())
    }
    fn control_values(&self, trial: TrialNumber) -> Result<Option<Vec<f64>>> {
        Ok(self.lock().controls.get(&trial).cloned())
    }
    fn discard_seed_values(&self, trial: TrialNumber) -> Result<()> {
        let mut g = self.lock();
        g.controls.remove(&trial);
        g.discarded.push(trial);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_passes_the_suite() {
        crate::testing::store_suite(&MemoryStore::new()).unwrap();
    }

    #[test]
    fn memory_store_counts_syncs_and_what_they_covered() {
        let s = MemoryStore::new();
        let e = TrialEvent::Failed {
            trial: TrialNumber(0),
            reason: "x".into(),
        };
        s.append(&e).unwrap();
        assert_eq!((s.sync_calls(), s.unsynced_events()), (0, 1));
        let shared: Arc<MemoryStore> = Arc::new(s.clone());
        shared.sync().unwrap();
        assert_eq!((s.sync_calls(), s.unsynced_events()), (1, 0));
        s.append(&e).unwrap();
        assert_eq!(s.unsynced_events(), 1);
    }
}
