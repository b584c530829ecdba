//! `RecordingSink`: the chunk sink of tests and suites.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::error::CoreError;
use crate::evaluate::ChunkResult;
use crate::executor::{ChunkSink, TrialJob};
use crate::seeds::SeedLayout;
use crate::trial::{ChunkIndex, TrialNumber};

#[derive(Debug, Default)]
struct Inner {
    delivered: BTreeMap<ChunkIndex, ChunkResult>,
    order: Vec<ChunkIndex>,
    problems: Vec<String>,
    fail_after: Option<usize>,
}

/// A [`ChunkSink`] for one trial that records every delivery and refuses (with an error, which
/// an executor must turn into [`crate::ExecError::Fatal`]) a chunk delivered twice, a chunk of
/// another trial or not in the job, and a result whose seed count does not match the chunk.
/// Refusals are also kept in [`RecordingSink::problems`], so a test sees them even if the
/// executor swallowed the error.
#[derive(Debug)]
pub struct RecordingSink {
    trial: TrialNumber,
    layout: SeedLayout,
    requested: Vec<ChunkIndex>,
    inner: Mutex<Inner>,
}

impl RecordingSink {
    /// A sink expecting the chunks of `job`.
    pub fn for_job(job: &TrialJob) -> Self {
        Self {
            trial: job.trial,
            layout: (*job.layout).clone(),
            requested: job.chunks.clone(),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Makes the sink fail (as a broken store would) once `n` chunks were accepted.
    pub fn fail_after(self, n: usize) -> Self {
        self.lock().fail_after = Some(n);
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The results accepted so far, by chunk.
    pub fn delivered(&self) -> BTreeMap<ChunkIndex, ChunkResult> {
        self.lock().delivered.clone()
    }

    /// The chunks accepted so far, in delivery order.
    pub fn order(&self) -> Vec<ChunkIndex> {
        self.lock().order.clone()
    }

    /// Every refused delivery, described.
    pub fn problems(&self) -> Vec<String> {
        self.lock().problems.clone()
    }

    /// The per-seed values of every requested chunk, concatenated in chunk order, when all were
    /// delivered with values.
    pub fn values(&self) -> Option<Vec<f64>> {
        let g = self.lock();
        let mut chunks = self.requested.clone();
        chunks.sort();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(g.delivered.get(&c)?.values.as_ref()?);
        }
        Some(out)
    }
}

impl ChunkSink for RecordingSink {
    fn chunk_done(
        &self,
        trial: TrialNumber,
        chunk: ChunkIndex,
        result: ChunkResult,
    ) -> Result<(), CoreError> {
        let mut g = self.lock();
        let want = self.layout.chunk_positions(chunk);
        let problem = if trial != self.trial {
            Some(format!(
                "chunk {chunk} delivered for trial {trial}, the job is trial {}",
                self.trial
            ))
        } else if !self.requested.contains(&chunk) {
            Some(format!("chunk {chunk} was not requested"))
        } else if g.delivered.contains_key(&chunk) {
            Some(format!("chunk {chunk} delivered twice"))
        } else if result.stats.count() != want.end - want.start {
            Some(format!(
                "chunk {chunk}: result covers {} seeds, the chunk has {}",
                result.stats.count(),
                want.end - want.start
            ))
        } else if g.fail_after.is_some_and(|n| g.delivered.len() >= n) {
            return Err(CoreError::Store {
                store: "recording sink",
                source: format!("trial {trial}: chunk {chunk} refused (scripted)").into(),
            });
        } else {
            None
        };
        if let Some(p) = problem {
            g.problems.push(p.clone());
            return Err(CoreError::Executor {
                executor: "recording sink",
                source: p.into(),
            });
        }
        g.order.push(chunk);
        g.delivered.insert(chunk, result);
        Ok(())
    }
}
