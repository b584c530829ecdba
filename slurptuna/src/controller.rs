//! The controller loop: ask, evaluate, record — over the `Sampler`, `Executor` and `Store` traits only.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use futures::stream::{FuturesUnordered, StreamExt};
use slurptuna_core::racing::{Control, Race, RaceConfig, RacePlan};
use slurptuna_core::{
    best_of, AskContext, ChunkIndex, ChunkKey, ChunkResult, ChunkSink, CoreError, Delivery,
    Direction, ExecError, Executor, LossDefinition, Params, RaceOutcome, RunHistory, RunSummary,
    Sampler, SeedLayout, SeedStats, Store, StoredChunk, TrialEvent, TrialJob, TrialNumber,
    TrialRecord, TrialState, ValidatedBest, ValidatedTrial, Validation,
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
    /// Seed racing, when on.
    pub(crate) racing: Option<Racing>,
}

/// How a study races its trials ([`crate::Racing`] resolved against the seed layout).
pub(crate) struct Racing {
    pub(crate) config: RaceConfig,
    /// The sampler seed: part of every plan's key.
    pub(crate) random_seed: u64,
    /// The incumbent's per-seed values and the live best value, shared by the study's trials.
    pub(crate) book: Mutex<Book>,
}

/// What the races of a study share.
#[derive(Default)]
pub(crate) struct Book {
    /// The best COMPLETE trial with all its per-seed values: the control of new trials.
    incumbent: Option<Arc<Control>>,
    /// The live best COMPLETE value: the threshold of every race.
    best: Option<f64>,
}

