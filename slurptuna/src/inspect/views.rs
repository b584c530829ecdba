//! What the `slurptuna` inspecting commands print, as data and strings: run lists, a run's
//! overview, its trials (table, CSV, JSON lines), its best trial and the frames of `watch`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use slurptuna_core::batch::JobId;
use slurptuna_core::{ParamValue, Params, TrialNumber, TrialRecord, TrialState};

use super::jobs::{job_states, recorded_jobs, JobStates};
use super::{entries_of, RunData};
use crate::error::Result;

/// One line of `slurptuna runs`: a run directory, or one entry of an entries run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunLine {
    /// The name shown: the run directory's name, `parent/label` for an entry.
    pub name: String,
    /// The run directory.
    pub run_dir: PathBuf,
    /// The loss name.
    pub loss: String,
    /// The entry id, for an entry of an entries run.
    pub entry: Option<String>,
    /// Finished (complete or failed) trials, from the journal.
    pub finished: u64,
    /// Target number of finished trials.
    pub n_trials: u64,
    /// Trials asked and not finished.
    pub running: u64,
    /// The best value so far.
    pub best: Option<f64>,
    /// True when the run reached its target ([`is_finished`]).
    pub done: bool,
}

fn run_line(name: String, data: &RunData) -> RunLine {
    RunLine {
        name,
        run_dir: data.run_dir.clone(),
        loss: data.meta.loss_name.clone(),
        entry: data.meta.entry_id.clone(),
        finished: data.history.n_finished() as u64,
        n_trials: data.meta.n_trials,
        running: data.history.unfinished().count() as u64,
        best: best(data).map(|b| b.value),
        done: is_finished(data),
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// The runs under `root`, sorted by name: each run directory, and each entry of each entries
/// run (one line per entry). `root` may itself be a run directory or the parent of an entries
/// run. Directories that hold no run are skipped; a run that cannot be read is an error.
pub fn list_runs(root: &Path) -> Result<Vec<RunLine>> {
    if root.join(slurptuna_store::META_FILE).is_file() {
        let data = RunData::load(root)?;
        return Ok(vec![run_line(file_name(root), &data)]);
    }
    if let Some(er) = entries_of(root)? {
        return entry_lines(&file_name(root), &er.runs);
    }
    let read = std::fs::read_dir(root).map_err(|e| slurptuna_store::StoreError::Io {
        action: "list",
        path: root.to_path_buf(),
        source: e,
    })?;
    let mut dirs: Vec<PathBuf> = read
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut lines = Vec::new();
    for dir in dirs {
        if dir.join(slurptuna_store::META_FILE).is_file() {
            let data = RunData::load(&dir)?;
            lines.push(run_line(file_name(&dir), &data));
        } else if let Some(er) = entries_of(&dir)? {
            lines.extend(entry_lines(&file_name(&dir), &er.runs)?);
        }
    }
    Ok(lines)
}

fn entry_lines(parent: &str, runs: &[(String, PathBuf)]) -> Result<Vec<RunLine>> {
    let mut lines = Vec::new();
    for (_, dir) in runs {
        // An entry not started yet has no directory.
        if !dir.join(slurptuna_store::META_FILE).is_file() {
            continue;
        }
        let data = RunData::load(dir)?;
        lines.push(run_line(format!("{parent}/{}", file_name(dir)), &data));
    }
    Ok(lines)
}

/// The table `slurptuna runs` prints.
pub fn format_runs(lines: &[RunLine]) -> String {
    let mut s = format!(
        "{:<40} {:<20} {:<12} {:>9} {:>8} {:>14}\n",
        "run", "loss", "entry", "trials", "state", "best"
    );
    for l in lines {
        let _ = writeln!(
            s,
            "{:<40} {:<20} {:<12} {:>9} {:>8} {:>14}",
            l.name,
            l.loss,
            l.entry.as_deref().unwrap_or("-"),
            format!("{}/{}", l.finished, l.n_trials),
            if l.done {
                "done"
            } else if l.running > 0 {
                "running"
            } else {
                "stopped"
            },
            l.best.map_or("-".to_string(), |v| format!("{v:.6}"))
        );
    }
    s
}

/// The best complete trial of a run.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Best {
    /// Trial number.
    pub trial: u64,
    /// Its value (the mean over seeds).
    pub value: f64,
    /// Standard error of the mean over seeds.
    pub stderr: f64,
    /// Seeds evaluated.
    pub n_seeds: u64,
    /// Its parameters.
    pub params: Params,
}

/// The best complete trial so far in the run's direction (from the journal), if any.
pub fn best(data: &RunData) -> Option<Best> {
    let t = data.history.best(data.meta.direction)?;
    let TrialState::Complete { stats } = &t.state else {
        return None;
    };
    Some(Best {
        trial: t.number.0,
        value: stats.mean(),
        stderr: stats.stderr(),
        n_seeds: stats.count(),
        params: t.params.clone(),
    })
}

/// True when the study has ended: `meta.json` records its completion, or every one of its
/// `n_trials` trials finished and none is running.
pub fn is_finished(data: &RunData) -> bool {
    data.meta.completed_at_utc.is_some()
        || (data.history.n_finished() as u64 >= data.meta.n_trials
            && data.history.unfinished().next().is_none())
}

fn is_distributed(data: &RunData) -> bool {
    data.meta.mode.eq_ignore_ascii_case("distributed")
}

/// `trials --state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateFilter {
    /// Complete trials.
    Complete,
    /// Failed trials.
    Failed,
    /// Trials asked and not finished.
    Running,
    /// Trials a seed race stopped early.
    Pruned,
}

