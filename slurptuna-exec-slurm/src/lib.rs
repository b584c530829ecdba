//! slurptuna-exec-slurm (work in progress).
