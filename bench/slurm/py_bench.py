"""Per-trial overhead of the Python original (slurptuna 0.0.7) in DISTRIBUTED mode.

Run by `cargo xtask bench slurm` with the venv's interpreter:
    python py_bench.py <run_root> <n_trials> <n_seeds> <chunk_size> <poll_seconds>
Prints {"wall": s, "trials": [s, ...]} (trial durations from Optuna's storage).
The Slurm workers import this file as the loss module (its __main__ block does not run there).
"""

import json
import sys
import time
from datetime import timedelta
from pathlib import Path

from slurptuna import execution_mode, loss, optimize_run, search_param


@loss(
    name="bench_sleep",
    description="100 ms of sleep per seed, then a quadratic bowl",
    parameter_space={"x": search_param(range=(0.0, 1.0))},
)
def bench_sleep(params, seed):
    time.sleep(0.1)
    return (params["x"] - 0.3) ** 2 + seed * 1e-6


def main():
    run_root, n_trials, n_seeds, chunk_size, poll = sys.argv[1:6]
    t0 = time.perf_counter()
    result = optimize_run(
        bench_sleep,
        n_trials=int(n_trials),
        n_seeds=int(n_seeds),
        chunk_size=int(chunk_size),
        mode=execution_mode("distributed"),
        run_root=run_root,
        slurm_poll_seconds=float(poll),
        slurm_timeout_minutes=10,
        slurm_qos=None,
        mem_per_cpu="100M",
        worker_time_limit=timedelta(minutes=10),
        forward_sys_argv_to_workers=False,
    )
    wall = time.perf_counter() - t0
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    db = Path(result.run_dir).resolve() / "optuna.db"
    study = optuna.load_study(study_name="bench_sleep", storage=f"sqlite:///{db}")
    trials = [t.duration.total_seconds() for t in study.trials if t.duration is not None]
    print(json.dumps({"wall": wall, "trials": trials}))


if __name__ == "__main__":
    main()