impl StateFilter {
    fn keeps(self, state: &TrialState) -> bool {
        matches!(
            (self, state),
            (StateFilter::Complete, TrialState::Complete { .. })
                | (StateFilter::Failed, TrialState::Failed { .. })
                | (StateFilter::Running, TrialState::Running)
                | (StateFilter::Pruned, TrialState::Pruned { .. })
        )
    }
}

/// `trials --sort`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortKey {
    /// Trial number (the default).
    #[default]
    Number,
    /// Value, best first in the run's direction; trials without a value last, by number.
    Value,
}

/// One trial as `slurptuna trials` prints it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TrialRow {
    /// Trial number.
    pub number: u64,
    /// `COMPLETE`, `FAILED`, `PRUNED` or `RUNNING`.
    pub state: &'static str,
    /// The value (mean over seeds) of a complete trial.
    pub value: Option<f64>,
    /// The standard error of the mean of a complete trial.
    pub stderr: Option<f64>,
    /// Seeds evaluated, for a complete or pruned trial.
    pub n_seeds: Option<u64>,
    /// Chunks done so far, for a running trial.
    pub chunks_done: Option<u64>,
    /// When the trial was asked (seconds since the Unix epoch), if recorded.
    pub started_at: Option<f64>,
    /// When it finished (seconds since the Unix epoch), if recorded.
    pub finished_at: Option<f64>,
    /// Its parameters.
    pub params: Params,
    /// Why a failed trial failed.
    pub reason: Option<String>,
    /// How its seed race stopped a pruned trial: the estimate of its mean, the lower bound L
    /// that was worse than the threshold (the best value then), β and the control trial.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub race: Option<RaceRow>,
}

/// The race of a pruned trial, as `slurptuna trials` shows it.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct RaceRow {
    /// The control-variate estimate of the trial's mean over all seeds.
    pub estimate: f64,
    /// The lower confidence bound L of that mean when the trial was pruned.
    pub bound: f64,
    /// The best value it was compared with.
    pub threshold: f64,
    /// The control-variate coefficient β̂.
    pub beta: f64,
    /// The control trial (the incumbent when the trial started).
    pub control: u64,
}

fn row(data: &RunData, t: &TrialRecord) -> TrialRow {
    let times = data.history.times(t.number).copied().unwrap_or_default();
    let (value, stderr, n_seeds, reason) = match &t.state {
        TrialState::Complete { stats } => (
            Some(stats.mean()),
            Some(stats.stderr()),
            Some(stats.count()),
            None,
        ),
        TrialState::Failed { reason } => (None, None, None, Some(reason.clone())),
        TrialState::Pruned { race } => (None, None, Some(race.stats.count()), None),
        TrialState::Running => (None, None, None, None),
    };
    TrialRow {
        number: t.number.0,
        state: t.state.label(),
        value,
        stderr,
        n_seeds,
        chunks_done: matches!(t.state, TrialState::Running)
            .then(|| data.history.chunks(t.number).map_or(0, |c| c.len() as u64)),
        started_at: times.started,
        finished_at: times.finished,
        params: t.params.clone(),
        reason,
        race: t.pruned().map(|r| RaceRow {
            estimate: r.estimate,
            bound: r.bound,
            threshold: r.threshold,
            beta: r.beta,
            control: r.control.0,
        }),
    }
}

