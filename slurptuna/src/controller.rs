//! The controller loop: ask, evaluate, record — over the `Sampler`, `Executor` and `Store` traits only.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use slurptuna_core::{
    best_of, AskContext, ChunkIndex, ChunkKey, ChunkResult, ChunkSink, CoreError, Direction,
    ExecError, Executor, LossDefinition, Params, RunHistory, RunSummary, Sampler, SeedLayout,
    SeedStats, Store, StoredChunk, TrialEvent, TrialJob, TrialNumber, TrialRecord, TrialState,
};

use crate::progress::Progress;

/// How a study ended early.
#[derive(Debug)]
pub(crate) enum Stop {
    /// Ctrl-C / SIGTERM.
    Interrupted,
    /// The store, sampler or executor failed: the run cannot go on.
    Fatal(CoreError),
}

impl From<CoreError> for Stop {
    fn from(e: CoreError) -> Self {
        Stop::Fatal(e)
    }
}

/// One study: a loss, its settings, and the three backends.
pub(crate) struct Study<'a> {
    pub(crate) loss: &'a LossDefinition,
    pub(crate) entry_id: Option<Arc<str>>,
    pub(crate) direction: Direction,
    pub(crate) n_trials: u64,
    pub(crate) max_concurrent: usize,
    pub(crate) layout: Arc<SeedLayout>,
    pub(crate) keep_seed_values: bool,
    pub(crate) store: &'a dyn Store,
    pub(crate) sampler: &'a dyn Sampler,
    pub(crate) executor: &'a dyn Executor,
    pub(crate) progress: &'a Progress,
    pub(crate) interrupted: &'a AtomicBool,
    /// `summary.json` is rewritten at most once per this interval (and at the end).
    pub(crate) summary_interval: Duration,
    /// Sync the store before a trial is handed to the executor (a batch scheduler: its jobs
    /// must never outlive a journal that forgot the trial).
    pub(crate) sync_before_dispatch: bool,
}

type Pending = (TrialNumber, Params, BTreeMap<ChunkIndex, StoredChunk>);
type TrialFuture<'s> = std::pin::Pin<
    Box<dyn std::future::Future<Output = (TrialNumber, Result<TrialState, Stop>)> + Send + 's>,
>;

