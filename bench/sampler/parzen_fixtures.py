"""Computes reference Parzen-estimator values with Optuna 5.0's own `_ParzenEstimator` and writes
them to slurptuna-sampler/tests/fixtures/parzen.json (weights, kernel means and bandwidths,
categorical kernel rows, and log-densities at sample points)."""
import json
import os

import numpy as np
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator, _ParzenEstimatorParameters
from optuna.samplers._tpe.probability_distributions import _BatchedCategoricalDistributions
from optuna.samplers._tpe.sampler import default_weights

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def spec(name, d):
    if isinstance(d, CategoricalDistribution):
        return {"name": name, "kind": "cat", "choices": len(d.choices)}
    kind = "int" if isinstance(d, IntDistribution) else "float"
    return {"name": name, "kind": kind, "low": d.low, "high": d.high, "log": d.log, "step": d.step}


def case(label, space, n_obs, seed, prior_weight=1.0, magic_clip=True, endpoints=False):
    # With several parameters, tied grid values make numpy's unstable argsort decide which
    # product kernel gets which bandwidth; grid values are drawn without repeats there.
    distinct = len(space) > 1
    rng = np.random.RandomState(seed)
    obs = {}
    for name, d in space.items():
        if isinstance(d, CategoricalDistribution):
            obs[name] = rng.randint(len(d.choices), size=n_obs).astype(float)
        elif isinstance(d, IntDistribution):
            k = (d.high - d.low) // d.step
            idx = rng.choice(k + 1, n_obs, replace=not distinct)
            obs[name] = (d.low + d.step * idx).astype(float)
        elif d.step is not None:
            k = int(round((d.high - d.low) / d.step))
            obs[name] = d.low + d.step * rng.choice(k + 1, n_obs, replace=not distinct)
        elif d.log:
            obs[name] = np.exp(rng.uniform(np.log(d.low), np.log(d.high), size=n_obs))
        else:
            # Cluster half of the points to get a spread of bandwidths.
            u = rng.uniform(d.low, d.high, size=n_obs)
            u[: n_obs // 2] = d.low + (d.high - d.low) * (0.3 + 0.05 * rng.rand(n_obs // 2))
            obs[name] = u
    params = _ParzenEstimatorParameters(
        prior_weight=prior_weight,
        consider_magic_clip=magic_clip,
        consider_endpoints=endpoints,
        weights=default_weights,
        multivariate=True,
    )
    pe = _ParzenEstimator(obs, space, params)
    mix = pe._mixture_distribution
    kernels = {}
    for name, dist in zip(space, mix.distributions):
        if isinstance(dist, _BatchedCategoricalDistributions):
            kernels[name] = {"probs": dist.weights.tolist()}
        else:
            kernels[name] = {"mu": dist.mu.tolist(), "sigma": dist.sigma.tolist()}
    samples = pe.sample(np.random.RandomState(seed + 1), 12)
    points = np.array([samples[n] for n in space]).T
    return {
        "label": label,
        "space": [spec(n, d) for n, d in space.items()],
        "prior_weight": prior_weight,
        "consider_magic_clip": magic_clip,
        "consider_endpoints": endpoints,
        "observations": np.array([obs[n] for n in space]).T.tolist(),
        "weights": mix.weights.tolist(),
        "kernels": kernels,
        "points": points.tolist(),
        "log_pdf": pe.log_pdf(samples).tolist(),
    }


F = FloatDistribution
I = IntDistribution
C = CategoricalDistribution
cases = [
    case("float", {"x": F(-5.0, 5.0)}, 4, 1),
    case("float single observation", {"x": F(0.0, 2.0)}, 1, 2),
    case("no observations", {"x": F(0.0, 2.0), "c": C(["a", "b", "c"])}, 0, 3),
    case("log float", {"lr": F(1e-4, 1.0, log=True)}, 6, 4),
    case("int", {"n": I(1, 10)}, 5, 5),
    case("int with step", {"n": I(-4, 20, step=4)}, 5, 6),
    case("log int", {"n": I(1, 1000, log=True)}, 7, 7),
    case("stepped float", {"d": F(0.0, 1.0, step=0.1)}, 6, 8),
    case("categorical", {"c": C(["a", "b", "c", "d"])}, 5, 9),
    case("ramped weights", {"x": F(-1.0, 1.0)}, 40, 10),
    case("endpoints, no magic clip, prior 0.5", {"x": F(0.0, 1.0)}, 8, 11, 0.5, False, True),
    case(
        "mixed multivariate",
        {
            "x": F(-3.0, 3.0),
            "lr": F(1e-3, 1e-1, log=True),
            "n": I(2, 64, log=True),
            "k": I(0, 9),
            "d": F(0.0, 0.5, step=0.05),
            "c": C(["u", "v", "w"]),
        },
        9,
        12,
    ),
]
with open(os.path.join(root, "slurptuna-sampler", "tests", "fixtures", "parzen.json"), "w") as f:
    json.dump(cases, f, indent=1)
print(f"wrote {len(cases)} cases")
