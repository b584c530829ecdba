//! The self-contained HTML report of a run (feature `report`): inline SVG plots, no network.
//!
//! [`write_report`] writes one HTML file that opens in any browser without network access and
//! prints cleanly: the optimisation history (value ± stderr over seeds per trial, best so far),
//! a slice plot per parameter (coloured by trial number; log axes for log parameters,
//! categoricals as strips), parameter importances by PED-ANOVA ([`importance`]), the seed
//! spread of the best trials (and the per-seed histogram of the best trial when its values were
//! kept), a timeline of the trials, the run's settings and its failures with their reasons. For
//! the parent directory of an `optimize_entries` run, a table of the best parameters per entry
//! and one such section per entry. Every string from the run is escaped.

mod html;
pub mod importance;
mod plots;

use std::fmt::Write as _;
use std::path::Path;

use slurptuna_core::{Direction, Distribution, TrialRecord, TrialState};

use crate::error::{Error, Result};
use crate::inspect::{entries_of, RunData};
use html::{approx, esc, figure, num, page, param_text, table};
use plots::{HistoryPoint, Outcome, SliceAxis};

/// How many of the best trials the seed-spread plot shows.
const N_BEST: usize = 10;

/// Writes the HTML report of the run (or entries parent) at `run_dir` to `out`.
///
/// The run may be running: it is read without its lock, like the other reading commands.
pub fn write_report(run_dir: &Path, out: &Path) -> Result<()> {
    let html = render_report(run_dir)?;
    std::fs::write(out, html).map_err(|source| Error::Report {
        path: out.to_path_buf(),
        source,
    })
}

/// The HTML report of the run (or entries parent) at `run_dir`, as a string.
pub fn render_report(run_dir: &Path) -> Result<String> {
    if let Some(entries) = entries_of(run_dir)? {
        let mut body = String::new();
        let name = run_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let _ = write!(
            body,
            "<header><h1>{}</h1><p class=\"lead\">slurptuna report of an entries run: {} entries, one study each.</p></header>",
            esc(&name),
            entries.runs.len()
        );
        let mut runs = Vec::new();
        for (id, dir) in &entries.runs {
            runs.push((id.clone(), RunData::load(dir)));
        }
        body.push_str("<nav aria-label=\"Contents\"><ul><li><a href=\"#entries-best\">Best parameters per entry</a></li>");
        for (i, (id, _)) in runs.iter().enumerate() {
            let _ = write!(
                body,
                "<li><a href=\"#entry-{i}\">Entry: {}</a></li>",
                esc(id)
            );
        }
        body.push_str("</ul></nav>");
        // The table of best params per entry, from each entry's journal (fresher than the
        // parent's summary while a study runs), with the parent's errors.
        let mut names: Vec<String> = Vec::new();
        for (_, r) in &runs {
            if let Ok(d) = r {
                for (n, _) in d.meta.space.iter() {
                    if !names.iter().any(|x| x == n) {
                        names.push(n.to_string());
                    }
                }
            }
        }
        let mut head = vec!["entry", "best value", "± stderr", "trials complete"];
        head.extend(names.iter().map(String::as_str));
        head.push("error");
        let mut rows = Vec::new();
        for (id, r) in &runs {
            let mut row = vec![id.clone()];
            match r {
                Ok(d) => {
                    let best = d.history.best(d.meta.direction);
                    let stats = best.and_then(complete_stats);
                    row.push(stats.map_or("–".into(), |s| num(s.0)));
                    row.push(stats.map_or("–".into(), |s| approx(s.1)));
                    row.push(
                        count(d, |t| matches!(t.state, TrialState::Complete { .. })).to_string(),
                    );
                    for n in &names {
                        row.push(
                            best.and_then(|b| b.params.get(n))
                                .map_or(String::new(), param_text),
                        );
                    }
                }
                Err(e) => {
                    row.extend(["–".into(), "–".into(), "0".into()]);
                    row.extend(names.iter().map(|_| String::new()));
                    row.push(e.to_string());
                    rows.push(row);
                    continue;
                }
            }
            row.push(
                entries
                    .summary
                    .errors_by_entry
                    .get(id)
                    .cloned()
                    .unwrap_or_default(),
            );
            rows.push(row);
        }
        let _ = write!(
            body,
            "<section id=\"entries-best\"><h2>Best parameters per entry</h2>{}</section>",
            table(&head, &rows)
        );
        for (i, (id, r)) in runs.iter().enumerate() {
            let _ = write!(
                body,
                "<section id=\"entry-{i}\" class=\"entry\"><h2>Entry: {}</h2>",
                esc(id)
            );
            match r {
                Ok(d) => body.push_str(&run_sections(d, 3, &format!("e{i}-"))),
                Err(e) => {
                    let _ = write!(
                        body,
                        "<p class=\"failed\">This entry's run could not be read: {}</p>",
                        esc(&e.to_string())
                    );
                }
            }
            body.push_str("</section>");
        }
        return Ok(page(&format!("{name} — slurptuna report"), &body));
    }
    let data = RunData::load(run_dir)?;
    let mut body = String::new();
    let _ = write!(
        body,
        "<header><h1>{}</h1><p class=\"lead\">slurptuna report of run {}{}</p></header>",
        esc(&data.meta.loss_name),
        esc(&data.meta.run_name),
        if data.meta.description.is_empty() {
            String::new()
        } else {
            format!(": {}", esc(&data.meta.description))
        }
    );
    body.push_str("<nav aria-label=\"Contents\"><ul>");
    for (id, title) in SECTIONS {
        let _ = write!(body, "<li><a href=\"#{id}\">{title}</a></li>");
    }
    body.push_str("</ul></nav>");
    body.push_str(&run_sections(&data, 2, ""));
    Ok(page(
        &format!("{} — slurptuna report", data.meta.loss_name),
        &body,
    ))
}

