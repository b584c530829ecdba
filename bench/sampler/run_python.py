"""Python side of `cargo xtask bench sampler`: runs Optuna 5.0 and rustuna 0.2 samplers on the same
problems, budgets and seeds as the Rust side (xtask/src/bench_sampler.rs mirrors every problem
here), and prints one JSON document on stdout.

usage: run_python.py quality <sampler> <trials> <seed> [<seed> ...] -- <problem> [<problem> ...]
       run_python.py speed <sampler> <repeats> <n>x<d> [<n>x<d> ...]
samplers: optuna (TPESampler defaults), optuna_independent (multivariate=False), rustuna, random
"""
import json
import math
import sys
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")
import optuna  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.ERROR)

LOG_TARGETS = [-3.0, -1.5, 0.0, 0.5, 1.7]
MIXED_COST = {"a": 1.0, "b": 0.0, "c": 0.5, "d": 2.0}
NOISE_SD = 3.0
NOISE_SEEDS = 10

HART_A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8],
          [17, 8, 0.05, 10, 0.1, 14]]
HART_P = [[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
          [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]]
HART_ALPHA = [1.0, 1.2, 3.0, 3.2]


def sphere(x):
    return sum(v * v for v in x)


def rosenbrock(x):
    return sum(100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2 for i in range(len(x) - 1))


def ackley(x):
    d = len(x)
    s1 = sum(v * v for v in x) / d
    s2 = sum(math.cos(2.0 * math.pi * v) for v in x) / d
    return -20.0 * math.exp(-0.2 * math.sqrt(s1)) - math.exp(s2) + 20.0 + math.e


def rastrigin(x):
    return 10.0 * len(x) + sum(v * v - 10.0 * math.cos(2.0 * math.pi * v) for v in x)


def hartmann6(x):
    total = 0.0
    for i in range(4):
        inner = sum(HART_A[i][j] * (x[j] - 1e-4 * HART_P[i][j]) ** 2 for j in range(6))
        total += HART_ALPHA[i] * math.exp(-inner)
    return -total


def branin(x):
    x1, x2 = x
    b = 5.1 / (4.0 * math.pi ** 2)
    c = 5.0 / math.pi
    t = 1.0 / (8.0 * math.pi)
    return (x2 - b * x1 * x1 + c * x1 - 6.0) ** 2 + 10.0 * (1.0 - t) * math.cos(x1) + 10.0


def floats(prefix, d, low, high, log=False):
    return [(f"{prefix}{i}", ("float", low, high, log, None)) for i in range(d)]


# name -> (parameters, function of the parameter dict, noisy)
PROBLEMS = {
    "sphere10": (floats("x", 10, -5.0, 5.0), lambda p: sphere(list(p.values())), False),
    "rosenbrock10": (floats("x", 10, -5.0, 5.0), lambda p: rosenbrock(list(p.values())), False),
    "ackley10": (floats("x", 10, -32.768, 32.768), lambda p: ackley(list(p.values())), False),
    "rastrigin10": (floats("x", 10, -5.12, 5.12), lambda p: rastrigin(list(p.values())), False),
    "hartmann6": (floats("x", 6, 0.0, 1.0), lambda p: hartmann6(list(p.values())), False),
    "branin": (
        [("x0", ("float", -5.0, 10.0, False, None)), ("x1", ("float", 0.0, 15.0, False, None))],
        lambda p: branin(list(p.values())),
        False,
    ),
    "log5": (
        floats("p", 5, 1e-4, 1e2, log=True),
        lambda p: sum((math.log10(v) - c) ** 2 for v, c in zip(p.values(), LOG_TARGETS)),
        False,
    ),
    "mixed": (
        [
            ("n", ("int", 1, 20, False, None)),
            ("c", ("cat", ["a", "b", "c", "d"])),
            ("s", ("float", 0.0, 1.0, False, 0.05)),
            ("lr", ("float", 1e-5, 1e-1, True, None)),
        ],
        lambda p: (p["n"] - 13) ** 2 / 20.0
        + MIXED_COST[p["c"]]
        + 4.0 * (p["s"] - 0.35) ** 2
        + (math.log10(p["lr"]) + 3.3) ** 2,
        False,
    ),
    "noisy_sphere5": (floats("x", 5, -5.0, 5.0), lambda p: sphere(list(p.values())), True),
}


def suggest(trial, params):
    out = {}
    for name, spec in params:
        if spec[0] == "float":
            _, low, high, log, step = spec
            out[name] = trial.suggest_float(name, low, high, log=log, step=step)
        elif spec[0] == "int":
            _, low, high, log, _ = spec
            out[name] = trial.suggest_int(name, low, high, log=log)
        else:
            out[name] = trial.suggest_categorical(name, spec[1])
    return out


def make_sampler(kind, seed):
    if kind == "optuna":
        return optuna.samplers.TPESampler(seed=seed)
    if kind == "optuna_independent":
        return optuna.samplers.TPESampler(seed=seed, multivariate=False)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(kind)


def quality(kind, trials, seeds, problems):
    out = {}
    for name in problems:
        params, f, noisy = PROBLEMS[name]
        bests = []
        for seed in seeds:
            records = []  # (observed value, true value)

            def objective(trial):
                p = suggest(trial, params)
                true = f(p)
                value = true
                if noisy:
                    rng = np.random.default_rng([seed, trial.number])
                    value = true + NOISE_SD * float(np.mean(rng.standard_normal(NOISE_SEEDS)))
                records.append((value, true))
                return value

            if kind == "rustuna":
                import rustuna

                study = rustuna.create_study(sampler=rustuna.samplers.TPESampler(seed=seed))
            else:
                study = optuna.create_study(sampler=make_sampler(kind, seed))
            study.optimize(objective, n_trials=trials)
            bests.append(min(records)[1])
        out[name] = bests
    return out


def speed(kind, repeats, grid):
    out = []
    for n, d in grid:
        rng = np.random.RandomState(0)
        names = [f"x{i}" for i in range(d)]
        if kind == "rustuna":
            import rustuna

            dist = rustuna.distributions.FloatDistribution(-5.0, 5.0)
            study = rustuna.create_study(sampler=rustuna.samplers.TPESampler(seed=0))
            for _ in range(n):
                x = rng.uniform(-5.0, 5.0, size=d)
                study.add_trial(
                    rustuna.create_trial(
                        value=float(np.sum(x * x)),
                        params={k: float(v) for k, v in zip(names, x)},
                        distributions={k: dist for k in names},
                    )
                )
        else:
            dist = optuna.distributions.FloatDistribution(-5.0, 5.0)
            study = optuna.create_study(sampler=make_sampler(kind, 0))
            batch = []
            for _ in range(n):
                x = rng.uniform(-5.0, 5.0, size=d)
                batch.append(
                    optuna.trial.create_trial(
                        value=float(np.sum(x * x)),
                        params={k: float(v) for k, v in zip(names, x)},
                        distributions={k: dist for k in names},
                    )
                )
            study.add_trials(batch)
        reps = max(1, repeats if n < 5000 or kind == "rustuna" else repeats // 4)
        start = time.perf_counter()
        for _ in range(reps):
            trial = study.ask()
            x = [trial.suggest_float(k, -5.0, 5.0) for k in names]
            value = sum(v * v for v in x)
            study.tell(trial.number if kind == "rustuna" else trial, value)
        out.append({"n": n, "d": d, "seconds_per_trial": (time.perf_counter() - start) / reps})
    return out


def main(argv):
    mode, kind = argv[0], argv[1]
    if mode == "quality":
        trials = int(argv[2])
        sep = argv.index("--")
        seeds = [int(s) for s in argv[3:sep]]
        result = quality(kind, trials, seeds, argv[sep + 1 :])
    elif mode == "speed":
        repeats = int(argv[2])
        grid = [tuple(int(v) for v in g.split("x")) for g in argv[3:]]
        result = speed(kind, repeats, grid)
    else:
        raise SystemExit(__doc__)
    json.dump({"sampler": kind, "mode": mode, "result": result}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
