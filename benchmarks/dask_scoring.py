#!/usr/bin/env python3
"""Batch scoring from .npy shards: rnnrt in one process vs rnnrt.dask on a LocalCluster.

The workload of issue 6: sequences of T=20 steps, F=8 features, a small GRU (hidden 32, last
step, Dense(1, sigmoid)), stored as 50 shards. The full size is 1M sequences
(--sequences 1000000, 640 MB of shards); the default is 100k, for a quick run.

Reports:
  one process    each shard loaded and scored in turn, num_threads 1, then all cores
  LocalCluster   rnnrt.dask.predict(model, shards).compute() on N workers x 1 thread:
                 the first job (each worker loads the model) and a second one (cached),
                 with the worker time spent outside tasks (scheduling, transfers, waiting)
                 per shard, from Dask's task stream
  overhead       what the engine costs per shard when scoring costs nothing: a job of
                 one-sequence shards (graph building on the client, then the run), divided
                 by its number of shards
Each cluster result is checked bit for bit against the one-process, one-thread result.

Run:  .venv/bin/python benchmarks/dask_scoring.py [--sequences 1000000] [--workers 2]
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rnnrt  # noqa: E402
import rnnrt.packing  # noqa: E402
from rnnrt import ir  # noqa: E402


def scorer(features, hidden, seed=0):
    """GRU(hidden) -> last step -> Dense(1, sigmoid), U(-0.5, 0.5) weights."""
    rng = np.random.default_rng(seed)

    def u(*shape):
        return rng.uniform(-0.5, 0.5, shape).astype(np.float32)

    G = 3 * hidden
    gru = ir.Recurrent(name="gru", cell="gru", direction="forward", hidden_size=hidden,
                       input_size=features, x="x", W=u(1, G, features), R=u(1, G, hidden),
                       Wb=u(1, G), Rb=u(1, G),
                       activations=[[ir.Act.of("sigmoid"), ir.Act.of("tanh")]], y="seq")
    head = ir.Dense("head", "last", "score", kernel=u(hidden, 1), bias=u(1),
                    activation=ir.Act.of("sigmoid"))
    return ir.Graph([ir.TensorInfo("x", (None, None, features), "float32")],
                    [gru, ir.TimeStep("last", "seq", "last"), head], ["score"])


def write_shards(directory, prefix, sequences, shards, T, F, seed=1):
    rng = np.random.default_rng(seed)
    sizes = [sequences // shards + (i < sequences % shards) for i in range(shards)]
    paths = []
    for i, n in enumerate(sizes):
        path = os.path.join(directory, f"{prefix}{i:03d}.npy")
        np.save(path, rng.uniform(-1, 1, (n, T, F)).astype(np.float32))
        paths.append(path)
    return paths


def one_process(model_path, shards, threads):
    model = rnnrt.load(model_path, num_threads=threads)
    t0 = time.perf_counter()
    out = np.concatenate([model.run(np.load(p))[0] for p in shards])
    return time.perf_counter() - t0, out


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sequences", type=int, default=100_000,
                    help="total sequences (the issue's full size: 1000000)")
    ap.add_argument("--shards", type=int, default=50)
    ap.add_argument("--time", type=int, default=20)
    ap.add_argument("--features", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dir", help="where to write the model and shards (default: a temp dir)")
    args = ap.parse_args()

    from distributed import Client, LocalCluster, get_task_stream

    import rnnrt.dask

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        model_path = rnnrt.packing.save(scorer(args.features, args.hidden),
                                        os.path.join(tmp, "scorer.rnnrt"))
        shards = write_shards(tmp, "s", args.sequences, args.shards, args.time, args.features)
        tiny = write_shards(tmp, "tiny", args.shards, args.shards, args.time, args.features)
        mb = sum(os.path.getsize(p) for p in shards) / 1e6
        n = args.sequences
        print(f"{n} sequences x {args.time} steps x {args.features} features, GRU hidden "
              f"{args.hidden}, {args.shards} shards ({mb:.0f} MB of .npy); {os.cpu_count()} "
              f"cores, load average {os.getloadavg()[0]:.1f} (other work skews the timings)")

        one_process(model_path, shards[:1], 1)                      # page cache, warm-up
        t1, want = one_process(model_path, shards, 1)
        threads = os.cpu_count() or 1
        tn, _ = one_process(model_path, shards, threads)
        print(f"one process, 1 thread      {t1:7.2f} s  {n / t1:10.0f} seq/s")
        print(f"one process, {threads} threads{' ' * (6 - len(str(threads)))}"
              f"{tn:7.2f} s  {n / tn:10.0f} seq/s")

        t_start = time.perf_counter()
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster, \
                Client(cluster) as client:
            t_start = time.perf_counter() - t_start
            print(f"LocalCluster start         {t_start:7.2f} s  ({args.workers} workers x 1 "
                  f"thread)")
            for label in ("first job", "second job"):
                with get_task_stream(client) as stream:
                    t, got = timed(lambda: rnnrt.dask.predict(model_path, shards).compute())
                assert np.array_equal(got, want), "cluster result differs from one process"
                # Worker time not spent inside tasks (loading a shard, scoring it): the
                # scheduling, transfers and idling the engine adds, per shard.
                busy = sum(s["stop"] - s["start"] for task in stream.data
                           for s in task["startstops"] if s["action"] == "compute")
                idle = (args.workers * t - busy) / len(shards)
                print(f"LocalCluster, {label:<12} {t:7.2f} s  {n / t:10.0f} seq/s  "
                      f"({t1 / t:.2f}x one thread; workers outside tasks "
                      f"{1e3 * idle:.1f} ms a shard)")
            t_graph, y = timed(lambda: rnnrt.dask.predict(model_path, tiny))
            t_run, _ = timed(y.compute)
            print(f"overhead per shard         {1e3 * (t_graph + t_run) / len(tiny):7.2f} ms  "
                  f"({len(tiny)} one-sequence shards: graph {t_graph:.2f} s on the client, "
                  f"run {t_run:.2f} s)")
            loads = client.run(lambda: __import__("rnnrt.cache").cache.stats()["loads"])
            print(f"model loads per worker     {sorted(loads.values())}")


if __name__ == "__main__":   # needed: Dask's workers start by importing this script
    main()
