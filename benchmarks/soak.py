#!/usr/bin/env python3
"""Soak: does rnnrt keep its memory and file descriptors flat over long runs?

    .venv/bin/python benchmarks/soak.py [--quick] [--steps N] [--pool-steps N]
        [--churn N] [--snapshots N] [--loads N] [--rss-growth-mib M]

Each phase repeats one kind of work on a small LSTM (16 features in, 64 units, 64 out):

  steps      Stream.step: with out= (the C fast path), without (a new output array each
             call), and with float64 rows (the checked general path);
  pool steps StreamPool.step over 64 live streams, with out=;
  pool churn streams opened (some from a snapshot) and closed in a pool that grows, stepped
             between, and every 100 rounds the pool itself dropped and a new one made;
  snapshots  stream.snapshot() resumed with model.stream(state=) and pool.open(state=);
  loads      rnnrt.load + run + del, and rnnrt.cache.load of a file replaced by rename
             (a new version each time, so the stale one is dropped with its mmap).

Per phase it prints RSS, open file descriptors and memory mappings (Linux /proc) at the
start, the end, and RSS's maximum. The start is taken after a warm-up (5% of the phase),
so that first-use allocations (pymalloc arenas, NumPy caches) are not counted as growth.
Exit status 1 when a phase's RSS grows beyond --rss-growth-mib over its start, or it ends
with more file descriptors than it started with, or with more than MAPS_SLACK more
mappings (each leaked model would leave one).
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import rnnrt  # noqa: E402
import rnnrt.cache  # noqa: E402
import rnnrt.packing  # noqa: E402
from rnnrt import ir  # noqa: E402

I, H = 16, 64
POOL_STREAMS = 64
MAPS_SLACK = 16          # mappings the allocators may add or drop on their own
DEFAULT_RSS_GROWTH_MIB = 8.0
FULL = {"steps": 10_000_000, "pool_steps": 1_000_000, "churn": 100_000, "snapshots": 100_000,
        "loads": 20_000}
QUICK = {k: max(1000, v // 100) for k, v in FULL.items()}

# ----------------------------------------------------------------------------- measuring

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def mappings() -> int:
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


@dataclass
class Result:
    phase: str
    count: int
    seconds: float
    rss_start: int
    rss_end: int
    rss_max: int
    fds_start: int
    fds_end: int
    maps_start: int
    maps_end: int

    def problems(self, rss_growth_bytes: float) -> list:
        """What this phase leaked, in words (empty: nothing)."""
        out = []
        if self.rss_end - self.rss_start > rss_growth_bytes:
            out.append(f"{self.phase}: RSS grew {(self.rss_end - self.rss_start) / 2**20:.1f} "
                       f"MiB (bound {rss_growth_bytes / 2**20:.1f} MiB)")
        if self.fds_end > self.fds_start:
            out.append(f"{self.phase}: {self.fds_end - self.fds_start} file descriptor(s) "
                       f"leaked")
        if self.maps_end - self.maps_start > MAPS_SLACK:
            out.append(f"{self.phase}: {self.maps_end - self.maps_start} more memory "
                       f"mappings (slack {MAPS_SLACK})")
        return out


def run_phase(name: str, count: int, work, samples: int = 50) -> Result:
    """Call work(n) until count iterations are done: a warm-up first, then in `samples`
    chunks, sampling RSS after each."""
    warm = max(1, count // 20)
    work(warm)
    gc.collect()
    rss0, fds0, maps0 = rss_bytes(), open_fds(), mappings()
    rss_max, done = rss0, warm
    chunk = max(1, (count - warm) // samples)
    t0 = time.perf_counter()
    while done < count:
        n = min(chunk, count - done)
        work(n)
        done += n
        rss_max = max(rss_max, rss_bytes())
    seconds = time.perf_counter() - t0
    gc.collect()
    rss1 = rss_bytes()
    return Result(name, count, seconds, rss0, rss1, max(rss_max, rss1), fds0, open_fds(),
                  maps0, mappings())


# ----------------------------------------------------------------------------- the work


def save_model(path: str) -> str:
    rng = np.random.default_rng(0)

    def u(*shape):
        return rng.uniform(-0.5, 0.5, shape).astype(np.float32)
    layer = ir.Recurrent(name="lstm", cell="lstm", direction="forward", hidden_size=H,
                         input_size=I, x="x", y="y", W=u(1, 4 * H, I), R=u(1, 4 * H, H),
                         Wb=u(1, 4 * H), Rb=u(1, 4 * H),
                         activations=[[ir.Act.of(a) for a in ir.DEFAULT_ACTIVATIONS["lstm"]]])
    graph = ir.Graph([ir.TensorInfo("x", (None, None, I), "float32")], [layer], ["y"])
    return rnnrt.packing.save(graph, path)


def phases(path: str, directory: str) -> dict:
    """{name: work(n)} for each phase, on the model at path (directory: for its copies)."""
    model = rnnrt.load(path, num_threads=1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, I), dtype=np.float32)
    x64 = x.astype(np.float64)
    xs = rng.standard_normal((POOL_STREAMS, I), dtype=np.float32)
    seq = rng.standard_normal((2, 5, I), dtype=np.float32)

    stream = model.stream(1)
    out = np.empty((1, H), np.float32)

    def steps(n):
        for k in range(n):
            if k & 7:
                stream.step(x, out=out)
            elif k & 8:
                stream.step(x)
            else:
                stream.step(x64)

    pool = model.stream_pool(POOL_STREAMS)
    ids = [pool.open() for _ in range(POOL_STREAMS)]
    pool_out = np.empty((POOL_STREAMS, H), np.float32)

    def pool_steps(n):
        for _ in range(n):
            pool.step(ids, xs, out=pool_out)

    snap = stream.snapshot()
    churn_state = {"pool": model.stream_pool(8), "ids": [], "round": 0}
    churn_xs = rng.standard_normal((128, I), dtype=np.float32)

    def churn(n):
        # Each round closes 3 streams and opens 4 (2 from a snapshot): the pool grows from
        # 8 to 128 rows; every 100th round drops it, streams and all, for a new one.
        for _ in range(n):
            c = churn_state
            c["round"] += 1
            if c["round"] % 100 == 0:
                c["pool"], c["ids"] = model.stream_pool(8), []
            p, live = c["pool"], c["ids"]
            for _ in range(min(3, len(live))):
                p.close(live.pop(0))
            live += [p.open(), p.open(state=snap), p.open(), p.open(state=snap)]
            p.step(live, churn_xs[:len(live)])

    def snapshots(n):
        for _ in range(n):
            s = stream.snapshot()
            model.stream(1, state=s).step(x, out=out)
            pool.close(ids.pop())
            ids.append(pool.open(state=s))

    live_path = os.path.join(directory, "live.rnnrt")
    shutil.copyfile(path, live_path)
    version = [time.time_ns()]

    def loads(n):
        for k in range(n):
            if k & 1:
                m = rnnrt.load(path, num_threads=1)
                m.run(seq)
                del m
            else:
                # A new version of the live file, installed by rename as a service would;
                # a distinct mtime makes it a new cache key, and the old entry is dropped.
                tmp = live_path + ".new"
                shutil.copyfile(path, tmp)
                version[0] += 1
                os.utime(tmp, ns=(version[0], version[0]))
                os.replace(tmp, live_path)
                rnnrt.cache.load(live_path, num_threads=1).run(seq)

    return {"steps": steps, "pool steps": pool_steps, "pool churn": churn,
            "snapshots": snapshots, "loads": loads}


def soak(counts: dict, directory: str, progress=None) -> list:
    """Run every phase with counts {steps, pool_steps, churn, snapshots, loads}; the
    Results in order."""
    path = save_model(os.path.join(directory, "soak.rnnrt"))
    work = phases(path, directory)
    keys = {"steps": "steps", "pool steps": "pool_steps", "pool churn": "churn",
            "snapshots": "snapshots", "loads": "loads"}
    results = []
    for name, fn in work.items():
        if progress is not None:
            progress(f"{name}: {counts[keys[name]]:,} ...")
        results.append(run_phase(name, counts[keys[name]], fn))
    rnnrt.cache.clear()
    return results


def table(results: list) -> str:
    head = ("phase", "iterations", "s", "us/iter", "RSS MiB start", "end", "max",
            "fds start", "end", "maps start", "end")
    widths = (11, 11, 7, 9, 14, 7, 7, 10, 4, 11, 5)
    rows = [head]
    for r in results:
        timed = r.count - max(1, r.count // 20)     # run_phase's warm-up is not timed
        rows.append((r.phase, f"{r.count:,}", f"{r.seconds:.1f}",
                     f"{1e6 * r.seconds / max(1, timed):.2f}",
                     *(f"{b / 2**20:.1f}" for b in (r.rss_start, r.rss_end, r.rss_max)),
                     r.fds_start, r.fds_end, r.maps_start, r.maps_end))
    return "\n".join(f"{row[0]:<{widths[0]}}" +
                     "".join(f"{v:>{w}}" for v, w in zip(row[1:], widths[1:])) for row in rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help=f"a few seconds of work ({', '.join(f'{k} {v:,}' for k, v in QUICK.items())})")
    for key, n in FULL.items():
        ap.add_argument("--" + key.replace("_", "-"), type=int, default=None,
                        help=f"iterations (default {n:,})")
    ap.add_argument("--rss-growth-mib", type=float, default=DEFAULT_RSS_GROWTH_MIB,
                    help=f"RSS a phase may grow by (default {DEFAULT_RSS_GROWTH_MIB})")
    args = ap.parse_args(argv)
    counts = dict(QUICK if args.quick else FULL)
    for key in FULL:
        if getattr(args, key) is not None:
            counts[key] = getattr(args, key)
    if any(n < 1 for n in counts.values()):
        ap.error("every count must be at least 1")

    with tempfile.TemporaryDirectory() as tmp:
        results = soak(counts, tmp, progress=lambda s: print(s, file=sys.stderr, flush=True))
    print(table(results))
    problems = [p for r in results for p in r.problems(args.rss_growth_mib * 2**20)]
    for p in problems:
        print("LEAK:", p)
    print("FAILED" if problems else
          f"OK: no phase grew RSS beyond {args.rss_growth_mib} MiB, leaked a file descriptor "
          f"or kept a mapping")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
