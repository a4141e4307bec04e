"""What a private copy of a model file costs against a guarded mmap of it: the figures behind
fileformat.PRIVATE_COPY_MAX_BYTES.

    python -m benchmarks.private_copy [--sizes 1 6 50 200] [--reps 5]

For each size (MB of weights: one LSTM layer, input = hidden), each repetition loads the
model in a fresh process, once copied (RNNRT_PRIVATE_COPY_MAX_BYTES above the file's size)
and once mapped (RNNRT_PRIVATE_COPY_MAX_BYTES=0), and measures:
  load      rnnrt.load (a copy is read and checksummed in one pass; a mapping is checked
            for structure only)
  verify    the first model.verify(), as the first computation makes it (a copy gives the
            verdict of its load; a mapping is read and checksummed now)
  peak RSS  VmHWM after both, less VmRSS before the load
The file is in the page cache (just written), as for a service that reloads a model; the
medians are printed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

from . import scenarios

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = """
import json, sys, time
def status(key):
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith(key)).split()[1])
import rnnrt, rnnrt.model      # imported first: what they cost is no part of a load
before = status("VmRSS")
t0 = time.perf_counter()
model = rnnrt.load(sys.argv[1], num_threads=1)
t1 = time.perf_counter()
model.verify()
t2 = time.perf_counter()
print(json.dumps({"private": model._file.private_copy, "load_ms": (t1 - t0) * 1e3,
                  "verify_ms": (t2 - t1) * 1e3,
                  "peak_rss_mib": (status("VmHWM") - before) / 1024}))
"""


def hidden_for(mb: float) -> int:
    """LSTM hidden size whose W and R (input = hidden) hold about `mb` MB."""
    return max(8, round(math.sqrt(mb * 1e6 / (2 * 4 * 4))))


def measure_one(path: str, copy: bool) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    env["RNNRT_PRIVATE_COPY_MAX_BYTES"] = str(os.path.getsize(path) if copy else 0)
    done = subprocess.run([sys.executable, "-c", CHILD, path], capture_output=True, text=True,
                          env=env, check=False, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"child failed:\n{done.stderr[-2000:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert row["private"] == copy
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[1, 6, 50, 200])
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args(argv)
    print(f"{'file MB':>8} {'how':>5} {'load ms':>8} {'verify ms':>10} {'total ms':>9} "
          f"{'peak RSS MiB':>13}")
    with tempfile.TemporaryDirectory() as folder:
        for mb in args.sizes:
            h = hidden_for(mb)
            path = scenarios.save_rnnrt(scenarios.make_weights("lstm", h, h),
                                        os.path.join(folder, f"lstm{h}.rnnrt"))
            rows = {True: [], False: []}
            for _ in range(args.reps):
                for copy in (True, False):     # alternate, so that drift hits both alike
                    rows[copy].append(measure_one(path, copy))
            for copy in (True, False):
                med = {k: float(np.median([r[k] for r in rows[copy]]))
                       for k in ("load_ms", "verify_ms", "peak_rss_mib")}
                print(f"{os.path.getsize(path) / 1e6:8.1f} {'copy' if copy else 'mmap':>5} "
                      f"{med['load_ms']:8.1f} {med['verify_ms']:10.1f} "
                      f"{med['load_ms'] + med['verify_ms']:9.1f} {med['peak_rss_mib']:13.1f}")
            os.remove(path)


if __name__ == "__main__":
    main()
