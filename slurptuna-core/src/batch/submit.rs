//! Submission: waiting chunks become job arrays (split at the scheduler's maximum array size),
//! each recorded in `jobs.json` under a unique job name **before** it is submitted, and with
//! its job id after; transient failures are retried a few times. A submit-limit refusal
//! submits nothing: the executor halves its wave (the largest array it submits, for the rest of
//! its life) when the array had more than one task, pauses every submission with an exponential, jittered backoff, and
//! tries again; a trial refused for longer than the attempt timeout stops the run.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

use tokio::sync::OwnedSemaphorePermit;

use crate::batch::client::{ArraySubmission, ClientError, ClientErrorKind, JobId, TaskRef};
use crate::batch::executor::{SlotState, TrialRun};
use crate::batch::files::{
    failure_path, read_json, write_json, JobRecord, JobsFile, PendingRecord,
};
use crate::batch::poller::lock;
use crate::batch::worker::CHUNK_OFFSET_ENV;
use crate::error::CoreError;
use crate::executor::ExecError;
use crate::trial::ChunkIndex;

/// Longest pause between two submission tries after a refusal or a transient failure.
const MAX_SUBMIT_BACKOFF: Duration = Duration::from_secs(60);
/// Retries of the lookup by name that decides whether a submission whose answer was lost
/// exists (an unanswered lookup never leads to a second submission).
const FIND_RETRIES: u32 = 5;

/// 12 hex digits that differ between submissions (of this process and of others): the end of
/// a job name that must name one submission only.
pub(super) fn submission_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::AtomicU64;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // A process-random key (std's per-process hash seed), the process, the time and a counter.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:012x}", h.finish() & 0xffff_ffff_ffff)
}

/// `s` with every character outside `[A-Za-z0-9_.-]` replaced, at most `max` characters.
fn clean(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(max)
        .collect()
}

/// What became of one array.
pub(super) enum Submitted {
    /// Accepted as this job.
    Job(JobId),
    /// Refused for the scheduler's limits; its chunks wait (nothing was submitted).
    Refused,
}

/// The pause after `previous` (none: the first refusal): doubled, at most
/// [`MAX_SUBMIT_BACKOFF`], and drawn within ±25% so that controllers refused together do not
/// come back together.
fn next_backoff(previous: Option<Duration>) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let base = previous.map_or(Duration::from_secs(1), |d| (d * 2).min(MAX_SUBMIT_BACKOFF));
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let jitter = 0.75 + 0.5 * (h.finish() >> 11) as f64 / (1u64 << 53) as f64;
    base.mul_f64(jitter).min(MAX_SUBMIT_BACKOFF)
}

impl TrialRun {
    /// Submits the waiting chunks that can get a permit, at most the executor's wave at once,
    /// as one array (split at the maximum array size, with an offset). After a refusal for the
    /// scheduler's limits nothing is submitted until the executor's pause has passed.
    pub(super) async fn submit_waiting(&mut self) -> Result<(), ExecError> {
        if !self
            .slots
            .values()
            .any(|s| matches!(s.state, SlotState::Waiting))
        {
            return Ok(());
        }
        let waiting = self.waiting();
        if waiting.is_empty() {
            return Ok(());
        }
        let paused = lock(&self.shared.refused).is_some_and(|(until, _)| Instant::now() < until);
        if paused {
            return Ok(());
        }
        let wave = usize::try_from(self.shared.wave.load(Ordering::SeqCst)).unwrap_or(usize::MAX);
        let want = waiting.len().min(wave.max(1));
        let mut permits: Vec<Option<OwnedSemaphorePermit>> = Vec::new();
        match self.shared.limit(self.client.as_ref(), &self.config).await {
            None => permits.resize_with(want, || None),
            Some(sem) => {
                while permits.len() < want {
                    match sem.clone().try_acquire_owned() {
                        Ok(p) => permits.push(Some(p)),
                        Err(_) => break,
                    }
                }
                if permits.is_empty() {
                    if self.submitted().next().is_some() {
                        return Ok(()); // our own tasks will free permits
                    }
                    // Finished tasks the scheduler may still count can hold the permits: ask
                    // about them (at most once per poll interval, the answer is shared).
                    self.release_lingering().await;
                    match tokio::time::timeout(self.config.poll_interval, sem.acquire_owned()).await
                    {
                        Ok(Ok(p)) => permits.push(Some(p)),
                        Ok(Err(_)) => return Err(ExecError::Fatal(CoreError::Cancelled)),
                        Err(_) => return Ok(()), // again at the next check
                    }
                }
            }
        }
        let chosen = &waiting[..permits.len()];
        let max = self.shared.max_array_size(self.client.as_ref()).await;
        let mut groups: BTreeMap<u64, Vec<ChunkIndex>> = BTreeMap::new();
        for &c in chosen {
            groups.entry(c.0 / max * max).or_default().push(c);
        }
        let mut permits = permits.into_iter();
        for (offset, chunks) in groups {
            match self.submit_array(offset, &chunks).await? {
                Submitted::Job(job) => {
                    let now = Instant::now();
                    for c in chunks {
                        let task = TaskRef {
                            job,
                            task: Some(c.0 - offset),
                        };
                        self.mark_submitted(c, task, now, permits.next().flatten());
                    }
                }
                // The remaining permits are dropped with `permits`; the chunks wait.
                Submitted::Refused => break,
            }
        }
        Ok(())
    }

