//! slurptuna-sampler (work in progress).