/// `(anchor, heading)` of each section of a run.
const SECTIONS: [(&str, &str); 8] = [
    ("summary", "Summary"),
    ("history", "Optimisation history"),
    ("slices", "Slice plots"),
    ("importance", "Parameter importance"),
    ("seeds", "Seed spread of the best trials"),
    ("timeline", "Timeline"),
    ("settings", "Settings"),
    ("failures", "Failures"),
];

/// `(mean, stderr, n)` of a complete trial.
fn complete_stats(t: &TrialRecord) -> Option<(f64, f64, u64)> {
    match &t.state {
        TrialState::Complete { stats } => Some((stats.mean(), stats.stderr(), stats.count())),
        _ => None,
    }
}

fn count(d: &RunData, f: impl Fn(&TrialRecord) -> bool) -> usize {
    d.trials().filter(|t| f(t)).count()
}

/// Every section of one run, headings at level `h`, anchors prefixed with `prefix`.
fn run_sections(d: &RunData, h: u8, prefix: &str) -> String {
    let mut s = String::new();
    let open = |s: &mut String, i: usize| {
        let (id, title) = SECTIONS[i];
        let _ = write!(s, "<section id=\"{prefix}{id}\"><h{h}>{title}</h{h}>");
    };
    let dir = d.meta.direction;
    let complete: Vec<(&TrialRecord, (f64, f64, u64))> = d
        .trials()
        .filter_map(|t| complete_stats(t).map(|st| (t, st)))
        .collect();
    let failed: Vec<&TrialRecord> = d
        .trials()
        .filter(|t| matches!(t.state, TrialState::Failed { .. }))
        .collect();
    let pruned: Vec<&TrialRecord> = d.trials().filter(|t| t.pruned().is_some()).collect();
    let running = count(d, |t| matches!(t.state, TrialState::Running));
    let best = d.history.best(dir);

    // Summary.
    open(&mut s, 0);
    let _ = write!(
        s,
        "<p>{} complete, {} pruned, {} failed, {} running, of {} trials ({}); {} seeds per trial.</p>",
        complete.len(),
        pruned.len(),
        failed.len(),
        running,
        d.meta.n_trials,
        esc(dir.as_str()),
        d.meta.n_seeds
    );
    if !pruned.is_empty() {
        let finished: Vec<TrialRecord> = d.trials().filter(|t| t.is_finished()).cloned().collect();
        let (used, saved) = crate::controller::seed_counts(&finished, d.meta.n_seeds);
        let _ = write!(
            s,
            "<p>Seed racing: {} seed evaluations, {} saved by pruning ({:.0}% of what every trial on every seed would cost).</p>",
            used,
            saved,
            100.0 * saved as f64 / (used + saved).max(1) as f64
        );
    }
    match best.and_then(|b| complete_stats(b).map(|st| (b, st))) {
        Some((b, (mean, se, n))) => {
            let _ = write!(
                s,
                "<p class=\"best\">Best value <strong>{}</strong> ± {} (stderr over {n} seeds), trial {}.</p>",
                num(mean),
                approx(se),
                b.number.0
            );
            let rows: Vec<Vec<String>> = b
                .params
                .iter()
                .map(|(k, v)| vec![k.to_string(), param_text(v)])
                .collect();
            s.push_str("<h4>Best parameters</h4>");
            s.push_str(&table(&["parameter", "value"], &rows));
        }
        None => s.push_str("<p class=\"note\">No trial is complete yet.</p>"),
    }
    if let Some(v) = d.summary.as_ref().and_then(|x| x.validated.as_ref()) {
        let _ = write!(
            s,
            "<p class=\"best\">Validated best <strong>{}</strong> ± {} over {} fresh seeds, trial {}{}.</p>",
            num(v.value),
            approx(v.stderr),
            v.n_seeds,
            v.trial.0,
            if v.differs() {
                format!(
                    " at {}: not the fit's best (trial {}), which was a lucky draw",
                    esc(&v.params.to_string()),
                    v.fit_best_trial.0
                )
            } else {
                ", the fit's best".to_string()
            }
        );
    }
    s.push_str("</section>");

    // Optimisation history.
    open(&mut s, 1);
    let points: Vec<HistoryPoint> = complete
        .iter()
        .filter(|(_, st)| st.0.is_finite())
        .map(|(t, st)| HistoryPoint {
            trial: t.number.0 as f64,
            value: st.0,
            stderr: if st.1.is_finite() { st.1 } else { 0.0 },
        })
        .collect();
    let mut best_line = Vec::new();
    let mut cur: Option<f64> = None;
    for p in &points {
        if cur.is_none_or(|c| dir.better(p.value, c)) {
            cur = Some(p.value);
        }
        if let Some(c) = cur {
            best_line.push((p.trial, c));
        }
    }
    let failed_x: Vec<f64> = failed.iter().map(|t| t.number.0 as f64).collect();
    let pruned_at: Vec<(f64, f64)> = pruned
        .iter()
        .filter_map(|t| {
            let r = t.pruned()?;
            r.estimate
                .is_finite()
                .then_some((t.number.0 as f64, r.estimate))
        })
        .collect();
    s.push_str(&figure(
        "Optimisation history",
        plots::history(&points, &failed_x, &pruned_at, &best_line),
        "Each complete trial's value (mean over seeds) with ± one standard error over seeds; the line is the best value so far; hollow grey circles are pruned trials at the estimate of their mean when their race stopped them; crosses on the lower edge are failed trials.",
    ));
    if !pruned.is_empty() {
        let rows: Vec<Vec<String>> = pruned
            .iter()
            .filter_map(|t| {
                let r = t.pruned()?;
                Some(vec![
                    t.number.0.to_string(),
                    r.seeds.to_string(),
                    num(r.estimate),
                    num(r.bound),
                    num(r.threshold),
                    approx(r.beta),
                    r.control.0.to_string(),
                ])
            })
            .collect();
        s.push_str("<h4>Pruned trials</h4>");
        s.push_str(
            "<p class=\"note\">Each stopped once the lower confidence bound L of its mean over all seeds was worse than the best value then (the threshold); β is the control-variate coefficient against the control trial.</p>",
        );
        s.push_str(&table(
            &[
                "trial",
                "seeds",
                "estimate",
                "L",
                "threshold",
                "β",
                "control",
            ],
            &rows,
        ));
    }
    s.push_str("</section>");

    // Slice plots.
    open(&mut s, 2);
    let last = complete
        .iter()
        .map(|(t, _)| t.number.0)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    s.push_str("<p>Value against each parameter; colour runs from dark purple (first trials) to yellow (last trials).</p><div class=\"slices\">");
    for (name, dist) in d.meta.space.iter() {
        let axis = match dist {
            Distribution::Float { log: true, .. } | Distribution::Int { log: true, .. } => {
                SliceAxis::Log10
            }
            Distribution::Categorical { choices } => {
                SliceAxis::Categorical(choices.iter().map(param_text).collect())
            }
            _ => SliceAxis::Linear,
        };
        let pts: Vec<plots::SlicePoint> = complete
            .iter()
            .filter(|(_, st)| st.0.is_finite())
            .filter_map(|(t, st)| {
                let v = t.params.get(name)?;
                let x = match (&axis, dist) {
                    (SliceAxis::Categorical(_), Distribution::Categorical { choices }) => {
                        choices.iter().position(|c| c == v)? as f64
                    }
                    (SliceAxis::Log10, _) => v.as_f64().filter(|x| *x > 0.0)?.log10(),
                    _ => v.as_f64()?,
                };
                Some((x, st.0, t.number.0 as f64 / last))
            })
            .collect();
        s.push_str(&figure(
            &format!("Slice plot of {name}"),
            plots::slice(name, &axis, &pts),
            name,
        ));
    }
    s.push_str("</div></section>");

    // Parameter importance.
    open(&mut s, 3);
    s.push_str(&importance_section(d, &complete));
    s.push_str("</section>");

    // Seed spread.
    open(&mut s, 4);
    let mut ranked: Vec<&(&TrialRecord, (f64, f64, u64))> =
        complete.iter().filter(|(_, st)| !st.0.is_nan()).collect();
    ranked.sort_by(|a, b| match dir {
        Direction::Minimize => a.1 .0.total_cmp(&b.1 .0),
        Direction::Maximize => b.1 .0.total_cmp(&a.1 .0),
    });
    ranked.truncate(N_BEST);
    let spread: Vec<(String, f64, f64)> = ranked
        .iter()
        .map(|(t, st)| {
            (
                format!("#{}", t.number.0),
                st.0,
                if st.1.is_finite() { st.1 } else { 0.0 },
            )
        })
        .collect();
    s.push_str(&figure(
        "Seed spread of the best trials",
        plots::best_spread(&spread),
        "The best trials (best first, in orange) with ± one standard error over seeds: where bars overlap, the seeds do not separate the ranking.",
    ));
    let rows: Vec<Vec<String>> = ranked
        .iter()
        .enumerate()
        .map(|(i, (t, st))| {
            vec![
                (i + 1).to_string(),
                t.number.0.to_string(),
                num(st.0),
                approx(st.1),
                st.2.to_string(),
                t.params.to_string(),
            ]
        })
        .collect();
    s.push_str(&table(
        &["rank", "trial", "value", "stderr", "seeds", "params"],
        &rows,
    ));
    if let Some(b) = best {
        match slurptuna_store::read_seed_values(&d.run_dir, b.number) {
            Ok(chunks) if !chunks.is_empty() => {
                let values: Vec<f64> = chunks.into_iter().flat_map(|(_, v)| v).collect();
                let _ = write!(s, "<h{0}>Per-seed values of the best trial</h{0}>", h + 1);
                s.push_str(&figure(
                    "Per-seed histogram of the best trial",
                    plots::seed_histogram(&values),
                    &format!(
                        "The {} per-seed values of trial {} (its value is their mean).",
                        values.len(),
                        b.number.0
                    ),
                ));
            }
            Ok(_) => s.push_str("<p class=\"note\">The per-seed values of the best trial were not kept (run with keep_seed_values to see their histogram).</p>"),
            Err(e) => {
                let _ = write!(
                    s,
                    "<p class=\"note\">The per-seed values of the best trial could not be read: {}</p>",
                    esc(&e.to_string())
                );
            }
        }
    }
    s.push_str("</section>");

    // Timeline.
    open(&mut s, 5);
    let t0 = d
        .trials()
        .filter_map(|t| d.history.times(t.number).and_then(|x| x.started))
        .fold(f64::INFINITY, f64::min);
    let t_last = d
        .trials()
        .filter_map(|t| d.history.times(t.number))
        .flat_map(|x| [x.started, x.finished])
        .flatten()
        .fold(f64::NEG_INFINITY, f64::max);
    let bars: Vec<(f64, f64, f64, Outcome)> = d
        .trials()
        .filter_map(|t| {
            let times = d.history.times(t.number)?;
            let start = times.started?;
            let outcome = match t.state {
                TrialState::Complete { .. } => Outcome::Complete,
                TrialState::Failed { .. } => Outcome::Failed,
                TrialState::Pruned { .. } => Outcome::Pruned,
                TrialState::Running => Outcome::Running,
            };
            let end = times.finished.unwrap_or(t_last);
            Some((t.number.0 as f64, start - t0, end - t0, outcome))
        })
        .collect();
    s.push_str(&figure(
        "Timeline of trials",
        plots::timeline(&bars),
        "One bar per trial from when it was asked to when it finished; blue complete, sky blue pruned, vermillion with a cross failed, grey still running.",
    ));
    s.push_str("</section>");

    // Settings.
    open(&mut s, 6);
    s.push_str(&settings_section(d, h));
    s.push_str("</section>");

    // Failures.
    open(&mut s, 7);
    if failed.is_empty() {
        s.push_str("<p>No trial failed.</p>");
    } else {
        let rows: Vec<Vec<String>> = failed
            .iter()
            .map(|t| {
                let reason = match &t.state {
                    TrialState::Failed { reason } => reason.clone(),
                    _ => String::new(),
                };
                vec![t.number.0.to_string(), reason, t.params.to_string()]
            })
            .collect();
        let _ = write!(
            s,
            "<p class=\"failed\">{} trial(s) failed.</p>",
            failed.len()
        );
        s.push_str(&table(&["trial", "reason", "params"], &rows));
    }
    s.push_str("</section>");
    s
}

