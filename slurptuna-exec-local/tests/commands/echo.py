"""A trivial command loss: answers each seed with the seed itself (for the overhead measure)."""
import json
import sys

for line in sys.stdin:
    seeds = json.loads(line)["seeds"]
    sys.stdout.write("".join(f'{{"seed": {s}, "value": {s}}}\n' for s in seeds))
    sys.stdout.flush()
