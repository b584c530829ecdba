"""A command loss for the tests of slurptuna-exec-local: the JSON line protocol, with a
misbehaviour chosen by the parameter "mode".

value = x * 1.37 + seed * 0.113 + n * 0.01 + (0.5 if kind == "b" else 0.0); the tests compute
the same expression in Rust and expect the very same bits. Seeds are answered in reverse order.
If PID_DIR is set, the process writes the file PID_DIR/pid-<pid> when it starts, so that a test
can check that nothing is left running.
"""
import json
import os
import sys
import time


def note_pid(kind, pid):
    d = os.environ.get("PID_DIR")
    if d:
        with open(os.path.join(d, f"{kind}-{pid}"), "w") as f:
            f.write(str(pid))


def value(p, seed):
    return p["x"] * 1.37 + seed * 0.113 + p["n"] * 0.01 + (0.5 if p["kind"] == "b" else 0.0)


def reply(seed, **fields):
    print(json.dumps({"seed": seed, **fields}))


note_pid("pid", os.getpid())
print("starting up (not a reply)")

for line in sys.stdin:
    req = json.loads(line)
    p = req["params"]
    mode = p.get("mode", "value")
    seeds = req["seeds"]
    if mode == "crash_high" and p["x"] > 0.5:
        print(f"model diverged for x={p['x']}", file=sys.stderr, flush=True)
        sys.exit(3)
    for i, seed in enumerate(reversed(seeds)):
        v = value(p, seed)
        second = seed == seeds[1 % len(seeds)]
        if mode == "garbage":
            print("hello from the model")
            print()
            print(json.dumps({"epoch": i, "loss": float("nan")}))
            print("[1, 2]")
            print(f"warning for seed {seed}", file=sys.stderr, flush=True)
            reply(seed, value=v)
        elif mode == "components":
            reply(seed, value={"a": v, "b": 2 * v})
        elif mode == "list":
            reply(seed, value=[v, v + 1])
        elif mode == "twice":
            reply(seed, value=v)
            if second:
                reply(seed, value=v)
        elif mode == "unknown" and second:
            reply(123456789, value=v)
        elif mode == "nan" and second:
            reply(seed, value=float("nan"))
        elif mode == "null" and second:
            reply(seed, value=None)
        elif mode == "inf" and second:
            reply(seed, value=float("-inf") if p["kind"] == "b" else float("inf"))
        elif mode == "error" and second:
            reply(seed, error=f"no convergence for seed {seed}")
        elif mode == "slow":
            d = os.environ.get("PID_DIR")
            if d:
                open(os.path.join(d, f"started-{os.getpid()}-{seed}"), "w").close()
            time.sleep(0.5)
            reply(seed, value=v)
        else:
            reply(seed, value=v)
