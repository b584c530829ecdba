"""The executor conformance suite's loss (slurptuna_core::testing::suite_loss) as a command:
behaviour "value" returns 1000 x + seed, "fail" the same but an error for seed 3, "slow" creates
the file beat-<pid>-<trial>-<seed> in the directory named by the entry id, then sleeps 200 ms.
If PID_DIR is set, the process writes PID_DIR/pid-<pid> when it starts."""
import json
import os
import sys
import time

d = os.environ.get("PID_DIR")
if d:
    with open(os.path.join(d, f"pid-{os.getpid()}"), "w") as f:
        f.write(str(os.getpid()))

for line in sys.stdin:
    req = json.loads(line)
    p = req["params"]
    for seed in req["seeds"]:
        v = 1000.0 * p["x"] + seed
        if p["behaviour"] == "fail" and seed == 3:
            out = {"seed": seed, "error": f"seed {seed} fails on purpose"}
        elif p["behaviour"] == "slow":
            beat = os.path.join(req["entry_id"], f"beat-{os.getpid()}-{req['trial']}-{seed}")
            open(beat, "w").close()
            time.sleep(0.2)
            out = {"seed": seed, "value": v}
        else:
            out = {"seed": seed, "value": v}
        print(json.dumps(out))
