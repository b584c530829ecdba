"""SINGLE-mode cost of the Python original (slurptuna 0.0.7) on a benchmark loss.

Run by `cargo xtask bench product` (loss `sphere10`) and `cargo xtask bench command` (loss
`toy2`) with the venv's interpreter:
    python py_single.py <loss> <run_root> <n_trials> <n_seeds>
Prints {"seconds": s} (the optimize_run call only, imports excluded).
"""

import json
import sys
import time

from slurptuna import execution_mode, loss, optimize_run


@loss(
    name="product_bench",
    description="a 10-dimensional sphere plus a tiny seed term",
    parameter_space={f"x{i}": (-5.0, 5.0) for i in range(10)},
)
def sphere10(params, seed):
    return sum(v * v for v in params.values()) + (seed % 7) * 1e-9


@loss(
    name="command_bench",
    description="a trivial two-parameter loss",
    parameter_space={"alpha": (0.0, 1.0), "beta": (0.0, 1.0)},
)
def toy2(params, seed):
    return abs(params["alpha"] - 0.3) + abs(params["beta"] - 0.7) + (seed % 17) * 1e-4


LOSSES = {"sphere10": sphere10, "toy2": toy2}


def main():
    name, run_root, n_trials, n_seeds = sys.argv[1:5]
    t0 = time.perf_counter()
    optimize_run(
        LOSSES[name],
        mode=execution_mode("single"),
        n_trials=int(n_trials),
        n_seeds=int(n_seeds),
        run_root=run_root,
    )
    print(json.dumps({"seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
