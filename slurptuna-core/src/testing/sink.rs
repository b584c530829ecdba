//! `RecordingSink`: the chunk sink of tests and suites.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::error::CoreError;
use crate::evaluate::ChunkResult;
use crate::executor::{ChunkSink, Delivery, TrialJob};
use crate::seeds::SeedLayout;
use crate::stats::SeedStats;
use crate::trial::{ChunkIndex, TrialNumber};

/// What a sink for one job expects.
#[derive(Debug)]
struct Expected {
    trial: TrialNumber,
    layout: SeedLayout,
    requested: Vec<ChunkIndex>,
}

#[derive(Debug, Default)]
struct Inner {
    delivered: BTreeMap<(TrialNumber, ChunkIndex), ChunkResult>,
    order: Vec<ChunkIndex>,
    problems: Vec<String>,
    fail_after: Option<usize>,
    stop_after: Option<usize>,
}

/// The [`ChunkSink`] of every test and suite: it records every delivery and refuses (with an
/// error, which an executor must turn into [`crate::ExecError::Fatal`]) a chunk delivered twice.
/// Made for one job ([`RecordingSink::for_job`]) it also refuses a chunk of another trial or
/// not in the job, and a result whose seed count does not match the chunk; made with
/// `default()` it takes chunks of any trial (several concurrent jobs may share it). Refusals are
/// also kept in [`RecordingSink::problems`], so a test sees them even if the executor swallowed
/// the error.
#[derive(Debug, Default)]
pub struct RecordingSink {
    expected: Option<Expected>,
    inner: Mutex<Inner>,
}

impl RecordingSink {
    /// A sink expecting exactly the chunks of `job`.
    pub fn for_job(job: &TrialJob) -> Self {
        Self {
            expected: Some(Expected {
                trial: job.trial,
                layout: (*job.layout).clone(),
                requested: job.chunks.clone(),
            }),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Makes the sink fail (as a broken store would) once `n` chunks were accepted.
    pub fn fail_after(self, n: usize) -> Self {
        self.lock().fail_after = Some(n);
        self
    }

    /// Makes the sink answer [`Delivery::Stop`] (as a seed race that pruned the trial would)
    /// once it accepted `n` chunks (`n` ≥ 1).
    pub fn stop_after(self, n: usize) -> Self {
        self.lock().stop_after = Some(n);
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every result accepted so far, by trial and chunk.
    pub fn results(&self) -> BTreeMap<(TrialNumber, ChunkIndex), ChunkResult> {
        self.lock().delivered.clone()
    }

    /// The results of trial `trial` accepted so far, by chunk.
    pub fn delivered(&self, trial: TrialNumber) -> BTreeMap<ChunkIndex, ChunkResult> {
        self.lock()
            .delivered
            .iter()
            .filter(|((t, _), _)| *t == trial)
            .map(|((_, c), r)| (*c, r.clone()))
            .collect()
    }

    /// The chunks accepted so far, in delivery order.
    pub fn order(&self) -> Vec<ChunkIndex> {
        self.lock().order.clone()
    }

    /// Every refused delivery, described.
    pub fn problems(&self) -> Vec<String> {
        self.lock().problems.clone()
    }

    /// The statistics of trial `trial`: its accepted chunks merged in chunk order.
    pub fn trial_stats(&self, trial: TrialNumber) -> SeedStats {
        let mut s = SeedStats::default();
        for r in self.delivered(trial).values() {
            s.merge(&r.stats);
        }
        s
    }

    /// The per-seed values of trial `trial`, chunk after chunk (chunks delivered without values
    /// add none).
    pub fn trial_values(&self, trial: TrialNumber) -> Vec<f64> {
        self.delivered(trial)
            .values()
            .flat_map(|r| r.values.clone().unwrap_or_default())
            .collect()
    }

    /// For a sink made for one job: the per-seed values of every requested chunk, in chunk
    /// order, when all were delivered with values.
    pub fn values(&self) -> Option<Vec<f64>> {
        let e = self.expected.as_ref()?;
        let got = self.delivered(e.trial);
        let mut chunks = e.requested.clone();
        chunks.sort();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(got.get(&c)?.values.as_ref()?);
        }
        Some(out)
    }

    fn check(
        &self,
        g: &Inner,
        trial: TrialNumber,
        chunk: ChunkIndex,
        result: &ChunkResult,
    ) -> Option<String> {
        if g.delivered.contains_key(&(trial, chunk)) {
            return Some(format!("chunk {chunk} of trial {trial} delivered twice"));
        }
        let e = self.expected.as_ref()?;
        let want = e.layout.chunk_positions(chunk);
        if trial != e.trial {
            Some(format!(
                "chunk {chunk} delivered for trial {trial}, the job is trial {}",
                e.trial
            ))
        } else if !e.requested.contains(&chunk) {
            Some(format!("chunk {chunk} was not requested"))
        } else if result.stats.count() != want.end - want.start {
            Some(format!(
                "chunk {chunk}: result covers {} seeds, the chunk has {}",
                result.stats.count(),
                want.end - want.start
            ))
        } else {
            None
        }
    }
}

impl ChunkSink for RecordingSink {
    fn chunk_done(
        &self,
        trial: TrialNumber,
        chunk: ChunkIndex,
        result: ChunkResult,
    ) -> Result<Delivery, CoreError> {
        let mut g = self.lock();
        if let Some(p) = self.check(&g, trial, chunk, &result) {
            g.problems.push(p.clone());
            return Err(CoreError::Executor {
                executor: "recording sink",
                source: p.into(),
            });
        }
        if g.fail_after.is_some_and(|n| g.delivered.len() >= n) {
            return Err(CoreError::Store {
                store: "recording sink",
                source: format!("trial {trial}: chunk {chunk} refused (scripted)").into(),
            });
        }
        g.order.push(chunk);
        g.delivered.insert((trial, chunk), result);
        if g.stop_after.is_some_and(|n| g.delivered.len() >= n) {
            return Ok(Delivery::Stop);
        }
        Ok(Delivery::Continue)
    }
}