    /// Asks the scheduler about tasks whose permits linger (see `Poller::linger`), reusing an
    /// answer younger than the poll interval; the answer releases the permits of tasks it no
    /// longer lists as active.
    async fn release_lingering(&self) {
        let lingering = self.shared.poller.lingering_jobs();
        if lingering.is_empty() {
            return;
        }
        let not_before = Instant::now()
            .checked_sub(self.config.poll_interval)
            .unwrap_or_else(Instant::now);
        if let Err(e) = self
            .shared
            .poller
            .snapshot(self.client.as_ref(), &lingering, not_before)
            .await
        {
            tracing::warn!("{}: asking for task states failed: {e}", self.client.name());
        }
    }

    /// The job submitted under `name`, asking until the scheduler answers (a few tries, with
    /// backoff): `None` when it knows no such job.
    async fn find_submitted(&self, name: &str) -> Result<Option<JobId>, ClientError> {
        let mut backoff = Duration::from_secs(1);
        let mut tries = 0;
        loop {
            match self.client.find(name).await {
                Ok(found) => return Ok(found.iter().min().copied()),
                Err(e) if tries < FIND_RETRIES => {
                    tries += 1;
                    tracing::warn!(
                        "trial {}: asking whether {name} was submitted failed ({e}); asking again in {backoff:?}",
                        self.job.trial
                    );
                }
                Err(e) => return Err(e),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_SUBMIT_BACKOFF);
        }
    }

    /// After a refusal for the scheduler's limits: a smaller wave when the array had more than
    /// one task, a longer pause for the whole executor, and the run-stopping error once this
    /// trial has been refused for longer than the attempt timeout.
    fn refused(&mut self, tasks: usize, e: ClientError) -> Result<Submitted, ExecError> {
        let since = *self.refused_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= self.config.attempt_timeout {
            return Err(self.fatal(e));
        }
        if tasks > 1 {
            let wave = (tasks / 2) as u64;
            if self.shared.wave.fetch_min(wave, Ordering::SeqCst) > wave {
                tracing::info!(
                    "trial {}: the scheduler refused an array of {tasks} tasks ({e}); submitting at most {wave} at once",
                    self.job.trial
                );
            }
        }
        let mut refused = lock(&self.shared.refused);
        let pause = next_backoff(refused.map(|(_, d)| d));
        *refused = Some((Instant::now() + pause, pause));
        tracing::warn!(
            "trial {}: the scheduler refused the submission ({e}); trying again in {pause:.1?}",
            self.job.trial
        );
        Ok(Submitted::Refused)
    }

