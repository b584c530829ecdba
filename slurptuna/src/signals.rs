//! Ctrl-C / SIGTERM: the first one stops the run cleanly (jobs cancelled, run resumable), the second
//! exits at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static FLAG: OnceLock<Option<Arc<AtomicBool>>> = OnceLock::new();

/// Arms the handlers (once per process) and returns the flag that the first signal sets.
///
/// While a run is going, the first SIGINT/SIGTERM sets the flag and the second terminates the
/// process. Between runs the flag stays set, so a signal terminates the program as usual.
pub(crate) fn arm() -> Arc<AtomicBool> {
    let flag = FLAG.get_or_init(|| {
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
        Some(flag)
    });
    match flag {
        Some(f) => {
            f.store(false, Ordering::SeqCst);
            f.clone()
        }
        None => Arc::new(AtomicBool::new(false)),
    }
}

/// Restores "a signal terminates the program" after a run.
pub(crate) fn disarm(flag: &AtomicBool) {
    flag.store(true, Ordering::SeqCst);
}
