"""Writes the Joe-Kuo Sobol direction numbers (as shipped by scipy) for the first N dimensions
to slurptuna-sampler/src/sobol_dirs.txt: one line per dimension after the first,
"<primitive polynomial> <m_1> ... <m_s>", and an unscrambled-Sobol fixture for the tests."""
import json
import os
import sys

import numpy as np
import scipy.stats
from scipy.stats import qmc

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
data = np.load(os.path.join(os.path.dirname(scipy.stats.__file__), "_sobol_direction_numbers.npz"))
poly, vinit = data["poly"], data["vinit"]
lines = ["# Joe & Kuo (2008) Sobol direction numbers, new-joe-kuo-6.21201, dimensions 2.." + str(N)]
for d in range(1, N):
    p = int(poly[d])
    m = p.bit_length() - 1
    lines.append(" ".join(str(int(x)) for x in [p] + list(vinit[d, :m])))
with open(os.path.join(root, "slurptuna-sampler", "src", "sobol_dirs.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")

points = qmc.Sobol(d=12, scramble=False).random(64)
with open(os.path.join(root, "slurptuna-sampler", "tests", "fixtures", "sobol.json"), "w") as f:
    json.dump({"d": 12, "points": points.tolist()}, f)
