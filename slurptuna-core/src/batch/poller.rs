//! The shared poll: one `states` call (Slurm's `squeue`) per interval covers every live job of
//! the executor, whichever trial or entry it belongs to.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::time::Instant;

use tokio::sync::OwnedSemaphorePermit;

use crate::batch::client::{BatchClient, ClientError, JobId, TaskRef, TaskStatus};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The scheduler's answer for a set of jobs at one moment.
pub(crate) struct Snapshot {
    taken: Instant,
    queried: BTreeSet<JobId>,
    tasks: rustc_hash::FxHashMap<(JobId, Option<u64>), TaskStatus>,
}

impl Snapshot {
    /// The status of one task (`None`: the scheduler no longer lists it).
    pub(crate) fn get(&self, job: JobId, task: Option<u64>) -> Option<&TaskStatus> {
        self.tasks.get(&(job, task))
    }
}

/// The jobs some trial still waits for, and the last answer about them.
#[derive(Default)]
pub(crate) struct Poller {
    /// Job ids with tasks some trial still waits for, with the number of trials waiting.
    live: Mutex<HashMap<JobId, usize>>,
    /// The last answer, reused by trials polling in the same interval.
    last: tokio::sync::Mutex<Option<Arc<Snapshot>>>,
    /// Queue permits of tasks no trial waits for any more (their result arrived, or they were
    /// cancelled) that the scheduler may still count against its limits: a task that wrote its
    /// result is still running, then completing, for a moment. Each is released by the first
    /// answer that no longer lists its task as active.
    lingering: Mutex<HashMap<TaskRef, OwnedSemaphorePermit>>,
}

impl Poller {
    /// One more trial waits for `job`.
    pub(crate) fn register(&self, job: JobId) {
        *lock(&self.live).entry(job).or_insert(0) += 1;
    }

    /// One trial less waits for `job`.
    pub(crate) fn unregister(&self, job: JobId) {
        let mut live = lock(&self.live);
        if let Some(n) = live.get_mut(&job) {
            *n -= 1;
            if *n == 0 {
                live.remove(&job);
            }
        }
    }

    /// Every job some trial waits for.
    pub(crate) fn live_jobs(&self) -> Vec<JobId> {
        let mut v: Vec<JobId> = lock(&self.live).keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Keeps `permit` until the scheduler no longer lists `task` as active.
    pub(crate) fn linger(&self, task: TaskRef, permit: OwnedSemaphorePermit) {
        lock(&self.lingering).insert(task, permit);
    }

    /// The jobs with lingering permits.
    pub(crate) fn lingering_jobs(&self) -> BTreeSet<JobId> {
        lock(&self.lingering).keys().map(|t| t.job).collect()
    }

    /// Task states no older than `not_before` covering `mine`: the cached answer when it
    /// qualifies, else one `states` call for every live job of the executor.
    pub(crate) async fn snapshot(
        &self,
        client: &dyn BatchClient,
        mine: &BTreeSet<JobId>,
        not_before: Instant,
    ) -> Result<Arc<Snapshot>, ClientError> {
        let mut cached = self.last.lock().await;
        if let Some(s) = cached.as_ref() {
            if s.taken >= not_before && mine.is_subset(&s.queried) {
                return Ok(s.clone());
            }
        }
        let mut jobs: BTreeSet<JobId> = lock(&self.live).keys().copied().collect();
        jobs.extend(mine.iter().copied());
        jobs.extend(self.lingering_jobs());
        let jobs: Vec<JobId> = jobs.into_iter().collect();
        let taken = Instant::now();
        let statuses = client.states(&jobs).await?;
        let snap = Arc::new(Snapshot {
            taken,
            queried: jobs.into_iter().collect(),
            tasks: statuses.into_iter().map(|s| ((s.job, s.task), s)).collect(),
        });
        lock(&self.lingering).retain(|t, _| {
            !snap.queried.contains(&t.job)
                || snap.get(t.job, t.task).is_some_and(|s| s.state.is_active())
        });
        *cached = Some(snap.clone());
        Ok(snap)
    }
}
