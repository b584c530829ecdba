"""SINGLE-mode cost of the Python original (slurptuna 0.0.7) on the whole-product benchmark's loss.

Run by `cargo xtask bench product` with the venv's interpreter:
    python py_single.py <run_root> <n_trials> <n_seeds>
Prints {"seconds": s} (the optimize_run call only, imports excluded).
"""

import json
import sys
import time

from slurptuna import execution_mode, loss, optimize_run

SPACE = {f"x{i}": (-5.0, 5.0) for i in range(10)}


@loss(
    name="product_bench",
    description="a 10-dimensional sphere plus a tiny seed term",
    parameter_space=SPACE,
)
def product_bench(params, seed):
    return sum(v * v for v in params.values()) + (seed % 7) * 1e-9


def main():
    run_root, n_trials, n_seeds = sys.argv[1:4]
    t0 = time.perf_counter()
    optimize_run(
        product_bench,
        mode=execution_mode("single"),
        n_trials=int(n_trials),
        n_seeds=int(n_seeds),
        run_root=run_root,
    )
    print(json.dumps({"seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
