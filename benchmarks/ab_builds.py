"""Time two builds of rnnrt against each other on compare.py's models, in alternating
processes: the way to measure a kernel change, which one process cannot hold both sides of.

Make each build a directory holding an `rnnrt` package with its compiled engine, e.g.

    make build && mkdir -p /tmp/new && cp -r rnnrt /tmp/new/
    git stash && make build && mkdir -p /tmp/old && cp -r rnnrt /tmp/old/ && git stash pop
    python benchmarks/ab_builds.py /tmp/old /tmp/new lstm,512,100,1 lstm,512,1,2

A case is cell,hidden,time,threads: time 1 times Stream.step (batch 1, input 64), more
times Model.run on a batch-1 sequence (input hidden/2), as compare.py's scenarios A and B.
Each round runs one process per build, in turn; each process reports the median of 15
samples. Printed: each build's median over the rounds, and new/old.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# NumPy's own OpenBLAS on one thread, as in compare.py: its threads spin for ~40 ms after
# the import, which a child timing for ~30 ms would otherwise run beside (and rnnrt's load
# probe rightly counts as a busy core).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def child(build: str, cell: str, hidden: int, steps: int, threads: int) -> float:
    """Median seconds per call of one case, with the rnnrt found in `build`."""
    sys.path.insert(0, build)
    sys.path.insert(1, HERE)
    import rnnrt
    import scenarios
    if not rnnrt.__file__.startswith(os.path.abspath(build)):
        raise SystemExit(f"{build} holds no rnnrt package (imported {rnnrt.__file__})")
    size_in = scenarios.STREAM_INPUT if steps == 1 else hidden // 2
    path = os.path.join(tempfile.mkdtemp(), "m.rnnrt")
    scenarios.save_rnnrt(scenarios.make_weights(cell, hidden, size_in), path)
    model = rnnrt.load(path, num_threads=threads)
    x = scenarios.make_inputs(1, steps, size_in)
    if steps == 1:
        stream, row = model.stream(1), x[:, 0]
        out = stream.step(row)
        call = lambda: stream.step(row, out=out)   # noqa: E731
    else:
        call = lambda: model.run(x)                 # noqa: E731
    for _ in range(20):
        call()
    t0 = time.perf_counter()
    call()
    per = max(1, int(2e-3 / max(time.perf_counter() - t0, 1e-7)))   # ~2 ms a sample
    samples = []
    for _ in range(15):
        t0 = time.perf_counter()
        for _ in range(per):
            call()
        samples.append((time.perf_counter() - t0) / per)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old", help="directory holding the first build's rnnrt package")
    ap.add_argument("new", help="directory holding the second build's rnnrt package")
    ap.add_argument("cases", nargs="+", help="cell,hidden,time,threads (e.g. lstm,512,100,1)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:       # old: the build; cases[0]: the case
        cell, hidden, steps, threads = args.cases[0].split(",")
        print(child(args.old, cell, int(hidden), int(steps), int(threads)))
        return
    for case in args.cases:
        times = {"old": [], "new": []}
        for _ in range(args.rounds):
            for side in ("old", "new"):
                out = subprocess.run([sys.executable, __file__, getattr(args, side), "-",
                                      case, "--child"], check=True, capture_output=True,
                                     text=True).stdout
                times[side].append(float(out))
        old, new = (statistics.median(times[k]) for k in ("old", "new"))
        print(f"{case:<20} old {old * 1e6:10.2f} us   new {new * 1e6:10.2f} us   "
              f"new/old {new / old:.3f}")


if __name__ == "__main__":
    main()