/// The run's trials, keeping those `filter` keeps (all with `None`), in `sort` order.
pub fn trials(data: &RunData, filter: Option<StateFilter>, sort: SortKey) -> Vec<TrialRow> {
    let mut rows: Vec<TrialRow> = data
        .trials()
        .filter(|t| filter.is_none_or(|f| f.keeps(&t.state)))
        .map(|t| row(data, t))
        .collect();
    if sort == SortKey::Value {
        let dir = data.meta.direction;
        rows.sort_by(|a, b| match (a.value, b.value) {
            (Some(x), Some(y)) if dir.better(x, y) => std::cmp::Ordering::Less,
            (Some(x), Some(y)) if dir.better(y, x) => std::cmp::Ordering::Greater,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            _ => a.number.cmp(&b.number),
        });
    }
    rows
}

fn fmt_opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or("-".to_string(), f)
}

/// The table `slurptuna trials` prints: number, state, value, stderr, seeds, params, reason.
pub fn format_trials(rows: &[TrialRow]) -> String {
    let mut s = format!(
        "{:>6} {:<9} {:>12} {:>10} {:>6}  params\n",
        "trial", "state", "value", "stderr", "seeds"
    );
    for r in rows {
        let _ = write!(
            s,
            "{:>6} {:<9} {:>12} {:>10} {:>6}  {}",
            r.number,
            r.state,
            fmt_opt(r.value, |v| format!("{v:.6}")),
            fmt_opt(r.stderr, |v| format!("{v:.2e}")),
            r.n_seeds.map_or("-".to_string(), |n| n.to_string()),
            r.params
        );
        if let Some(reason) = &r.reason {
            let _ = write!(s, "  {reason}");
        }
        if let Some(race) = &r.race {
            let _ = write!(
                s,
                "  estimate {:.6}, L {:.6} > best {:.6} (β {:.3}, control trial {})",
                race.estimate, race.bound, race.threshold, race.beta, race.control
            );
        }
        s.push('\n');
    }
    s
}

/// One JSON object per line per trial (the fields of [`TrialRow`]).
pub fn to_json(rows: &[TrialRow]) -> String {
    let mut s = String::new();
    for r in rows {
        // A row is plain data: serialising it cannot fail (NaN becomes null).
        s.push_str(&serde_json::to_string(r).unwrap_or_else(|_| "{}".to_string()));
        s.push('\n');
    }
    s
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A parameter value as a CSV cell (strings unquoted).
pub(crate) fn param_text(v: &ParamValue) -> String {
    match v {
        ParamValue::Str(s) => s.clone(),
        other => other.to_string(),
    }
}

/// CSV with a header: `number,state,value,stderr,n_seeds,started_at,finished_at`, then one
/// `params_<name>` column per parameter (sorted by name), then `reason`. Empty fields for
/// missing values; values print in full precision.
pub fn to_csv(rows: &[TrialRow]) -> String {
    let names: BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| r.params.iter().map(|(k, _)| k))
        .collect();
    let mut header = vec![
        "number".to_string(),
        "state".into(),
        "value".into(),
        "stderr".into(),
        "n_seeds".into(),
        "started_at".into(),
        "finished_at".into(),
    ];
    header.extend(names.iter().map(|n| format!("params_{n}")));
    header.push("reason".into());
    let mut s = header
        .iter()
        .map(|h| csv_field(h))
        .collect::<Vec<_>>()
        .join(",");
    s.push('\n');
    let num = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    for r in rows {
        let mut fields = vec![
            r.number.to_string(),
            r.state.to_string(),
            num(r.value),
            num(r.stderr),
            r.n_seeds.map_or(String::new(), |n| n.to_string()),
            num(r.started_at),
            num(r.finished_at),
        ];
        fields.extend(
            names
                .iter()
                .map(|n| r.params.get(n).map_or(String::new(), param_text)),
        );
        fields.push(r.reason.clone().unwrap_or_default());
        s.push_str(
            &fields
                .iter()
                .map(|f| csv_field(f))
                .collect::<Vec<_>>()
                .join(","),
        );
        s.push('\n');
    }
    s
}

