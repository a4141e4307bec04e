#!/usr/bin/env python3
"""Serving many live streams: one StreamPool step over all of them, against one Stream.step()
per stream, and against onnxruntime stepping them as one batch with gathered states.

    .venv/bin/python benchmarks/pool_bench.py [--streams 256] [--hidden 256] [--input 128]
                                              [--threads 1] [--seconds 1.0]

The model: one LSTM layer (random U(-0.5, 0.5) weights) whose per-step output is its hidden
state. Each "tick" advances every one of the N live streams by one step, each with its own
input row and carried state:

- rnnrt pool:         pool.step(ids, x, out=out), one C call (gather, one batched GEMM per
                      gate matrix, scatter);
- rnnrt step() loop:  N calls of stream.step(x[i], out=out[i]) on N batch-1 Streams;
- onnxruntime batch:  the states of the N streams gathered from a (N, H) store by row index,
                      one InferenceSession.run of an ONNX LSTM with seq_len 1 and batch N
                      (initial_h / initial_c fed), Y_h / Y_c scattered back into the store.

All three get the same threads (rnnrt num_threads, onnxruntime intra_op_num_threads). Before
timing, the three are checked to agree over a few ticks. Reported: the median time of a
tick (rounds that time the variants in turn, about `--seconds` per variant in all),
stream-steps per second (N / tick time), and each variant's time over the pool's (the median
of the per-round ratios). Target (issue 5): the pool at least 5x the step() loop.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import rnnrt  # noqa: E402
import rnnrt.packing  # noqa: E402
from rnnrt import ir  # noqa: E402


def lstm_weights(I, H, seed=0):
    """Weights in the IR's (and ONNX's) gate order i, o, f, c."""
    rng = np.random.default_rng(seed)

    def u(*shape):
        return rng.uniform(-0.5, 0.5, shape).astype(np.float32)
    return {"W": u(1, 4 * H, I), "R": u(1, 4 * H, H), "Wb": u(1, 4 * H), "Rb": u(1, 4 * H)}


def rnnrt_model(w, I, H, threads, directory):
    layer = ir.Recurrent(name="lstm", cell="lstm", direction="forward", hidden_size=H,
                         input_size=I, x="x", y="y",
                         activations=[[ir.Act.of(a) for a in ir.DEFAULT_ACTIVATIONS["lstm"]]],
                         **w)
    graph = ir.Graph([ir.TensorInfo("x", (None, None, I), "float32")], [layer], ["y"])
    path = rnnrt.packing.save(graph, os.path.join(directory, "pool_bench.rnnrt"))
    return rnnrt.load(path, num_threads=threads)


def ort_session(w, I, H, threads):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    inits = [numpy_helper.from_array(w["W"], "W"), numpy_helper.from_array(w["R"], "R"),
             numpy_helper.from_array(np.concatenate([w["Wb"], w["Rb"]], axis=1), "B")]
    node = helper.make_node("LSTM", ["X", "W", "R", "B", "", "initial_h", "initial_c"],
                            ["", "Y_h", "Y_c"], hidden_size=H)
    graph = helper.make_graph(
        [node], "lstm_step",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, "N", I]),
         helper.make_tensor_value_info("initial_h", TensorProto.FLOAT, [1, "N", H]),
         helper.make_tensor_value_info("initial_c", TensorProto.FLOAT, [1, "N", H])],
        [helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [1, "N", H]),
         helper.make_tensor_value_info("Y_c", TensorProto.FLOAT, [1, "N", H])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)
    onnx.checker.check_model(model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


class OrtBatch:
    """N streams in onnxruntime: states in (capacity, H) stores, gathered and scattered by
    row index around one batched run, as a service without a pool would do it."""

    def __init__(self, session, N, H):
        self.session = session
        self.h = np.zeros((N, H), np.float32)
        self.c = np.zeros((N, H), np.float32)
        self.rows = np.arange(N)

    def tick(self, x):
        feeds = {"X": x[None], "initial_h": self.h[self.rows][None],
                 "initial_c": self.c[self.rows][None]}
        y_h, y_c = self.session.run(["Y_h", "Y_c"], feeds)
        self.h[self.rows] = y_h[0]
        self.c[self.rows] = y_c[0]
        return y_h[0]


def interleaved_ticks(ticks: dict, seconds: float, rounds: int = 15) -> dict:
    """{name: [seconds per tick, one entry per round]}. Each round times every variant in
    turn, so that all see the same machine: on a shared VM whose two vCPUs may be siblings
    of one core, a neighbour's load can halve GEMM speed for a while, and only ratios taken
    side by side are stable."""
    reps = {}
    for name, tick in ticks.items():
        tick()
        start = time.perf_counter()
        tick()
        once = time.perf_counter() - start
        reps[name] = max(1, int(seconds / rounds / max(once, 1e-9)))
    times = {name: [] for name in ticks}
    for _ in range(rounds):
        for name, tick in ticks.items():
            start = time.perf_counter()
            for _ in range(reps[name]):
                tick()
            times[name].append((time.perf_counter() - start) / reps[name])
    return times


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", type=int, default=256)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--input", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=1.0, help="per variant")
    args = ap.parse_args(argv)
    N, H, I, threads = args.streams, args.hidden, args.input, args.threads

    w = lstm_weights(I, H)
    rng = np.random.default_rng(1)
    xs = rng.uniform(-1, 1, (4, N, I)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        model = rnnrt_model(w, I, H, threads, tmp)
        pool = model.stream_pool(N)
        ids = np.array([pool.open() for _ in range(N)], np.int64)
        streams = [model.stream() for _ in range(N)]
        pool_out = np.empty((N, H), np.float32)
        loop_out = np.empty((N, H), np.float32)

        def pool_tick(x=xs[0]):
            return pool.step(ids, x, out=pool_out)

        def loop_tick(x=xs[0]):
            for i, s in enumerate(streams):
                s.step(x[i], out=loop_out[i])
            return loop_out

        try:
            ort = OrtBatch(ort_session(w, I, H, threads), N, H)
        except ImportError as e:
            ort = None
            print(f"onnxruntime skipped: {e}")

        # Agreement over a few ticks from the zero state, then time from there on.
        worst = 0.0
        for x in xs:
            a = pool_tick(x).copy()
            worst = max(worst, float(np.abs(a - loop_tick(x)).max()))
            if ort is not None:
                worst = max(worst, float(np.abs(a - ort.tick(x)).max()))
        if worst > 1e-5:
            raise SystemExit(f"the engines disagree: max abs difference {worst:.3g}")

        ticks = {"rnnrt pool.step (1 call)": pool_tick,
                 "rnnrt step() loop (N calls)": loop_tick}
        if ort is not None:
            ticks["onnxruntime batch, gathered states"] = lambda: ort.tick(xs[0])
        times = interleaved_ticks(ticks, args.seconds * len(ticks))

    print(f"{N} live streams, LSTM input {I} hidden {H}, {threads} thread(s); "
          f"engines agree within {worst:.1e}")
    print(f"rnnrt {rnnrt.__version__}, numpy {np.__version__}" + (
        f", onnxruntime {__import__('onnxruntime').__version__}" if ort is not None else ""))
    pool_times = times["rnnrt pool.step (1 call)"]
    print(f"{'':38} {'ms / tick':>10} {'stream-steps/s':>15} {'time / pool time':>17}")
    for name, per_round in times.items():
        t = statistics.median(per_round)
        # The ratio of each round (taken side by side), then their median.
        ratio = statistics.median(a / b for a, b in zip(per_round, pool_times))
        print(f"{name:38} {t * 1e3:10.3f} {N / t:15,.0f} {ratio:16.2f}x")

if __name__ == "__main__":
    main()
