"""The toy loss of examples/studies/toy/study.toml: recover alpha = 0.3 and beta = 0.7.

slurptuna starts this program once per worker and keeps it running. Each line on stdin is one
request, {"trial": 3, "entry_id": null, "params": {"alpha": 0.31, "beta": 0.69}, "seeds": [0, 1]};
the answer is one line per seed, {"seed": 0, "value": 0.0201}. End of input means exit.
Standard library only.
"""

import json
import sys

TRUE = {"alpha": 0.3, "beta": 0.7}


def loss(params, seed):
    base = abs(params["alpha"] - TRUE["alpha"]) + abs(params["beta"] - TRUE["beta"])
    # A small seed-dependent term, as if each seed were one run of a noisy simulation.
    jitter = (seed % 17) * 1e-4
    return base + jitter


def main():
    for line in sys.stdin:
        request = json.loads(line)
        for seed in request["seeds"]:
            try:
                reply = {"seed": seed, "value": loss(request["params"], seed)}
            except Exception as e:  # the trial fails with this message, the study goes on
                reply = {"seed": seed, "error": repr(e)}
            print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
