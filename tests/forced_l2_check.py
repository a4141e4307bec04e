"""Run by test_engine.py in a child process with RNNRT_L2_BYTES=131072 (read when the
engine loads): layers of 120-250 units then take the paths meant for layers that outgrow
L2 (weights read ahead, forward and backward on alternate steps; the "ranges" split), with
masks, lengths and initial states the fixed wide-layer tests do not combine with them.
Exits non-zero, saying what differs, when any output strays from the NumPy oracle."""
import sys

import numpy as np

import rnnrt
import rnnrt.packing
from rnnrt import ir
from rnnrt.model import _engine   # after rnnrt._blas, which the engine needs loaded first
from reference import float32_tolerance, run_reference_traced
from strategies import make_recurrent, tame_wide_recurrence, wide_sum_factor

# cell, hidden, GRU linear_before_reset, batch: 2 threads split ranges (LSTM, GRU) or units
# (SimpleRNN); 1 thread reads a share beyond the 128 KiB "L2" (streamed).
CASES = [("lstm", 120, False, 1), ("gru", 140, True, 1), ("gru", 140, False, 1),
         ("rnn", 250, False, 1), ("lstm", 130, False, 3), ("gru", 140, True, 5)]


def check(tmp, cell, hidden, lbr, batch, seed):
    rng = np.random.default_rng(seed)
    T, I = 7, 6
    extra = {"linear_before_reset": lbr} if cell == "gru" else {}
    rec = make_recurrent("rec", cell, "forward", hidden, I, rng, x="x", y="y", h_n="h_n",
                         seq_lens="L", h0="h0", **extra)
    tame_wide_recurrence(rec)
    graph = ir.Graph([ir.TensorInfo("x", (None, None, I), "float32"),
                      ir.TensorInfo("L", (None,), "int32"),
                      ir.TensorInfo("h0", (1, None, hidden), "float32")],
                     [rec], ["y", "h_n"]).validate()
    feeds = {"x": rng.uniform(-1, 1, (batch, T, I)).astype(np.float32),
             "L": rng.integers(T // 2, T + 1, batch).astype(np.int32),
             "h0": rng.uniform(-1, 1, (1, batch, hidden)).astype(np.float32)}
    want, peak = run_reference_traced(graph, feeds)
    tol = float32_tolerance(peak) * wide_sum_factor(rec)
    path = rnnrt.packing.save(graph, f"{tmp}/{cell}{hidden}{lbr}{batch}.rnnrt")
    failures = []
    for threads in (1, 2):
        model = rnnrt.load(path, num_threads=threads)
        how = [h for _, h, _ in model._engine.thread_schedule(batch, T, threads)]
        if batch == 1 and threads == 2 and how != ["units" if cell == "rnn" else "ranges"]:
            failures.append(f"{cell}-{hidden}: schedule {how} on 2 threads")
        for got, w in zip(model.run(feeds), want):
            err = float(np.max(np.abs(got - w)))
            if not err <= tol:
                failures.append(f"{cell}-{hidden} lbr={lbr} batch {batch}, {threads} thread(s) "
                                f"({how}): error {err:.3g} > {tol:.3g}")
    return failures


def main(tmp):
    if _engine.l2_bytes() != 131072:
        sys.exit(f"RNNRT_L2_BYTES was not applied: the engine plans with {_engine.l2_bytes()}")
    failures = [f for k, case in enumerate(CASES) for f in check(tmp, *case, seed=k)]
    if failures:
        sys.exit("\n".join(failures))
    print(f"{len(CASES)} layers agree with the oracle on 1 and 2 threads")


if __name__ == "__main__":
    main(sys.argv[1])
