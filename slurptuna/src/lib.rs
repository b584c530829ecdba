//! slurptuna (work in progress).
