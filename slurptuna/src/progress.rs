//! Progress reporting: an indicatif bar on a terminal, `tracing` events otherwise.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use slurptuna_core::{TrialRecord, TrialState};

/// Reports the progress of one study.
pub(crate) struct Progress {
    label: String,
    bar: Option<ProgressBar>,
    /// `progress: false` and no subscriber: nothing to report to.
    quiet: bool,
    /// Plain stderr lines (no subscriber): when the last "trial complete" line was written, and
    /// trials finished since. Lines are written at most once per [`PLAIN_LINE_INTERVAL`], so a
    /// study of microsecond trials neither floods a batch log nor formats what nobody reads.
    plain: std::sync::Mutex<(Option<std::time::Instant>, u64)>,
}

/// The shortest time between two plain progress lines about completed trials.
const PLAIN_LINE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether progress bars are drawn (stderr is a terminal and the user did not turn them off).
///
/// Without a terminal (a batch job's log), progress goes to `tracing` events when the program
/// installed a subscriber, and otherwise to plain lines on stderr: the library installs no
/// subscriber of its own.
pub(crate) fn bars_enabled(requested: bool) -> bool {
    requested && std::io::stderr().is_terminal()
}

/// Writes one progress line: a `tracing` event if the program set a subscriber, else a plain
/// line on stderr.
macro_rules! report {
    ($level:ident, $($field:ident = $value:expr),* ; $msg:literal) => {
        if tracing::dispatcher::has_been_set() {
            tracing::$level!($($field = %$value,)* $msg);
        } else {
            let mut line = format!("slurptuna: {}", $msg);
            $( line.push_str(&format!(" {}={}", stringify!($field), $value)); )*
            eprintln!("{line}");
        }
    };
}

impl Progress {
    /// A reporter for the study `label`; with `multi`, its bar joins the others.
    pub(crate) fn new(
        label: &str,
        requested: bool,
        bars: bool,
        multi: Option<&MultiProgress>,
    ) -> Self {
        let bar = bars.then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:30}] trial {pos}/{len} {msg} ({elapsed})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(label.to_string());
            match multi {
                Some(m) => m.add(bar),
                None => bar,
            }
        });
        Self {
            label: label.to_string(),
            bar,
            quiet: !requested && !tracing::dispatcher::has_been_set(),
            plain: std::sync::Mutex::new((None, 0)),
        }
    }

    pub(crate) fn start(&self, done: u64, total: u64) {
        match &self.bar {
            Some(b) => {
                b.set_length(total.max(done));
                b.set_position(done);
            }
            None if self.quiet => {}
            None => report!(info, study = self.label, done = done, total = total; "study started"),
        }
    }

    pub(crate) fn trial_finished(&self, t: &TrialRecord) {
        match &self.bar {
            Some(b) => b.inc(1),
            None if self.quiet => {}
            None if !tracing::dispatcher::has_been_set() => self.plain_line(t),
            None => match &t.state {
                TrialState::Complete { stats } => report!(info,
                    study = self.label, trial = t.number, value = stats.mean(),
                    stderr = stats.stderr(), params = t.params; "trial complete"
                ),
                TrialState::Failed { reason } => report!(warn,
                    study = self.label, trial = t.number, reason = reason, params = t.params;
                    "trial failed"
                ),
                TrialState::Pruned { race } => report!(info,
                    study = self.label, trial = t.number, estimate = race.estimate,
                    seeds = race.seeds, params = t.params; "trial pruned"
                ),
                TrialState::Running => {}
            },
        }
    }

    /// A plain stderr line for a finished trial: failures always, completions at most once per
    /// [`PLAIN_LINE_INTERVAL`] (saying how many completed since the last line).
    fn plain_line(&self, t: &TrialRecord) {
        let mut plain = self.plain.lock().unwrap_or_else(|e| e.into_inner());
        match &t.state {
            TrialState::Complete { stats } => {
                plain.1 += 1;
                if plain.0.is_some_and(|at| at.elapsed() < PLAIN_LINE_INTERVAL) {
                    return;
                }
                let since = std::mem::take(&mut plain.1);
                *plain = (Some(std::time::Instant::now()), 0);
                report!(info,
                    study = self.label, trial = t.number, value = stats.mean(),
                    stderr = stats.stderr(), params = t.params, completed_since_last_line = since;
                    "trial complete"
                );
            }
            TrialState::Failed { reason } => report!(warn,
                study = self.label, trial = t.number, reason = reason, params = t.params;
                "trial failed"
            ),
            // Pruned trials are counted in the next completion line's totals by the bar only:
            // a prune is routine, one line per prune would flood a log.
            TrialState::Pruned { .. } | TrialState::Running => {}
        }
    }

    /// Whether [`Progress::best`] shows anything (a bar): the best value costs a scan of the
    /// finished trials, not worth it per trial when nobody sees it.
    pub(crate) fn shows_best(&self) -> bool {
        self.bar.is_some()
    }

    pub(crate) fn best(&self, best: Option<f64>) {
        if let (Some(b), Some(v)) = (&self.bar, best) {
            b.set_message(format!("best {v:.6}"));
        }
    }

    pub(crate) fn finish(&self) {
        match &self.bar {
            Some(b) => b.finish(),
            None if self.quiet => {}
            None => report!(info, study = self.label; "study finished"),
        }
    }
}
