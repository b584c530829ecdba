//! slurptuna-store (work in progress).