impl Racing {
    pub(crate) fn new(config: RaceConfig, random_seed: u64) -> Self {
        Racing {
            config,
            random_seed,
            book: Mutex::new(Book::default()),
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How many replayed races the replay check runs when a raced trial becomes the best.
const REPLAY_RACES: u32 = 200;

type Pending = (
    TrialNumber,
    Params,
    BTreeMap<ChunkIndex, StoredChunk>,
    Option<TrialNumber>,
);
/// A finished evaluation: the state, and (racing) the trial's per-seed values in the order of
/// the study's seed list when it completed.
type Evaluated = (TrialState, Option<Vec<f64>>);
type TrialFuture<'s> = std::pin::Pin<
    Box<dyn std::future::Future<Output = (TrialNumber, Result<Evaluated, Stop>)> + Send + 's>,
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
                (
                    t.number,
                    t.params.clone(),
                    chunks,
                    history.control(t.number),
                )
            })
            .collect();
        let mut next = history.next_trial_number();
        drop(history);
        self.adopt_incumbent(&finished)?;
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
        // Racing: the control of each running trial, and former incumbents whose per-seed
        // values wait until no running race needs them.
        let mut controls: BTreeMap<TrialNumber, TrialNumber> = BTreeMap::new();
        let mut retired: Vec<TrialNumber> = Vec::new();
        loop {
            while running.len() < self.max_concurrent
                && (!pending.is_empty()
                    || (finished.len() + running.len()) < self.n_trials as usize)
            {
                let (number, params, stored, control) = match pending.pop_front() {
                    Some(p) => p,
                    None => {
                        let number = *next;
                        let params = self.ask(number, finished, running)?;
                        let control = self.control_for_new_trial();
                        self.store.append(&TrialEvent::Asked {
                            trial: number,
                            params: params.clone(),
                            control,
                        })?;
                        *next = TrialNumber(number.0 + 1);
                        (number, params, BTreeMap::new(), control)
                    }
                };
                if let Some(c) = control {
                    controls.insert(number, c);
                }
                if self.sync_before_dispatch {
                    self.store.sync()?;
                }
                running.insert(number, params.clone());
                in_flight.push(Box::pin(self.trial(
                    number,
                    params,
                    stored,
                    control,
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
            let (state, values) = outcome?;
            let event = match &state {
                TrialState::Complete { stats } => TrialEvent::Completed {
                    trial: number,
                    stats: *stats,
                },
                TrialState::Failed { reason } => TrialEvent::Failed {
                    trial: number,
                    reason: reason.clone(),
                },
                TrialState::Pruned { race } => TrialEvent::Pruned {
                    trial: number,
                    race: (**race).clone(),
                },
                TrialState::Running => continue,
            };
            self.store.append(&event)?;
            let control = controls.remove(&number);
            if let Some(racing) = &self.racing {
                self.after_race(
                    racing,
                    number,
                    &state,
                    values,
                    control,
                    &controls,
                    &mut retired,
                )?;
            }
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
        self.store.write_summary(&summarize(
            finished,
            self.direction,
            self.n_trials,
            self.layout.n_seeds(),
        ))
    }

    /// Racing, at the start of a session: the best COMPLETE trial becomes the incumbent if its
    /// per-seed values are stored (a resumed race needs its control).
    fn adopt_incumbent(&self, finished: &[TrialRecord]) -> Result<(), CoreError> {
        let Some(racing) = &self.racing else {
            return Ok(());
        };
        let best = best_of(finished, self.direction);
        let incumbent = match best {
            Some(t) => self.load_control(t.number)?,
            None => None,
        };
        let mut book = racing.book();
        book.best = best.and_then(TrialRecord::value);
        book.incumbent = incumbent;
        Ok(())
    }

    /// The stored per-seed values of trial `n` as a race control.
    fn load_control(&self, n: TrialNumber) -> Result<Option<Arc<Control>>, CoreError> {
        Ok(self.store.control_values(n)?.and_then(|values| {
            (values.len() as u64 == self.layout.n_seeds()).then(|| {
                Arc::new(Control {
                    trial: n,
                    mean: SeedStats::from_values(&values).mean(),
                    values: values.into(),
                })
            })
        }))
    }

    /// The control a new trial races against: the incumbent, when racing is on and can save
    /// anything.
    fn control_for_new_trial(&self) -> Option<TrialNumber> {
        let racing = self.racing.as_ref()?;
        let book = racing.book();
        let incumbent = book.incumbent.as_ref()?;
        racing
            .config
            .active(self.layout.n_seeds(), true)
            .then_some(incumbent.trial)
    }

    /// The control `c` of a racing trial: the incumbent, or read back from the store (a resumed
    /// race whose control has been replaced since).
    fn control(&self, racing: &Racing, c: TrialNumber) -> Result<Option<Arc<Control>>, CoreError> {
        let cached = racing
            .book()
            .incumbent
            .as_ref()
            .filter(|i| i.trial == c)
            .cloned();
        match cached {
            Some(inc) => Ok(Some(inc)),
            None => self.load_control(c),
        }
    }

    /// Racing bookkeeping after trial `number` finished: a new best becomes the incumbent (its
    /// values stored, its race replayed), and per-seed values no race needs are deleted.
    #[allow(clippy::too_many_arguments)]
    fn after_race(
        &self,
        racing: &Racing,
        number: TrialNumber,
        state: &TrialState,
        values: Option<Vec<f64>>,
        control: Option<TrialNumber>,
        running_controls: &BTreeMap<TrialNumber, TrialNumber>,
        retired: &mut Vec<TrialNumber>,
    ) -> Result<(), CoreError> {
        let value = match state {
            TrialState::Complete { stats } => Some(stats.mean()).filter(|v| !v.is_nan()),
            _ => None,
        };
        let best = racing.book().best;
        let better = value.is_some_and(|v| best.is_none_or(|b| self.direction.better(v, b)));
        match (better, values) {
            (true, Some(values)) => {
                self.store.save_control_values(number, &values)?;
                let new = Arc::new(Control {
                    trial: number,
                    mean: SeedStats::from_values(&values).mean(),
                    values: values.into(),
                });
                let old = {
                    let mut book = racing.book();
                    book.best = value;
                    book.incumbent.replace(new.clone())
                };
                if let Some(old) = old {
                    if control == Some(old.trial) {
                        self.replay_check(racing, number, &new, &old);
                    }
                    retired.push(old.trial);
                }
            }
            (true, None) => {
                // A new best without values (they could not be kept): no new control.
                racing.book().best = value;
            }
            (false, _) => {
                if !self.keep_seed_values {
                    self.store.discard_seed_values(number)?;
                }
            }
        }
        if !self.keep_seed_values {
            let in_use: std::collections::BTreeSet<TrialNumber> =
                running_controls.values().copied().collect();
            let mut kept = Vec::new();
            for r in retired.drain(..) {
                if in_use.contains(&r) {
                    kept.push(r);
                } else {
                    self.store.discard_seed_values(r)?;
                }
            }
            *retired = kept;
        }
        Ok(())
    }

    /// The replay check: a new best that won its race is raced again on its own values in
    /// fresh seed orders, with its own mean as the threshold; eliminations above α mean the race
    /// is unfair to trials like it (effects the control does not share): warn.
    fn replay_check(
        &self,
        racing: &Racing,
        number: TrialNumber,
        best: &Control,
        control: &Control,
    ) {
        let key = (racing.random_seed, self.entry_id.as_deref(), number);
        match slurptuna_core::racing::replay(
            racing.config,
            &self.layout,
            &best.values,
            control,
            self.direction,
            REPLAY_RACES,
            key,
        ) {
            Ok(r) if r.warns() => tracing::warn!(
                trial = number.0,
                eliminated = r.pruned,
                races = r.races,
                upper_95 = r.upper,
                alpha = r.alpha,
                "the new best trial was eliminated in {} of {} replayed races (more than alpha = {}): \
                 the race may prune good trials of this loss; raise racing.min_seeds or turn racing off",
                r.pruned,
                r.races,
                r.alpha
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(trial = number.0, error = %e, "replay check failed"),
        }
    }

    async fn trial(
        &self,
        number: TrialNumber,
        params: Params,
        stored: BTreeMap<ChunkIndex, StoredChunk>,
        control: Option<TrialNumber>,
        fingerprints: Arc<[u64]>,
    ) -> (TrialNumber, Result<Evaluated, Stop>) {
        (
            number,
            self.evaluate(number, params, stored, control, &fingerprints)
                .await,
        )
    }

    /// Evaluates the chunks of trial `number` that `stored` does not hold under their key;
    /// `fingerprints` are the layout's chunk fingerprints, computed once per study. A racing
    /// trial (`control`) runs its seeds in its plan order and stops at a prune.
    async fn evaluate(
        &self,
        number: TrialNumber,
        params: Params,
        stored: BTreeMap<ChunkIndex, StoredChunk>,
        control: Option<TrialNumber>,
        fingerprints: &[u64],
    ) -> Result<Evaluated, Stop> {
        let racing = self.racing.as_ref();
        let control = match (racing, control) {
            (Some(r), Some(c)) => {
                let found = self.control(r, c)?;
                if found.is_none() {
                    tracing::warn!(
                        trial = number.0,
                        control = c.0,
                        "the per-seed values of this trial's race control are gone: it is evaluated again on every seed, unraced"
                    );
                }
                found
            }
            _ => None,
        };
        let plan = match (racing, &control) {
            (Some(r), Some(c)) => Some(RacePlan::new(
                &r.config,
                &self.layout,
                c,
                (r.random_seed, self.entry_id.as_deref(), number),
            )?),
            _ => None,
        };
        let (layout, plan_fingerprints) = match &plan {
            Some(p) => {
                let l = Arc::new(p.layout(&self.layout)?);
                let f: Vec<u64> = l.chunks().map(|c| l.chunk_fingerprint(c)).collect();
                (l, Some(f))
            }
            None => (self.layout.clone(), None),
        };
        let fingerprints = plan_fingerprints.as_deref().unwrap_or(fingerprints);
        let mut job = TrialJob {
            loss_name: self.loss.name().to_string(),
            entry_id: self.entry_id.clone(),
            trial: number,
            params,
            layout: layout.clone(),
            chunks: Vec::new(),
            trial_dir: self.store.trial_dir(number)?,
            // Racing: any trial may become the control, whose every value races count on.
            keep_seed_values: self.keep_seed_values || racing.is_some(),
        };
        let keys = job.keys();
        let key = |c: ChunkIndex| keys.key(c, fingerprints[c.0 as usize]);
        let mut have = BTreeMap::new();
        let mut have_values = BTreeMap::new();
        let mut expected_keys = BTreeMap::new();
        for c in layout.chunks() {
            let expected = layout.chunk_positions(c);
            let k = key(c);
            let reusable = stored.get(&c).filter(|s| {
                s.key == k
                    && s.result.stats.count() == expected.end - expected.start
                    && (racing.is_none() || s.result.values.is_some())
            });
            match reusable {
                Some(s) => {
                    have.insert(c, s.result.stats);
                    if let Some(v) = &s.result.values {
                        have_values.insert(c, v.clone());
                    }
                }
                None => {
                    job.chunks.push(c);
                    expected_keys.insert(c, k);
                }
            }
        }
        let race = match (racing, &plan, &control) {
            (Some(r), Some(p), Some(c)) => Some(RaceSink {
                race: Mutex::new(Race::new(
                    r.config,
                    p,
                    c,
                    layout.chunk_size(),
                    self.direction,
                )?),
                racing: r,
                pruned: Mutex::new(None),
            }),
            _ => None,
        };
        let sink = TrialSink {
            store: self.store,
            expected: expected_keys,
            layout: &layout,
            results: Mutex::new(have),
            values: racing.map(|_| Mutex::new(BTreeMap::new())),
            race,
            validation: false,
        };
        // A resumed race: the stored prefix may already decide it.
        for (c, v) in have_values {
            sink.keep_values(c, v.clone());
            if sink.race_chunk(c, v)? == Delivery::Stop {
                break;
            }
        }
        if sink.pruned().is_none() {
            match self.executor.evaluate(job, &sink).await {
                Ok(()) => {}
                Err(ExecError::Trial(f)) => {
                    return Ok((TrialState::Failed { reason: f.reason }, None))
                }
                Err(ExecError::Fatal(e)) => return Err(Stop::Fatal(e)),
            }
        }
        if let Some(race) = sink.pruned() {
            return Ok((
                TrialState::Pruned {
                    race: Box::new(race),
                },
                None,
            ));
        }
        let results = sink.results.into_inner().unwrap_or_else(|e| e.into_inner());
        let stats = match self.merged(&layout, &results) {
            Ok(stats) => stats,
            Err(reason) => return Ok((TrialState::Failed { reason }, None)),
        };
        // The values in the order of the study's seed list (a control's values).
        let values = sink.values.and_then(|v| {
            let by_chunk = v.into_inner().unwrap_or_else(|e| e.into_inner());
            let in_plan: Vec<f64> = by_chunk.into_values().flatten().collect();
            (in_plan.len() as u64 == layout.n_seeds()).then(|| match &plan {
                Some(p) => p.to_base_order(&in_plan),
                None => in_plan,
            })
        });
        Ok((TrialState::Complete { stats }, values))
    }
}

impl Study<'_> {
    /// The statistics of every chunk of `layout` merged, or why some are missing.
    fn merged(
        &self,
        layout: &SeedLayout,
        results: &BTreeMap<ChunkIndex, SeedStats>,
    ) -> Result<SeedStats, String> {
        let mut stats = SeedStats::default();
        for c in layout.chunks() {
            match results.get(&c) {
                Some(s) => stats.merge(s),
                None => {
                    return Err(format!(
                        "executor '{}' finished without a result for chunk {c}",
                        self.executor.name()
                    ))
                }
            }
        }
        Ok(stats)
    }

    /// The honest best: the `top_k` best COMPLETE trials of `finished` evaluated on the
    /// validation seeds `layout` (up to `max_concurrent` at once, through the study's executor),
    /// each chunk journalled; `stored` (the journal's validations) is reused. `None` when no
    /// candidate could be validated.
    pub(crate) async fn validate(
        &self,
        finished: &[TrialRecord],
        layout: Arc<SeedLayout>,
        top_k: usize,
        stored: &BTreeMap<TrialNumber, Validation>,
    ) -> Result<Option<ValidatedBest>, Stop> {
        let candidates = top_trials(finished, self.direction, top_k);
        let Some(fit_best) = candidates.first().map(|t| t.number) else {
            return Ok(None);
        };
        tracing::info!(
            candidates = candidates.len(),
            seeds = layout.n_seeds(),
            "validating the best trials on the validation seeds"
        );
        let interrupt = wait_for(self.interrupted);
        tokio::pin!(interrupt);
        let mut queue = candidates.iter();
        let mut in_flight = FuturesUnordered::new();
        let mut done: BTreeMap<TrialNumber, BTreeMap<ChunkIndex, SeedStats>> = BTreeMap::new();
        loop {
            while in_flight.len() < self.max_concurrent {
                let Some(t) = queue.next() else { break };
                let layout = layout.clone();
                in_flight.push(async move {
                    let r = self.validate_trial(t, layout, stored.get(&t.number)).await;
                    (t.number, r)
                });
            }
            let next = tokio::select! {
                next = in_flight.next() => next,
                () = &mut interrupt => return Err(Stop::Interrupted),
            };
            let Some((number, result)) = next else { break };
            if let Some(chunks) = result? {
                done.insert(number, chunks);
            }
        }
        Ok(honest_best(
            &candidates,
            &layout,
            &done,
            fit_best,
            self.direction,
        ))
    }

    /// Evaluates trial `t` on the validation seeds `layout`, reusing the chunks `stored` holds
    /// under their key; its per-chunk statistics, or `None` (with a warning) when it failed.
    async fn validate_trial(
        &self,
        t: &TrialRecord,
        layout: Arc<SeedLayout>,
        stored: Option<&Validation>,
    ) -> Result<Option<BTreeMap<ChunkIndex, SeedStats>>, Stop> {
        let mut job = TrialJob {
            loss_name: self.loss.name().to_string(),
            entry_id: self.entry_id.clone(),
            trial: t.number,
            params: t.params.clone(),
            layout: layout.clone(),
            chunks: Vec::new(),
            // Its own directory: a batch scheduler's task files, job records and stored chunk
            // results must not meet the trial's own.
            trial_dir: self
                .store
                .trial_dir(t.number)?
                .map(|d| d.join("validation")),
            keep_seed_values: false,
        };
        let keys = job.keys();
        let mut have = BTreeMap::new();
        let mut expected = BTreeMap::new();
        for c in layout.chunks() {
            let k = keys.key(c, layout.chunk_fingerprint(c));
            let want = layout.chunk_positions(c);
            let reusable = stored
                .and_then(|v| v.chunks.get(&c))
                .filter(|s| s.key == k && s.result.stats.count() == want.end - want.start);
            match reusable {
                Some(s) => {
                    have.insert(c, s.result.stats);
                }
                None => {
                    job.chunks.push(c);
                    expected.insert(c, k);
                }
            }
        }
        let todo = !job.chunks.is_empty();
        let sink = TrialSink {
            store: self.store,
            expected,
            layout: &layout,
            results: Mutex::new(have),
            values: None,
            race: None,
            validation: true,
        };
        if todo {
            if self.sync_before_dispatch {
                self.store.sync()?;
            }
            match self.executor.evaluate(job, &sink).await {
                Ok(()) => {}
                Err(ExecError::Trial(f)) => {
                    tracing::warn!(trial = t.number.0, reason = %f.reason, "the validation of this trial failed: it is left out of the honest best");
                    return Ok(None);
                }
                Err(ExecError::Fatal(e)) => return Err(Stop::Fatal(e)),
            }
        }
        let results = sink.results.into_inner().unwrap_or_else(|e| e.into_inner());
        match self.merged(&layout, &results) {
            Ok(stats) => {
                if stored.is_none_or(|v| v.stats.is_none()) {
                    self.store.append(&TrialEvent::Validated {
                        trial: t.number,
                        stats,
                    })?;
                }
                Ok(Some(results))
            }
            Err(reason) => {
                tracing::warn!(trial = t.number.0, %reason, "the validation of this trial is incomplete: it is left out of the honest best");
                Ok(None)
            }
        }
    }
}

/// The `k` best COMPLETE trials of `finished` with a finite value, best first (ties by number).
fn top_trials(finished: &[TrialRecord], direction: Direction, k: usize) -> Vec<TrialRecord> {
    let mut complete: Vec<(f64, &TrialRecord)> = finished
        .iter()
        .filter_map(|t| t.value().filter(|v| v.is_finite()).map(|v| (v, t)))
        .collect();
    complete.sort_by(|a, b| {
        let by_value = match direction {
            Direction::Minimize => a.0.total_cmp(&b.0),
            Direction::Maximize => b.0.total_cmp(&a.0),
        };
        by_value.then(a.1.number.cmp(&b.1.number))
    });
    complete
        .into_iter()
        .take(k)
        .map(|(_, t)| t.clone())
        .collect()
}

/// The honest best from the validated candidates' chunk statistics (`done`, by trial): chosen
/// on the first half of the validation chunks, valued on the rest (on all of them when there is
/// a single candidate, whose choice no validation seed took part in).
fn honest_best(
    candidates: &[TrialRecord],
    layout: &SeedLayout,
    done: &BTreeMap<TrialNumber, BTreeMap<ChunkIndex, SeedStats>>,
    fit_best: TrialNumber,
    direction: Direction,
) -> Option<ValidatedBest> {
    let split = layout.num_chunks().div_ceil(2);
    let single = candidates.len() == 1;
    let half = |chunks: &BTreeMap<ChunkIndex, SeedStats>, first: bool| {
        let mut s = SeedStats::default();
        for (c, stats) in chunks {
            if (c.0 < split) == first {
                s.merge(stats);
            }
        }
        s
    };
    let mut validated: Vec<ValidatedTrial> = Vec::new();
    for t in candidates {
        let Some(chunks) = done.get(&t.number) else {
            continue;
        };
        let selection = half(chunks, true);
        let report = if single {
            let mut all = selection;
            all.merge(&half(chunks, false));
            all
        } else {
            half(chunks, false)
        };
        let finite = [selection.mean(), report.mean(), report.stderr()]
            .iter()
            .all(|x| x.is_finite());
        if !finite {
            tracing::warn!(trial = t.number.0, "the validation mean of this trial is not finite: it is left out of the honest best");
            continue;
        }
        validated.push(ValidatedTrial {
            trial: t.number,
            fit_value: t.value().unwrap_or(f64::NAN),
            selection_mean: selection.mean(),
            value: report.mean(),
            stderr: report.stderr(),
        });
    }
    let best = validated
        .iter()
        .reduce(|a, b| {
            if direction.better(b.selection_mean, a.selection_mean) {
                b
            } else {
                a
            }
        })?
        .clone();
    let params = candidates
        .iter()
        .find(|t| t.number == best.trial)?
        .params
        .clone();
    let report_seeds = if single {
        layout.n_seeds()
    } else {
        layout.n_seeds() - layout.chunk_positions(ChunkIndex(split)).start
    };
    Some(ValidatedBest {
        trial: best.trial,
        params,
        value: best.value,
        stderr: best.stderr,
        n_seeds: report_seeds,
        fit_best_trial: fit_best,
        candidates: validated,
    })
}

/// Builds `summary.json` from the finished trials (of `n_seeds` seeds each).
pub(crate) fn summarize(
    finished: &[TrialRecord],
    direction: Direction,
    n_trials: u64,
    n_seeds: u64,
) -> RunSummary {
    let best = best_of(finished, direction);
    let count = |f: fn(&TrialState) -> bool| finished.iter().filter(|t| f(&t.state)).count() as u64;
    let n_complete = count(|s| matches!(s, TrialState::Complete { .. }));
    let n_pruned = count(|s| matches!(s, TrialState::Pruned { .. }));
    let (seeds_evaluated, seeds_saved) = seed_counts(finished, n_seeds);
    RunSummary {
        best_value: best.and_then(TrialRecord::value),
        best_params: best.map(|t| t.params.clone()),
        best_trial: best.map(|t| t.number),
        n_complete,
        n_failed: finished.len() as u64 - n_complete - n_pruned,
        n_pruned,
        seeds_evaluated,
        seeds_saved,
        n_trials,
        direction,
        validated: None,
    }
}

/// Seed evaluations behind the finished trials' results, and those racing saved (the seeds
/// pruned trials did not evaluate), for trials of `n_seeds` seeds.
pub(crate) fn seed_counts(finished: &[TrialRecord], n_seeds: u64) -> (u64, u64) {
    finished.iter().fold((0, 0), |(used, saved), t| {
        let n = t.seeds_evaluated();
        let s = if t.pruned().is_some() {
            n_seeds.saturating_sub(n)
        } else {
            0
        };
        (used + n, saved + s)
    })
}

async fn wait_for(flag: &AtomicBool) {
    while !flag.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stores chunk results as they land and keeps their statistics for the merge; for a racing
/// trial it also keeps the per-seed values and runs the race on the prefix.
struct TrialSink<'a> {
    store: &'a dyn Store,
    expected: BTreeMap<ChunkIndex, ChunkKey>,
    layout: &'a SeedLayout,
    results: Mutex<BTreeMap<ChunkIndex, SeedStats>>,
    /// Racing is on: every chunk's values, kept (the trial may become the control).
    values: Option<Mutex<BTreeMap<ChunkIndex, Vec<f64>>>>,
    /// The trial races.
    race: Option<RaceSink<'a>>,
    /// The chunks are validation seeds of the honest best (journalled as such).
    validation: bool,
}

struct RaceSink<'a> {
    race: Mutex<Race>,
    racing: &'a Racing,
    pruned: Mutex<Option<RaceOutcome>>,
}

impl TrialSink<'_> {
    fn keep_values(&self, chunk: ChunkIndex, values: Vec<f64>) {
        if let Some(v) = &self.values {
            v.lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(chunk, values);
        }
    }

    /// Feeds chunk `chunk`'s values to the race and looks at the prefix: `Stop` once pruned.
    fn race_chunk(&self, chunk: ChunkIndex, values: Vec<f64>) -> Result<Delivery, CoreError> {
        let Some(r) = &self.race else {
            return Ok(Delivery::Continue);
        };
        let mut race = r.race.lock().unwrap_or_else(|e| e.into_inner());
        race.add(chunk, values)?;
        let Some(threshold) = r.racing.book().best else {
            return Ok(Delivery::Continue);
        };
        match race.advance(threshold)? {
            Some(outcome) => {
                *r.pruned.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
                Ok(Delivery::Stop)
            }
            None => Ok(Delivery::Continue),
        }
    }

    fn pruned(&self) -> Option<RaceOutcome> {
        self.race
            .as_ref()
            .and_then(|r| r.pruned.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

impl ChunkSink for TrialSink<'_> {
    fn chunk_done(
        &self,
        trial: TrialNumber,
        chunk: ChunkIndex,
        result: ChunkResult,
    ) -> Result<Delivery, CoreError> {
        let bad = |reason: String| CoreError::Executor {
            executor: "sink",
            source: format!("trial {trial}, chunk {chunk}: {reason}").into(),
        };
        if self.pruned().is_some() {
            // Decided: later results are not needed.
            return Ok(Delivery::Stop);
        }
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
        let values = match (&self.values, &result.values) {
            (Some(_), Some(v)) => Some(v.clone()),
            (Some(_), None) => {
                return Err(bad(
                    "seed racing needs per-seed values, and the executor delivered none".into(),
                ))
            }
            (None, _) => None,
        };
        {
            let mut results = self.results.lock().unwrap_or_else(|e| e.into_inner());
            if results.contains_key(&chunk) {
                return Err(bad("delivered twice".into()));
            }
            let stats = result.stats;
            let key = key.clone();
            self.store.append(&if self.validation {
                TrialEvent::ValidationChunkDone {
                    trial,
                    chunk,
                    key,
                    result,
                }
            } else {
                TrialEvent::ChunkDone {
                    trial,
                    chunk,
                    key,
                    result,
                }
            })?;
            results.insert(chunk, stats);
        }
        match values {
            Some(v) => {
                self.keep_values(chunk, v.clone());
                self.race_chunk(chunk, v)
            }
            None => Ok(Delivery::Continue),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slurptuna_core::testing::{FakeExecutor, MemoryStore};
    use slurptuna_core::{loss, SeedList, SeedSpec};
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
        let setup = Setup {
            sync_before_dispatch,
            ..Setup::new(model(), 1, layout())
        };
        Ok(setup.run(store, exec, n).await?.0)
    }

    /// A test study: the loss, sampler seed, seeds and options of [`Study`] that tests vary.
    struct Setup {
        loss: LossDefinition,
        sampler_seed: u64,
        layout: Arc<SeedLayout>,
        sync_before_dispatch: bool,
        racing: Option<RaceConfig>,
        /// The honest best's validation seeds and top k.
        validation: Option<(Arc<SeedLayout>, usize)>,
    }

    impl Setup {
        fn new(loss: LossDefinition, sampler_seed: u64, layout: Arc<SeedLayout>) -> Self {
            Setup {
                loss,
                sampler_seed,
                layout,
                sync_before_dispatch: false,
                racing: None,
                validation: None,
            }
        }

        /// Runs `n` trials on `store` (resuming what it holds), then the validation if any.
        async fn run(
            &self,
            store: &MemoryStore,
            exec: &FakeExecutor,
            n: u64,
        ) -> Result<(Vec<TrialRecord>, Option<ValidatedBest>), Stop> {
            let sampler = RandomSampler::new(self.sampler_seed);
            let progress = Progress::new("t", false, false, None);
            let flag = AtomicBool::new(false);
            let study = Study {
                loss: &self.loss,
                entry_id: None,
                direction: Direction::Minimize,
                n_trials: n,
                max_concurrent: 1,
                layout: self.layout.clone(),
                keep_seed_values: false,
                store,
                sampler: &sampler,
                executor: exec,
                progress: &progress,
                interrupted: &flag,
                summary_interval: Duration::ZERO,
                sync_before_dispatch: self.sync_before_dispatch,
                racing: self.racing.map(|c| Racing::new(c, 123)),
            };
            let history = store.load().map_err(Stop::Fatal)?;
            let stored = history.validations().clone();
            let done = study.run(history).await?;
            let validated = match &self.validation {
                Some((l, k)) => study.validate(&done, l.clone(), *k, &stored).await?,
                None => None,
            };
            Ok((done, validated))
        }
    }

    /// A loss whose value is 10·x plus seed noise of sd ≈ 0.3 with mean 0: trials far from the
    /// best are clearly worse long before their last seed.
    fn noisy() -> LossDefinition {
        loss("race")
            .description("racing test")
            .param("x", (0.0, 1.0))
            .build(|p, seed, _| {
                let mut f = slurptuna_core::Fnv64::new();
                f.write(&seed.to_le_bytes());
                let h = f.finish();
                let u = (h >> 11) as f64 / (1u64 << 53) as f64;
                Ok((10.0 * p.f64("x")? + (u - 0.5)).into())
            })
            .unwrap()
    }

    fn racing_layout() -> Arc<SeedLayout> {
        let spec = SeedSpec {
            n_seeds: Some(1000),
            chunk_size: Some(50),
            ..Default::default()
        };
        Arc::new(SeedLayout::resolve(&spec, 0).unwrap())
    }

    async fn race(
        store: &MemoryStore,
        exec: &FakeExecutor,
        n: u64,
    ) -> Result<Vec<TrialRecord>, Stop> {
        let setup = Setup {
            racing: Some(RaceConfig::for_seeds(1000, 50)),
            ..Setup::new(noisy(), 7, racing_layout())
        };
        Ok(setup.run(store, exec, n).await?.0)
    }

    /// Validation seeds 10..20 in chunks of 3: chunks 0 and 1 (seeds 10..16) choose, chunks 2
    /// and 3 (seeds 16..20) report.
    fn validating() -> Setup {
        let seeds = SeedLayout::new(
            SeedList::Range {
                start: 10,
                count: 10,
            },
            3,
        )
        .unwrap();
        Setup {
            validation: Some((Arc::new(seeds), 3)),
            ..Setup::new(model(), 1, layout())
        }
    }

    #[test]
    fn the_honest_best_validates_the_top_trials_on_fresh_seeds_and_reports_the_other_half() {
        let (store, (exec, handle)) = (MemoryStore::new(), FakeExecutor::new(model()));
        let (done, v) = rt().block_on(validating().run(&store, &exec, 8)).unwrap();
        let v = v.unwrap();
        let mut by_x: Vec<&TrialRecord> = done.iter().collect();
        by_x.sort_by(|a, b| {
            a.params
                .f64("x")
                .unwrap()
                .total_cmp(&b.params.f64("x").unwrap())
        });
        let best = by_x[0];
        // The loss is x + seed: the validated best is the fit's best, valued on seeds 16..20.
        assert_eq!((v.trial, v.fit_best_trial), (best.number, best.number));
        assert!(!v.differs());
        let x = best.params.f64("x").unwrap();
        assert!((v.value - (x + 17.5)).abs() < 1e-12, "{v:?}");
        assert_eq!(v.n_seeds, 4);
        let ranked: Vec<TrialNumber> = v.candidates.iter().map(|c| c.trial).collect();
        assert_eq!(
            ranked,
            by_x[..3].iter().map(|t| t.number).collect::<Vec<_>>()
        );
        for c in &v.candidates {
            let x = done[c.trial.0 as usize].params.f64("x").unwrap();
            assert!((c.selection_mean - (x + 12.5)).abs() < 1e-12, "{c:?}");
            assert!((c.fit_value - (x + 4.5)).abs() < 1e-12, "{c:?}");
        }
        // Each candidate's 4 validation chunks were journalled, then its validation.
        let events = store.events();
        let chunks = events
            .iter()
            .filter(|e| matches!(e, TrialEvent::ValidationChunkDone { .. }))
            .count();
        let validated = events
            .iter()
            .filter(|e| matches!(e, TrialEvent::Validated { .. }))
            .count();
        assert_eq!((chunks, validated), (12, 3));
        // A second run finds everything stored: nothing is evaluated again.
        let calls = handle.calls().len();
        let (_, again) = rt().block_on(validating().run(&store, &exec, 8)).unwrap();
        assert_eq!(again.as_ref(), Some(&v));
        assert_eq!(handle.calls().len(), calls);
        assert_eq!(store.events().len(), events.len());
    }

    #[test]
    fn an_interrupted_validation_resumes_with_its_stored_chunks() {
        let (full_store, (exec, _)) = (MemoryStore::new(), FakeExecutor::new(model()));
        let (_, full) = rt()
            .block_on(validating().run(&full_store, &exec, 8))
            .unwrap();
        let events = full_store.events();
        // Killed after the fifth validation chunk (the second candidate's first).
        let cut = events
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e, TrialEvent::ValidationChunkDone { .. }))
            .nth(4)
            .unwrap()
            .0
            + 1;
        let store = MemoryStore::new();
        for e in &events[..cut] {
            store.append(e).unwrap();
        }
        let (exec, handle) = FakeExecutor::new(model());
        let (_, resumed) = rt().block_on(validating().run(&store, &exec, 8)).unwrap();
        assert_eq!(resumed, full);
        // Only the 7 chunks without a result were evaluated: 3 of the second candidate, 4 of
        // the third.
        let evaluated: usize = handle.calls().iter().map(|(_, c)| c.len()).sum();
        assert_eq!(evaluated, 7, "{:?}", handle.calls());
    }

    #[test]
    fn a_failed_validation_leaves_its_trial_out_of_the_honest_best() {
        let (store, (exec, _)) = (MemoryStore::new(), FakeExecutor::new(model()));
        let (done, _) = rt()
            .block_on(Setup::new(model(), 1, layout()).run(&store, &exec, 8))
            .unwrap();
        let best = best_of(&done, Direction::Minimize).unwrap().number;
        let (exec, handle) = FakeExecutor::new(model());
        handle.fail_trial(best.0, "out of memory");
        let (_, v) = rt().block_on(validating().run(&store, &exec, 8)).unwrap();
        let v = v.unwrap();
        assert_ne!(v.trial, best);
        assert_eq!(v.fit_best_trial, best);
        assert!(v.differs());
        assert_eq!(v.candidates.len(), 2);
    }

    #[test]
    fn racing_prunes_clearly_worse_trials_and_keeps_the_best() {
        let (store, (exec, handle)) = (MemoryStore::new(), FakeExecutor::new(noisy()));
        let done = rt().block_on(race(&store, &exec, 12)).unwrap();
        let pruned: Vec<&TrialRecord> = done.iter().filter(|t| t.pruned().is_some()).collect();
        assert!(pruned.len() >= 4, "{} of 12 trials pruned", pruned.len());
        for t in &pruned {
            let r = t.pruned().unwrap();
            // Pruned trials stopped at a chunk boundary past min_seeds, and are really worse
            // than the best complete value when they were pruned.
            assert!(
                r.seeds >= 200 && r.seeds < 1000 && r.seeds % 50 == 0,
                "{r:?}"
            );
            assert!(r.bound > r.threshold && r.estimate >= r.bound, "{r:?}");
            let x = t.params.f64("x").unwrap();
            assert!(
                10.0 * x > r.threshold,
                "trial {} (x = {x}) was pruned wrongly",
                t.number
            );
        }
        // The best trial of an unraced study with the same proposals is the best here too: a
        // trial better than the incumbent is never pruned.
        let best = best_of(&done, Direction::Minimize).unwrap();
        let min_x = done
            .iter()
            .map(|t| t.params.f64("x").unwrap())
            .fold(f64::INFINITY, f64::min);
        assert_eq!(best.params.f64("x").unwrap(), min_x);
        // Raced trials evaluated their chunks in plan order: the first chunk of a raced trial
        // starts with the census seeds, not seeds 0..50.
        let raced = handle
            .calls()
            .into_iter()
            .filter(|(n, _)| pruned.iter().any(|t| t.number == *n))
            .count();
        assert_eq!(raced, pruned.len());
        let summary = store.summary().unwrap();
        assert_eq!(summary.n_pruned, pruned.len() as u64);
        assert!(summary.seeds_saved > 0);
        assert_eq!(
            summary.seeds_evaluated + summary.seeds_saved,
            12 * 1000,
            "every seed is either evaluated or saved"
        );
        // Every trial but the final incumbent had its values discarded.
        let discarded = store.discarded();
        assert!(!discarded.contains(&best.number));
        assert!(discarded.len() >= pruned.len());
    }

    #[test]
    fn a_race_resumed_after_a_kill_makes_the_same_decisions() {
        let (full_store, (exec, _)) = (MemoryStore::new(), FakeExecutor::new(noisy()));
        let full = rt().block_on(race(&full_store, &exec, 10)).unwrap();
        let events = full_store.events();
        // Kill during the first pruned trial's race: after its first stored chunks.
        let first_pruned = full.iter().find(|t| t.pruned().is_some()).unwrap().number;
        let cut = events
            .iter()
            .position(
                |e| matches!(e, TrialEvent::ChunkDone { trial, .. } if *trial == first_pruned),
            )
            .unwrap()
            + 3;
        let store = MemoryStore::new();
        for e in &events[..cut] {
            store.append(e).unwrap();
        }
        for t in full.iter().filter(|t| t.number < first_pruned) {
            if let Some(v) = full_store.control_values(t.number).unwrap() {
                store.save_control_values(t.number, &v).unwrap();
            }
        }
        let (exec, _) = FakeExecutor::new(noisy());
        let resumed = rt().block_on(race(&store, &exec, 10)).unwrap();
        assert_eq!(
            resumed, full,
            "a resumed race must decide as the uninterrupted one"
        );
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
                _ => "other",
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
