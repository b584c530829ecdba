//! Progress reporting: an indicatif bar on a terminal, `tracing` events otherwise.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use slurptuna_core::{TrialRecord, TrialState};

/// Reports the progress of one study.
pub(crate) struct Progress {
    label: String,
    bar: Option<ProgressBar>,
}

/// Whether progress bars are drawn (stderr is a terminal and the user did not turn them off).
///
/// Without a terminal (a batch job's log), progress goes to `tracing` events; if the program set
/// no subscriber, a plain one writing INFO events to stderr is installed (`RUST_LOG` overrides).
pub(crate) fn bars_enabled(requested: bool) -> bool {
    let bars = requested && std::io::stderr().is_terminal();
    if requested && !bars && !tracing::dispatcher::has_been_set() {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .with_env_filter(filter)
            .try_init();
    }
    bars
}

impl Progress {
    /// A reporter for the study `label`; with `multi`, its bar joins the others.
    pub(crate) fn new(label: &str, bars: bool, multi: Option<&MultiProgress>) -> Self {
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
        }
    }

    pub(crate) fn start(&self, done: u64, total: u64) {
        match &self.bar {
            Some(b) => {
                b.set_length(total.max(done));
                b.set_position(done);
            }
            None => tracing::info!(study = %self.label, done, total, "study started"),
        }
    }

    pub(crate) fn trial_finished(&self, t: &TrialRecord) {
        match &self.bar {
            Some(b) => b.inc(1),
            None => match &t.state {
                TrialState::Complete { stats } => tracing::info!(
                    study = %self.label, trial = t.number.0, value = stats.mean(),
                    stderr = stats.stderr(), params = %t.params, "trial complete"
                ),
                TrialState::Failed { reason } => tracing::warn!(
                    study = %self.label, trial = t.number.0, %reason, params = %t.params, "trial failed"
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
            None => tracing::info!(study = %self.label, "study finished"),
        }
    }
}
