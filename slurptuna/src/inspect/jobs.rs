//! The batch jobs recorded for a run (`trials/*/jobs.json`) and their states in Slurm's queue.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use slurptuna_core::batch::JobId;
use slurptuna_core::TrialNumber;

use crate::error::Result;

/// The part of a trial's `jobs.json` a reader needs (the file is written by the batch layer;
/// unknown fields are ignored).
#[derive(serde::Deserialize)]
struct JobsFile {
    #[serde(default)]
    jobs: Vec<JobEntry>,
}

#[derive(serde::Deserialize)]
struct JobEntry {
    job: JobId,
}

/// Every job recorded for the run at `run_dir`, as `(trial, job)` in trial order then
/// submission order: the `jobs` of each `trials/trial_NNNNN/jobs.json`. A run that never
/// submitted a job (SINGLE mode, or nothing submitted yet) has none. A `jobs.json` being
/// replaced at this moment is read whole (it is written atomically).
pub fn recorded_jobs(run_dir: &Path) -> Result<Vec<(TrialNumber, JobId)>> {
    let trials_dir = run_dir.join("trials");
    let entries = match std::fs::read_dir(&trials_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(slurptuna_store::StoreError::Io {
                action: "list",
                path: trials_dir,
                source: e,
            }
            .into())
        }
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(n) = name
            .to_str()
            .and_then(|s| s.strip_prefix("trial_"))
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let file: Option<JobsFile> = slurptuna_store::read_json(&entry.path().join("jobs.json"))?;
        for j in file.map(|f| f.jobs).unwrap_or_default() {
            out.push((TrialNumber(n), j.job));
        }
    }
    out.sort_by_key(|(t, _)| *t);
    Ok(out)
}

/// One task (or whole job) in Slurm's queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskState {
    /// The task as Slurm names it (`123_4`, or `123` for a job that is not an array).
    pub task: String,
    /// Its state (`PENDING`, `RUNNING`, `COMPLETING`, ...).
    pub state: String,
}

/// What the queue says about some jobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobStates {
    /// `squeue` could not be asked (not installed, or it failed): why.
    Unavailable(String),
    /// The tasks still in the queue, per job; a job absent from the map has left the queue.
    Known(BTreeMap<JobId, Vec<TaskState>>),
}

impl JobStates {
    /// `"RUNNING×2 PENDING×1"` for `job`, or `None` when it is not in the queue (or the queue
    /// is unknown).
    pub fn summary(&self, job: JobId) -> Option<String> {
        let JobStates::Known(map) = self else {
            return None;
        };
        let tasks = map.get(&job)?;
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for t in tasks {
            *counts.entry(t.state.as_str()).or_default() += 1;
        }
        Some(
            counts
                .iter()
                .map(|(s, n)| format!("{s}×{n}"))
                .collect::<Vec<_>>()
                .join(" "),
        )
    }
}

/// Parses `squeue -h -r -o "%F|%i|%T"` (array job id, task id, state), keeping the jobs in
/// `wanted`.
pub fn parse_squeue(text: &str, wanted: &[JobId]) -> BTreeMap<JobId, Vec<TaskState>> {
    let mut map: BTreeMap<JobId, Vec<TaskState>> = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.trim().split('|');
        let (Some(array), Some(task), Some(state)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Ok(id) = array.trim().parse::<u64>() else {
            continue;
        };
        let id = JobId(id);
        if wanted.contains(&id) {
            map.entry(id).or_default().push(TaskState {
                task: task.trim().to_string(),
                state: state.trim().to_string(),
            });
        }
    }
    map
}

/// Asks `squeue` (one call, one line per array task) for the states of `jobs`. Never fails:
/// when `squeue` is missing or errs, says why in [`JobStates::Unavailable`].
pub fn job_states(jobs: &[JobId]) -> JobStates {
    if jobs.is_empty() {
        return JobStates::Known(BTreeMap::new());
    }
    match Command::new("squeue")
        .args(["-h", "-r", "-o", "%F|%i|%T"])
        .output()
    {
        Ok(out) if out.status.success() => {
            JobStates::Known(parse_squeue(&String::from_utf8_lossy(&out.stdout), jobs))
        }
        Ok(out) => JobStates::Unavailable(format!(
            "squeue failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => JobStates::Unavailable(format!(
            "squeue could not be run ({e}): run this on a node of the cluster to see job states"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_are_grouped_by_array_job() {
        let text = "12|12_0|RUNNING\n12|12_1|PENDING\n13|13|RUNNING\nbad line\n99|99_0|RUNNING\n";
        let map = parse_squeue(text, &[JobId(12), JobId(13)]);
        assert_eq!(map.len(), 2);
        assert_eq!(map[&JobId(12)].len(), 2);
        let states = JobStates::Known(map);
        assert_eq!(
            states.summary(JobId(12)).as_deref(),
            Some("PENDING×1 RUNNING×1")
        );
        assert_eq!(states.summary(JobId(99)), None);
    }
}
