"""The loss of examples/studies/participants/study.toml: one fit per participant.

Each participant's true alpha and beta are in participant_truth.csv, next to this file; a
request names its participant in "entry_id". The protocol: one JSON request per line on stdin,
{"trial": 3, "entry_id": "p01", "params": {"alpha": 0.31, "beta": 0.69}, "seeds": [0, 1]}, one
line per seed on stdout, {"seed": 0, "value": 0.0201}; end of input means exit. Standard library
only.
"""

import csv
import json
import sys
from pathlib import Path

DATA_CSV = Path(__file__).with_name("participant_truth.csv")


def load_participants(path):
    with path.open("r", encoding="utf-8", newline="") as f:
        return {
            row["participant_id"]: {
                "alpha": float(row["alpha_true"]),
                "beta": float(row["beta_true"]),
            }
            for row in csv.DictReader(f)
        }


PARTICIPANTS = load_participants(DATA_CSV)


def loss(params, seed, entry_id):
    truth = PARTICIPANTS[entry_id]
    seed_term = (seed % 23) * 1e-4
    return abs(params["alpha"] - truth["alpha"]) + abs(params["beta"] - truth["beta"]) + seed_term


def main():
    for line in sys.stdin:
        request = json.loads(line)
        for seed in request["seeds"]:
            try:
                reply = {"seed": seed, "value": loss(request["params"], seed, request["entry_id"])}
            except Exception as e:  # e.g. an unknown participant: that trial fails
                reply = {"seed": seed, "error": repr(e)}
            print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