impl Study<'_> {
    /// Runs until `n_trials` trials have finished in total (trials found unfinished in `history`
    /// are finished first, with their recorded parameters and stored chunks). Returns the
    /// finished trials in trial-number order.
    pub(crate) async fn run(&self, history: RunHistory) -> Result<Vec<TrialRecord>, Stop> {
        let mut finished: Vec<TrialRecord> = history
            .trials()
            .filter(|t| t.is_finished())
            .cloned()
            .collect();
        let mut pending: VecDeque<Pending> = history
            .unfinished()
            .map(|t| {
                let chunks = history.chunks(t.number).cloned().unwrap_or_default();
                (t.number, t.params.clone(), chunks)
            })
            .collect();
        let mut next = history.next_trial_number();
        drop(history);
        let mut running: BTreeMap<TrialNumber, Params> = BTreeMap::new();
        let mut in_flight = FuturesUnordered::new();
        self.write_summary(&finished)?;
        let mut summary_written = Instant::now();
        self.progress.start(finished.len() as u64, self.n_trials);
        let outcome = self
            .drive(
                &mut finished,
                &mut pending,
                &mut next,
                &mut running,
                &mut in_flight,
                &mut summary_written,
            )
            .await;
        // The end of the study (or a clean interrupt): summary.json and everything journalled
        // reach the disk. After a fatal error the store may be broken: try, keep the first error.
        let closed = self
            .write_summary(&finished)
            .and_then(|()| self.store.sync());
        match (outcome, closed) {
            (Ok(()), Ok(())) => {}
            (Ok(()), Err(e)) => return Err(Stop::Fatal(e)),
            (Err(stop), _) => return Err(stop),
        }
        self.progress.finish();
        Ok(finished)
    }

    async fn drive<'s>(
        &'s self,
        finished: &mut Vec<TrialRecord>,
        pending: &mut VecDeque<Pending>,
        next: &mut TrialNumber,
        running: &mut BTreeMap<TrialNumber, Params>,
        in_flight: &mut FuturesUnordered<TrialFuture<'s>>,
        summary_written: &mut Instant,
    ) -> Result<(), Stop> {
        let fingerprints: Arc<[u64]> = self
            .layout
            .chunks()
            .map(|c| self.layout.chunk_fingerprint(c))
            .collect();
        // One watcher for the whole study (not a new timer per finished trial).
        let interrupt = wait_for(self.interrupted);
        tokio::pin!(interrupt);
        loop {
            while running.len() < self.max_concurrent
                && (!pending.is_empty()
                    || (finished.len() + running.len()) < self.n_trials as usize)
            {
                let (number, params, stored) = match pending.pop_front() {
                    Some(p) => p,
                    None => {
                        let number = *next;
                        let params = self.ask(number, finished, running)?;
                        self.store.append(&TrialEvent::Asked {
                            trial: number,
                            params: params.clone(),
                        })?;
                        *next = TrialNumber(number.0 + 1);
                        (number, params, BTreeMap::new())
                    }
                };
                if self.sync_before_dispatch {
                    self.store.sync()?;
                }
                running.insert(number, params.clone());
                in_flight.push(Box::pin(self.trial(
                    number,
                    params,
                    stored,
                    fingerprints.clone(),
                )));
            }
            if in_flight.is_empty() {
                break;
            }
            let done = tokio::select! {
                done = in_flight.next() => done,
                () = &mut interrupt => return Err(Stop::Interrupted),
            };
            let Some((number, outcome)) = done else {
                break;
            };
            let state = outcome?;
            let event = match &state {
                TrialState::Complete { stats } => TrialEvent::Completed {
                    trial: number,
                    stats: *stats,
                },
                TrialState::Failed { reason } => TrialEvent::Failed {
                    trial: number,
                    reason: reason.clone(),
                },
                TrialState::Running => continue,
            };
            self.store.append(&event)?;
            let params = running.remove(&number).unwrap_or_default();
            let record = TrialRecord {
                number,
                params,
                state,
            };
            self.progress.trial_finished(&record);
            let at = finished.partition_point(|t| t.number < number);
            finished.insert(at, record);
            // summary.json is derived from the journal: rewritten at most once per interval.
            if summary_written.elapsed() >= self.summary_interval {
                self.write_summary(finished)?;
                *summary_written = Instant::now();
            }
            if self.progress.shows_best() {
                self.progress
                    .best(best_of(&*finished, self.direction).and_then(TrialRecord::value));
            }
        }
        Ok(())
    }

    fn ask(
        &self,
        trial: TrialNumber,
        finished: &[TrialRecord],
        running: &BTreeMap<TrialNumber, Params>,
    ) -> Result<Params, CoreError> {
        let running: Vec<Params> = running.values().cloned().collect();
        let ctx = AskContext {
            space: self.loss.space(),
            direction: self.direction,
            trial,
            history: finished,
            running: &running,
        };
        let params = self.sampler.ask(&ctx)?;
        if !self.loss.space().contains(&params) {
            return Err(CoreError::Sampler {
                sampler: self.sampler.name(),
                reason: format!("proposed {params}, which is outside the parameter space"),
            });
        }
        Ok(params)
    }

    fn write_summary(&self, finished: &[TrialRecord]) -> Result<(), CoreError> {
        self.store
            .write_summary(&summarize(finished, self.direction, self.n_trials))
    }

    async fn trial(
        &self,
        number: TrialNumber,
        params: Params,
        stored: BTreeMap<ChunkIndex, StoredChunk>,
        fingerprints: Arc<[u64]>,
    ) -> (TrialNumber, Result<TrialState, Stop>) {
        (
            number,
            self.evaluate(number, params, stored, &fingerprints).await,
        )
    }

    /// Evaluates the chunks of trial `number` that `stored` does not hold under their key;
    /// `fingerprints` are the layout's chunk fingerprints, computed once per study.
    async fn evaluate(
        &self,
        number: TrialNumber,
        params: Params,
        stored: BTreeMap<ChunkIndex, StoredChunk>,
        fingerprints: &[u64],
    ) -> Result<TrialState, Stop> {
        let mut job = TrialJob {
            loss_name: self.loss.name().to_string(),
            entry_id: self.entry_id.clone(),
            trial: number,
            params,
            layout: self.layout.clone(),
            chunks: Vec::new(),
            trial_dir: self.store.trial_dir(number)?,
            keep_seed_values: self.keep_seed_values,
        };
        let keys = job.keys();
        let key = |c: ChunkIndex| keys.key(c, fingerprints[c.0 as usize]);
        let mut have = BTreeMap::new();
        let mut expected_keys = BTreeMap::new();
        for c in self.layout.chunks() {
            let expected = self.layout.chunk_positions(c);
            let k = key(c);
            let reusable = stored
                .get(&c)
                .filter(|s| s.key == k && s.result.stats.count() == expected.end - expected.start);
            match reusable {
                Some(s) => {
                    have.insert(c, s.result.stats);
                }
                None => {
                    job.chunks.push(c);
                    expected_keys.insert(c, k);
                }
            }
        }
        let sink = TrialSink {
            store: self.store,
            expected: expected_keys,
            layout: &self.layout,
            results: Mutex::new(have),
        };
        match self.executor.evaluate(job, &sink).await {
            Ok(()) => {}
            Err(ExecError::Trial(f)) => return Ok(TrialState::Failed { reason: f.reason }),
            Err(ExecError::Fatal(e)) => return Err(Stop::Fatal(e)),
        }
        let results = sink.results.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut stats = SeedStats::default();
        for c in self.layout.chunks() {
            match results.get(&c) {
                Some(s) => stats.merge(s),
                None => {
                    return Ok(TrialState::Failed {
                        reason: format!(
                            "executor '{}' finished without a result for chunk {c}",
                            self.executor.name()
                        ),
                    })
                }
            }
        }
        Ok(TrialState::Complete { stats })
    }
}

