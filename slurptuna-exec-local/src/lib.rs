//! slurptuna-exec-local (work in progress).