fn best_line(data: &RunData) -> String {
    match best(data) {
        Some(b) => format!(
            "{} ± {:.2e} over {} seeds (trial {}) at {}",
            b.value, b.stderr, b.n_seeds, b.trial, b.params
        ),
        None => "none yet (no complete trial)".to_string(),
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `(trial, job)` of every job recorded for a run.
type RecordedJobs = Vec<(TrialNumber, JobId)>;

/// The jobs of a DISTRIBUTED run with their queue states (`None` for a SINGLE run).
fn live_jobs(data: &RunData) -> Result<Option<(RecordedJobs, JobStates)>> {
    if !is_distributed(data) {
        return Ok(None);
    }
    let jobs = recorded_jobs(&data.run_dir)?;
    let ids: Vec<JobId> = jobs.iter().map(|(_, j)| *j).collect();
    let states = job_states(&ids);
    Ok(Some((jobs, states)))
}

/// `slurptuna show`: settings, progress, best with its standard error, failures with their
/// reasons and, for a DISTRIBUTED run, its jobs still in Slurm's queue with their states
/// (asks `squeue`; says so when it cannot).
pub fn show(data: &RunData) -> Result<String> {
    let jobs = live_jobs(data)?;
    Ok(show_with(
        data,
        jobs.as_ref().map(|(j, s)| (j.as_slice(), s)),
    ))
}

/// [`show`] with the jobs and their states given (`None`: no jobs section).
pub fn show_with(data: &RunData, jobs: Option<(&[(TrialNumber, JobId)], &JobStates)>) -> String {
    let m = &data.meta;
    let mut s = String::new();
    let _ = writeln!(s, "run        {}", data.run_dir.display());
    let _ = writeln!(s, "loss       {} — {}", m.loss_name, m.description);
    if let Some(id) = &m.entry_id {
        let _ = writeln!(s, "entry      {id}");
    }
    let backend = if m.backend.is_empty() {
        String::new()
    } else {
        format!(" ({})", m.backend)
    };
    let _ = writeln!(
        s,
        "mode       {}{backend}  direction {}  sampler {} (seed {})",
        m.mode, m.direction, m.sampler, m.random_seed
    );
    let _ = writeln!(
        s,
        "seeds      {} ({}..={}) in {} chunks of {}; {} trial(s) at once, {} seed(s) in parallel per worker",
        m.n_seeds,
        m.seed_start,
        m.seed_end,
        m.num_chunks,
        m.chunk_size,
        m.max_concurrent_trials,
        m.worker_parallelism
    );
    let _ = writeln!(
        s,
        "started    {}  resumes {}",
        m.started_at_utc,
        m.resumes.len()
    );
    if let Some(done) = &m.completed_at_utc {
        let dur = m
            .duration_seconds
            .map_or(String::new(), |d| format!(" after {d:.1} s"));
        let _ = writeln!(s, "completed  {done}{dur}");
    }
    let all: Vec<&TrialRecord> = data.trials().collect();
    let n_complete = all
        .iter()
        .filter(|t| matches!(t.state, TrialState::Complete { .. }))
        .count();
    let failed: Vec<&&TrialRecord> = all
        .iter()
        .filter(|t| matches!(t.state, TrialState::Failed { .. }))
        .collect();
    let running: Vec<&&TrialRecord> = all.iter().filter(|t| !t.is_finished()).collect();
    let n_pruned = all.iter().filter(|t| t.pruned().is_some()).count();
    let _ = writeln!(
        s,
        "trials     {} complete, {}{} failed, {} running, target {}{}",
        n_complete,
        if n_pruned > 0 {
            format!("{n_pruned} pruned, ")
        } else {
            String::new()
        },
        failed.len(),
        running.len(),
        m.n_trials,
        if is_finished(data) { " (done)" } else { "" }
    );
    if n_pruned > 0 {
        let finished: Vec<TrialRecord> = all
            .iter()
            .filter(|t| t.is_finished())
            .map(|t| (*t).clone())
            .collect();
        let (used, saved) = crate::controller::seed_counts(&finished, m.n_seeds);
        let _ = writeln!(
            s,
            "racing     {used} seed evaluations, {saved} saved by pruning ({:.0}%)",
            100.0 * saved as f64 / (used + saved).max(1) as f64
        );
    }
    let _ = writeln!(s, "best       {}", best_line(data));
    if let Some(v) = data.summary.as_ref().and_then(|x| x.validated.as_ref()) {
        let _ = writeln!(
            s,
            "validated  {} ± {:.2e} over {} fresh seeds (trial {}) at {}{}",
            v.value,
            v.stderr,
            v.n_seeds,
            v.trial,
            v.params,
            if v.differs() {
                format!(
                    "; not the fit's best (trial {}), a lucky draw",
                    v.fit_best_trial
                )
            } else {
                "; the fit's best".to_string()
            }
        );
    }
    if !failed.is_empty() {
        let _ = writeln!(s, "failures");
        for t in &failed {
            if let TrialState::Failed { reason } = &t.state {
                let _ = writeln!(s, "  trial {:<5} {reason}", t.number);
            }
        }
    }
    if let Some((jobs, states)) = jobs {
        s.push_str(&jobs_section(jobs, states, None));
    }
    s
}

/// The `jobs` section: recorded jobs still in the queue, with states (of `only` trials, if
/// given).
fn jobs_section(
    jobs: &[(TrialNumber, JobId)],
    states: &JobStates,
    only: Option<&BTreeSet<TrialNumber>>,
) -> String {
    let jobs: Vec<&(TrialNumber, JobId)> = jobs
        .iter()
        .filter(|(t, _)| only.is_none_or(|o| o.contains(t)))
        .collect();
    let mut s = String::new();
    match states {
        JobStates::Unavailable(why) => {
            let _ = writeln!(
                s,
                "jobs       {} recorded; states unknown: {why}",
                jobs.len()
            );
        }
        JobStates::Known(_) => {
            let live: Vec<(TrialNumber, JobId, String)> = jobs
                .iter()
                .filter_map(|(t, j)| states.summary(*j).map(|st| (*t, *j, st)))
                .collect();
            let _ = writeln!(
                s,
                "jobs       {} recorded, {} in the queue",
                jobs.len(),
                live.len()
            );
            for (t, j, st) in live {
                let _ = writeln!(s, "  job {j:<10} trial {t:<5} {st}");
            }
        }
    }
    s
}

/// One frame of `slurptuna watch` and whether the study has ended ([`is_finished`]): trials
/// done/target, best so far, the running trials with their chunks done/total and, for a
/// DISTRIBUTED run, their jobs' states in Slurm's queue.
pub fn watch_frame(data: &RunData) -> Result<(String, bool)> {
    let jobs = live_jobs(data)?;
    Ok(watch_frame_with(
        data,
        jobs.as_ref().map(|(j, s)| (j.as_slice(), s)),
        unix_now(),
    ))
}

/// [`watch_frame`] with the jobs given and `now` in seconds since the Unix epoch.
pub fn watch_frame_with(
    data: &RunData,
    jobs: Option<(&[(TrialNumber, JobId)], &JobStates)>,
    now: f64,
) -> (String, bool) {
    let m = &data.meta;
    let finished = is_finished(data);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}  ({}, {}{})",
        data.run_dir.display(),
        m.loss_name,
        m.mode,
        m.entry_id
            .as_deref()
            .map_or(String::new(), |e| format!(", entry {e}"))
    );
    let n_failed = data
        .trials()
        .filter(|t| matches!(t.state, TrialState::Failed { .. }))
        .count();
    let running: Vec<&TrialRecord> = data.history.unfinished().collect();
    let _ = writeln!(
        s,
        "trials   {}/{} done ({} failed), {} running",
        data.history.n_finished(),
        m.n_trials,
        n_failed,
        running.len()
    );
    let _ = writeln!(s, "best     {}", best_line(data));
    let mut per_trial: BTreeMap<TrialNumber, Vec<JobId>> = BTreeMap::new();
    if let Some((jobs, _)) = jobs {
        for (t, j) in jobs {
            per_trial.entry(*t).or_default().push(*j);
        }
    }
    for t in &running {
        let done = data.history.chunks(t.number).map_or(0, |c| c.len());
        let age = data
            .history
            .times(t.number)
            .and_then(|x| x.started)
            .map_or(String::new(), |st| {
                format!("  {:.0} s", (now - st).max(0.0))
            });
        let _ = write!(
            s,
            "  trial {:<5} chunks {done}/{}{age}",
            t.number, m.num_chunks
        );
        if let Some((_, states)) = jobs {
            let txt: Vec<String> = per_trial
                .get(&t.number)
                .map(|js| {
                    js.iter()
                        .map(|j| match states {
                            JobStates::Known(_) => states
                                .summary(*j)
                                .map_or(format!("{j} gone"), |st| format!("{j} {st}")),
                            JobStates::Unavailable(_) => format!("{j} ?"),
                        })
                        .collect()
                })
                .unwrap_or_default();
            if !txt.is_empty() {
                let _ = write!(s, "  jobs {}", txt.join(", "));
            }
        }
        s.push('\n');
    }
    if let Some((_, JobStates::Unavailable(why))) = jobs {
        let _ = writeln!(s, "job states unknown: {why}");
    }
    if finished {
        let _ = writeln!(
            s,
            "study finished: {}/{} trials; best {}",
            data.history.n_finished(),
            m.n_trials,
            best(data).map_or("none".to_string(), |b| b.value.to_string())
        );
    }
    (s, finished)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }
}