    /// The trial's job record (empty if there is none or it cannot be read).
    pub(super) fn jobs_file(&self) -> JobsFile {
        read_json(&self.files.jobs(), "job record")
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Drops the pending record of a submission that did not happen.
    fn forget_pending(&self, name: &str) {
        let mut record = self.jobs_file();
        record.pending.retain(|p| p.name != name);
        if let Err(e) = write_json(&self.files.jobs(), &record) {
            tracing::warn!(
                "trial {}: cannot update the job record: {e}",
                self.job.trial
            );
        }
    }

    /// `<prefix>-<loss>[-<entry>]-t<trial>`, with every character outside `[A-Za-z0-9_.-]`
    /// replaced (a job name is also a name filter of the scheduler, where a comma separates
    /// names). The prefix is checked by `BatchConfig::validate`.
    fn job_name(&self) -> String {
        let mut name = format!(
            "{}-{}",
            self.config.job_name_prefix,
            clean(&self.job.loss_name, 40)
        );
        if let Some(e) = &self.job.entry_id {
            name.push('-');
            name.push_str(&clean(e, 40));
        }
        name.push_str(&format!("-t{}", self.job.trial.0));
        name
    }

    /// The submission of `chunks` as array indices `chunk - offset`, under `name`.
    fn array_submission(
        &self,
        offset: u64,
        chunks: &[ChunkIndex],
        name: String,
    ) -> ArraySubmission {
        let worker = &self.worker;
        let mut script_args: Vec<OsString> = vec![
            self.files.task().into_os_string(),
            std::path::absolute(&worker.program)
                .unwrap_or_else(|_| worker.program.clone())
                .into_os_string(),
        ];
        script_args.extend(worker.args.iter().cloned());
        ArraySubmission {
            script: self.files.script(),
            script_args,
            array: chunks.iter().map(|c| c.0 - offset).collect(),
            array_limit: self.config.array_parallelism_limit,
            job_name: name,
            chdir: std::path::absolute(&worker.cwd).unwrap_or_else(|_| worker.cwd.clone()),
            output: self.files.stdout_pattern(),
            error: self.files.stderr_pattern(),
            env: if offset > 0 {
                vec![(CHUNK_OFFSET_ENV.to_string(), offset.to_string())]
            } else {
                Vec::new()
            },
        }
    }

    async fn submit_array(
        &mut self,
        offset: u64,
        chunks: &[ChunkIndex],
    ) -> Result<Submitted, ExecError> {
        // A name unique to this submission, recorded before it is made (see `PendingRecord`).
        let name = format!("{}-{}", self.job_name(), submission_token());
        let sub = self.array_submission(offset, chunks, name.clone());
        // A failure record of an earlier attempt must not be blamed on this one.
        for &c in chunks {
            let _ = std::fs::remove_file(failure_path(&self.files.chunks_dir(), c));
        }
        let mut record = self.jobs_file();
        record.pending.push(PendingRecord {
            name: name.clone(),
            offset,
            chunks: chunks.to_vec(),
            task_key: self.task_key.clone(),
        });
        write_json(&self.files.jobs(), &record)?;
        let mut failing_since: Option<Instant> = None;
        let mut backoff = Duration::from_secs(1);
        let job = loop {
            match self.client.submit(&sub).await {
                Ok(job) => break job,
                Err(e) if e.kind == ClientErrorKind::SubmitLimit => {
                    self.forget_pending(&name);
                    return self.refused(chunks.len(), e);
                }
                // A refused RPC, a socket timeout, slurmctld restarting: waited out (with a
                // growing pause) for as long as an attempt may take.
                Err(e)
                    if e.kind == ClientErrorKind::Transient
                        && failing_since.get_or_insert_with(Instant::now).elapsed()
                            < self.config.attempt_timeout =>
                {
                    tracing::warn!(
                        "trial {}: submitting failed ({e}); retrying in {backoff:?}",
                        self.job.trial
                    );
                }
                Err(e) => {
                    // After transient errors the array may exist: a resumed controller finds
                    // it by the name kept in the pending record.
                    if e.kind != ClientErrorKind::Transient {
                        self.forget_pending(&name);
                    }
                    return Err(self.fatal(e));
                }
            }
            if self.shared.shut_down.load(Ordering::SeqCst) {
                self.forget_pending(&name);
                return Err(ExecError::Fatal(CoreError::Cancelled));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_SUBMIT_BACKOFF);
            // The failed call may have reached the scheduler before its answer was lost (a
            // socket timeout): an array under this submission's name is this submission, and
            // submitting again would run its chunks twice. So it is submitted again only once
            // the scheduler has said it knows no such array.
            match self.find_submitted(&name).await {
                Ok(Some(job)) => {
                    tracing::info!(
                        "trial {}: the submission that seemed to fail was accepted as job {job}",
                        self.job.trial
                    );
                    break job;
                }
                Ok(None) => {}
                // Unknown whether it exists: stop; the pending record lets a resumed
                // controller find it by its name.
                Err(e) => return Err(self.fatal(e)),
            }
        };
        self.refused_since = None;
        *lock(&self.shared.refused) = None;
        if self.registered.insert(job) {
            self.shared.poller.register(job);
        }
        let mut record = self.jobs_file();
        record.pending.retain(|p| p.name != name);
        record.jobs.push(JobRecord {
            job,
            offset,
            chunks: chunks.to_vec(),
            task_key: self.task_key.clone(),
        });
        write_json(&self.files.jobs(), &record)?;
        tracing::debug!(
            "trial {}: submitted job {job} for chunks {chunks:?}",
            self.job.trial
        );
        Ok(Submitted::Job(job))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ_and_names_are_clean() {
        let a = submission_token();
        let b = submission_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 12);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(clean("a b,c$(d)", 40), "a_b_c__d_");
        assert_eq!(clean("abcdef", 3), "abc");
    }
}
