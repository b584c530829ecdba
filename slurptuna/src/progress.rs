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
}

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
            None => match &t.state {
                TrialState::Complete { stats } => report!(info,
                    study = self.label, trial = t.number, value = stats.mean(),
                    stderr = stats.stderr(), params = t.params; "trial complete"
                ),
                TrialState::Failed { reason } => report!(warn,
                    study = self.label, trial = t.number, reason = reason, params = t.params;
                    "trial failed"
                ),
                TrialState::Running => {}
            },
        }
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
