//! Re-adoption on resume: tasks of jobs an earlier controller submitted for the same task file
//! that are still queued or running are waited for instead of being submitted again. Jobs come
//! from `jobs.json`; a submission recorded as pending (the earlier controller died before it
//! learned the job id) is found by its unique job name.

use tokio::time::Instant;

use crate::batch::client::{JobId, TaskRef};
use crate::batch::executor::TrialRun;
use crate::batch::files::{read_json, write_json, JobRecord, JobsFile, PendingRecord};
use crate::trial::ChunkIndex;

impl TrialRun {
    /// Re-adopts still-live tasks recorded by an earlier controller for the same task file.
    pub(super) async fn adopt(&mut self) {
        if !self.slots.keys().any(|&c| self.is_waiting(c)) {
            return; // every chunk was delivered from its stored result
        }
        let mut recorded: JobsFile = match read_json(&self.files.jobs(), "job record") {
            Ok(Some(j)) => j,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("ignoring the job record: {e}");
                return;
            }
        };
        self.find_pending(&mut recorded).await;
        let records: Vec<JobRecord> = recorded
            .jobs
            .into_iter()
            .filter(|r| r.task_key == self.task_key)
            .collect();
        if records.is_empty() {
            return;
        }
        let ids: Vec<JobId> = records.iter().map(|r| r.job).collect();
        let statuses = match self.client.states(&ids).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(
                    "trial {}: cannot ask {} about the recorded jobs ({e}); submitting their chunks again",
                    self.job.trial,
                    self.client.name()
                );
                return;
            }
        };
        let limit = self.shared.limit(self.client.as_ref(), &self.config).await;
        let now = Instant::now();
        for st in statuses {
            let (Some(task), true) = (st.task, st.state.is_active()) else {
                continue;
            };
            let Some(rec) = records.iter().find(|r| r.job == st.job) else {
                continue;
            };
            let c = ChunkIndex(task + rec.offset);
            if !self.is_waiting(c) || !rec.chunks.contains(&c) {
                continue;
            }
            let permit = limit
                .as_ref()
                .and_then(|s| s.clone().try_acquire_owned().ok());
            self.mark_submitted(
                c,
                TaskRef {
                    job: st.job,
                    task: Some(task),
                },
                now,
                permit,
            );
            tracing::info!(
                "trial {}: re-adopted chunk {c} (task {}_{task})",
                self.job.trial,
                st.job
            );
        }
    }

    /// Turns the pending submissions of this task file that the scheduler knows by name into job
    /// records (and records that in `jobs.json`).
    async fn find_pending(&self, recorded: &mut JobsFile) {
        let pending: Vec<PendingRecord> = recorded
            .pending
            .iter()
            .filter(|p| p.task_key == self.task_key)
            .cloned()
            .collect();
        for p in &pending {
            match self.client.find(&p.name).await {
                Ok(ids) => {
                    for &job in &ids {
                        tracing::info!(
                            "trial {}: found job {job} ({}), submitted but not recorded",
                            self.job.trial,
                            p.name
                        );
                        recorded.jobs.push(JobRecord {
                            job,
                            offset: p.offset,
                            chunks: p.chunks.clone(),
                            task_key: p.task_key.clone(),
                        });
                    }
                    recorded.pending.retain(|q| q.name != p.name);
                }
                Err(e) => tracing::warn!(
                    "trial {}: cannot look for job {} ({e}); its chunks may run twice",
                    self.job.trial,
                    p.name
                ),
            }
        }
        if !pending.is_empty() {
            if let Err(e) = write_json(&self.files.jobs(), recorded) {
                tracing::warn!(
                    "trial {}: cannot update the job record: {e}",
                    self.job.trial
                );
            }
        }
    }
}