fn importance_section(d: &RunData, complete: &[(&TrialRecord, (f64, f64, u64))]) -> String {
    let mut s = String::from(
        "<p>Method: <strong>PED-ANOVA</strong> (Watanabe et al., IJCAI 2023), computed as Optuna 5's \
<code>PedAnovaImportanceEvaluator</code> with its defaults and normalised to sum to 1: how much each \
parameter's distribution among the best 10&nbsp;% of the complete trials differs from its distribution \
among all complete trials (Pearson divergence of Parzen estimators). It uses each trial's mean over seeds.</p>",
    );
    let trials: Vec<(&slurptuna_core::Params, f64)> =
        complete.iter().map(|(t, st)| (&t.params, st.0)).collect();
    if trials.len() < 2 {
        s.push_str("<p class=\"note\">Needs at least two complete trials.</p>");
        return s;
    }
    let imp = importance::ped_anova(&d.meta.space, &trials, d.meta.direction);
    s.push_str(&figure(
        "Parameter importance",
        plots::importance(&imp),
        "PED-ANOVA importance per parameter, most important on top.",
    ));
    let rows: Vec<Vec<String>> = imp
        .iter()
        .map(|(k, v)| vec![k.clone(), format!("{v:.4}")])
        .collect();
    s.push_str(&table(&["parameter", "importance"], &rows));
    s
}