/// Builds `summary.json` from the finished trials.
pub(crate) fn summarize(
    finished: &[TrialRecord],
    direction: Direction,
    n_trials: u64,
) -> RunSummary {
    let best = best_of(finished, direction);
    let n_complete = finished
        .iter()
        .filter(|t| matches!(t.state, TrialState::Complete { .. }))
        .count() as u64;
    RunSummary {
        best_value: best.and_then(TrialRecord::value),
        best_params: best.map(|t| t.params.clone()),
        best_trial: best.map(|t| t.number),
        n_complete,
        n_failed: finished.len() as u64 - n_complete,
        n_trials,
        direction,
    }
}

async fn wait_for(flag: &AtomicBool) {
    while !flag.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stores chunk results as they land and keeps their statistics for the merge.
struct TrialSink<'a> {
    store: &'a dyn Store,
    expected: BTreeMap<ChunkIndex, ChunkKey>,
    layout: &'a SeedLayout,
    results: Mutex<BTreeMap<ChunkIndex, SeedStats>>,
}

impl ChunkSink for TrialSink<'_> {
    fn chunk_done(
        &self,
        trial: TrialNumber,
        chunk: ChunkIndex,
        result: ChunkResult,
    ) -> Result<(), CoreError> {
        let bad = |reason: String| CoreError::Executor {
            executor: "sink",
            source: format!("trial {trial}, chunk {chunk}: {reason}").into(),
        };
        let Some(key) = self.expected.get(&chunk) else {
            return Err(bad("this chunk was not requested".into()));
        };
        let want = self.layout.chunk_positions(chunk);
        if result.stats.count() != want.end - want.start {
            return Err(bad(format!(
                "result covers {} seeds, the chunk has {}",
                result.stats.count(),
                want.end - want.start
            )));
        }
        let mut results = self.results.lock().unwrap_or_else(|e| e.into_inner());
        if results.contains_key(&chunk) {
            return Err(bad("delivered twice".into()));
        }
        let stats = result.stats;
        self.store.append(&TrialEvent::ChunkDone {
            trial,
            chunk,
            key: key.clone(),
            result,
        })?;
        results.insert(chunk, stats);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slurptuna_core::testing::{FakeExecutor, MemoryStore};
    use slurptuna_core::{loss, SeedSpec};
    use slurptuna_sampler::RandomSampler;

    fn model() -> LossDefinition {
        loss("ctl")
            .description("controller test")
            .param("x", (0.0, 1.0))
            .build(|p, seed, _| Ok((p.f64("x")? + seed as f64).into()))
            .unwrap()
    }

    fn layout() -> Arc<SeedLayout> {
        let spec = SeedSpec {
            n_seeds: Some(10),
            chunk_size: Some(3),
            ..Default::default()
        };
        Arc::new(SeedLayout::resolve(&spec, 0).unwrap())
    }

    async fn run(
        store: &MemoryStore,
        exec: &FakeExecutor,
        n: u64,
    ) -> Result<Vec<TrialRecord>, Stop> {
        run_with(store, exec, n, false).await
    }

    async fn run_with(
        store: &MemoryStore,
        exec: &FakeExecutor,
        n: u64,
        sync_before_dispatch: bool,
    ) -> Result<Vec<TrialRecord>, Stop> {
        let l = model();
        let sampler = RandomSampler::new(1);
        let progress = Progress::new("t", false, false, None);
        let flag = AtomicBool::new(false);
        let study = Study {
            loss: &l,
            entry_id: None,
            direction: Direction::Minimize,
            n_trials: n,
            max_concurrent: 1,
            layout: layout(),
            keep_seed_values: false,
            store,
            sampler: &sampler,
            executor: exec,
            progress: &progress,
            interrupted: &flag,
            summary_interval: Duration::ZERO,
            sync_before_dispatch,
        };
        let history = store.load().map_err(Stop::Fatal)?;
        study.run(history).await
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn runs_n_trials_and_journals_every_step() {
        let (store, (exec, _)) = (MemoryStore::new(), FakeExecutor::new(model()));
        let done = rt().block_on(run(&store, &exec, 4)).unwrap();
        assert_eq!(done.len(), 4);
        for t in &done {
            let x = t.params.f64("x").unwrap();
            assert!((t.value().unwrap() - (x + 4.5)).abs() < 1e-12);
        }
        let kinds: Vec<&str> = store
            .events()
            .iter()
            .map(|e| match e {
                TrialEvent::Asked { .. } => "asked",
                TrialEvent::ChunkDone { .. } => "chunk",
                TrialEvent::Completed { .. } => "completed",
                TrialEvent::Failed { .. } => "failed",
            })
            .collect();
        assert_eq!(
            &kinds[..6],
            &["asked", "chunk", "chunk", "chunk", "chunk", "completed"]
        );
        assert_eq!(store.summary().unwrap().n_complete, 4);
        // The end of the study syncs everything journalled.
        assert!(store.sync_calls() >= 1);
        assert_eq!(store.unsynced_events(), 0);
    }

    #[test]
    fn resume_reuses_stored_chunks_and_recomputes_stale_ones() {
        let (full_store, (exec, _)) = (MemoryStore::new(), FakeExecutor::new(model()));
        let full = rt().block_on(run(&full_store, &exec, 3)).unwrap();

        // A run killed during trial 1: trial 0 done, trial 1 asked with chunks 0 and 2 stored,
        // chunk 2 under a stale key.
        let events = full_store.events();
        let cut = events
            .iter()
            .position(|e| matches!(e, TrialEvent::Completed { trial, .. } if trial.0 == 1))
            .unwrap();
        let store = MemoryStore::new();
        for e in &events[..cut] {
            let e = match e.clone() {
                TrialEvent::ChunkDone {
                    trial,
                    chunk,
                    result,
                    ..
                } if trial.0 == 1 && chunk.0 == 2 => TrialEvent::ChunkDone {
                    trial,
                    chunk,
                    key: ChunkKey::new("stale"),
                    result,
                },
                TrialEvent::ChunkDone { trial, chunk, .. } if trial.0 == 1 && chunk.0 == 1 => {
                    continue
                }
                e => e,
            };
            store.append(&e).unwrap();
        }
        let (exec, handle) = FakeExecutor::new(model());
        let resumed = rt().block_on(run(&store, &exec, 3)).unwrap();
        assert_eq!(
            resumed, full,
            "a resumed run must equal the uninterrupted one"
        );
        let calls = handle.calls();
        assert_eq!(calls[0].0, TrialNumber(1));
        assert_eq!(
            calls[0].1,
            vec![ChunkIndex(1), ChunkIndex(2)],
            "only missing and stale chunks rerun"
        );
    }

    #[test]
    fn a_trial_is_synced_before_it_is_dispatched_to_a_batch_scheduler() {
        let (store, (exec, _)) = (MemoryStore::new(), FakeExecutor::new(model()));
        rt().block_on(run_with(&store, &exec, 3, true)).unwrap();
        // One sync per dispatched trial (its `asked` record durable first), one at the end.
        assert_eq!(store.sync_calls(), 4);
    }

    #[test]
    fn failed_trials_are_recorded_and_the_study_goes_on() {
        let (store, (exec, handle)) = (MemoryStore::new(), FakeExecutor::new(model()));
        handle.fail_trial(1, "node on fire");
        let done = rt().block_on(run(&store, &exec, 3)).unwrap();
        assert!(
            matches!(&done[1].state, TrialState::Failed { reason } if reason == "node on fire")
        );
        assert!(done[0].value().is_some() && done[2].value().is_some());
    }

    #[test]
    fn a_broken_store_stops_the_run() {
        let (store, (exec, _)) = (MemoryStore::new(), FakeExecutor::new(model()));
        store.fail_appends(true);
        assert!(matches!(
            rt().block_on(run(&store, &exec, 3)),
            Err(Stop::Fatal(_))
        ));
    }
}
