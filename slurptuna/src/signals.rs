//! Ctrl-C / SIGTERM: the first one stops the runs in progress cleanly (jobs cancelled, runs
//! resumable), the second exits at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The flag the first signal sets, and how many runs are in progress in this process.
struct Signals {
    flag: Arc<AtomicBool>,
    active: Mutex<usize>,
}

static SIGNALS: OnceLock<Option<Signals>> = OnceLock::new();

fn signals() -> Option<&'static Signals> {
    SIGNALS
        .get_or_init(|| {
            let flag = Arc::new(AtomicBool::new(true));
            for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                // Registered first, so it sees the flag before the second handler sets it.
                let exit = signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone());
                let set = signal_hook::flag::register(sig, flag.clone());
                if exit.is_err() || set.is_err() {
                    tracing::warn!(
                        "could not install signal handlers; Ctrl-C will stop the run abruptly"
                    );
                    return None;
                }
            }
            Some(Signals {
                flag,
                active: Mutex::new(0),
            })
        })
        .as_ref()
}

/// Marks a run as started and returns the flag that the first signal sets.
///
/// While any run is in progress, the first SIGINT/SIGTERM sets the flag (every run in progress
/// stops cleanly) and the second terminates the process. With no run in progress the flag stays
/// set, so a signal terminates the program as usual.
pub(crate) fn arm() -> Arc<AtomicBool> {
    let Some(s) = signals() else {
        return Arc::new(AtomicBool::new(false));
    };
    let mut active = s.active.lock().unwrap_or_else(|e| e.into_inner());
    if *active == 0 {
        s.flag.store(false, Ordering::SeqCst);
    }
    *active += 1;
    s.flag.clone()
}

/// Marks a run as finished; the last one restores "a signal terminates the program".
pub(crate) fn disarm() {
    if let Some(s) = signals() {
        let mut active = s.active.lock().unwrap_or_else(|e| e.into_inner());
        *active = active.saturating_sub(1);
        if *active == 0 {
            s.flag.store(true, Ordering::SeqCst);
        }
    }
}