fn settings_section(d: &RunData, h: u8) -> String {
    let m = &d.meta;
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "–".into());
    let rows: Vec<Vec<String>> = [
        ("loss name", m.loss_name.clone()),
        ("description", m.description.clone()),
        ("run name", m.run_name.clone()),
        ("run directory", m.run_dir.clone()),
        ("entry id", opt(&m.entry_id)),
        ("mode", m.mode.clone()),
        ("backend", m.backend.clone()),
        ("direction", m.direction.as_str().to_string()),
        ("sampler", m.sampler.clone()),
        ("sampler seed", m.random_seed.to_string()),
        ("trials (target)", m.n_trials.to_string()),
        (
            "seeds",
            format!("{} ({}..={})", m.n_seeds, m.seed_start, m.seed_end),
        ),
        (
            "chunks",
            format!("{} of {} seeds", m.num_chunks, m.chunk_size),
        ),
        ("concurrent trials", m.max_concurrent_trials.to_string()),
        ("worker parallelism", m.worker_parallelism.to_string()),
        ("started (UTC)", m.started_at_utc.clone()),
        ("completed (UTC)", opt(&m.completed_at_utc)),
        (
            "duration",
            m.duration_seconds
                .map_or("–".into(), |x| format!("{x:.1} s")),
        ),
        ("resumes", m.resumes.len().to_string()),
        ("seeds fingerprint", m.seeds_fingerprint.clone()),
        ("format version", m.format_version.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| vec![k.to_string(), v])
    .collect();
    let mut s = table(&["setting", "value"], &rows);
    let _ = write!(s, "<h{0}>Parameter space</h{0}>", h + 1);
    let rows: Vec<Vec<String>> = m
        .space
        .iter()
        .map(|(name, dist)| {
            let (kind, range) = match dist {
                Distribution::Float {
                    low,
                    high,
                    log,
                    step,
                } => (
                    if *log { "float, log" } else { "float" },
                    match step {
                        Some(st) => format!("[{low}, {high}] step {st}"),
                        None => format!("[{low}, {high}]"),
                    },
                ),
                Distribution::Int {
                    low,
                    high,
                    log,
                    step,
                } => (
                    if *log { "int, log" } else { "int" },
                    if *step == 1 {
                        format!("[{low}, {high}]")
                    } else {
                        format!("[{low}, {high}] step {step}")
                    },
                ),
                Distribution::Categorical { choices } => (
                    "categorical",
                    choices
                        .iter()
                        .map(param_text)
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            };
            vec![name.to_string(), kind.to_string(), range]
        })
        .collect();
    s.push_str(&table(&["parameter", "kind", "range or choices"], &rows));
    let _ = write!(s, "<h{0}>Scheduler and backend settings</h{0}>", h + 1);
    if m.settings.is_empty() {
        s.push_str(
            "<p class=\"note\">None recorded (this backend has no settings of its own).</p>",
        );
    } else {
        let rows: Vec<Vec<String>> = m
            .settings
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(x) => x.clone(),
                    other => other.to_string(),
                };
                vec![k.clone(), v]
            })
            .collect();
        s.push_str(&table(&["setting", "value"], &rows));
    }
    if !m.resumes.is_empty() {
        let _ = write!(s, "<h{0}>Resumes</h{0}>", h + 1);
        let rows: Vec<Vec<String>> = m
            .resumes
            .iter()
            .map(|r| {
                vec![
                    r.at_utc.clone(),
                    r.finished_trials.to_string(),
                    r.unfinished_trials.to_string(),
                ]
            })
            .collect();
        s.push_str(&table(
            &["at (UTC)", "finished trials", "unfinished trials"],
            &rows,
        ));
    }
    s
}
