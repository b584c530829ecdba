"""The Python original (slurptuna 0.0.7) on the command benchmark's loss.

Run by `cargo xtask bench command` with the venv's interpreter:
    python py_original.py <run_root> <n_trials> <n_seeds>
Prints {"seconds": s} (the optimize_run call only).
"""

import json
import sys
import time

from slurptuna import execution_mode, loss, optimize_run


@loss(
    name="command_bench",
    description="a trivial two-parameter loss",
    parameter_space={"alpha": (0.0, 1.0), "beta": (0.0, 1.0)},
)
def command_bench(params, seed):
    return abs(params["alpha"] - 0.3) + abs(params["beta"] - 0.7) + (seed % 17) * 1e-4


def main():
    run_root, n_trials, n_seeds = sys.argv[1:4]
    t0 = time.perf_counter()
    optimize_run(
        command_bench,
        mode=execution_mode("single"),
        n_trials=int(n_trials),
        n_seeds=int(n_seeds),
        run_root=run_root,
    )
    print(json.dumps({"seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
