#!/usr/bin/env python3
"""The main job on the bundled model: convert, run whole sequences, stream step by step.

examples/sensor/ holds a PyTorch LSTM (4 channels in, hidden 64) trained by
tools/make_example_model.py to forecast the next value of every channel of a noisy sensor,
as a state_dict in weights.npz plus rnnrt's spec.json; signals.npy holds held-out sequences and
expected.npy what PyTorch predicted for them.
"""
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rnnrt  # noqa: E402
from rnnrt.cli import describe  # noqa: E402

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sensor")


def median_us(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e6 * float(np.median(times))


def main():
    signals = np.load(os.path.join(HERE, "signals.npy"))
    expected = np.load(os.path.join(HERE, "expected.npy"))
    x, target = signals[:, :-1], signals[:, 1:]

    with tempfile.TemporaryDirectory() as tmp:
        path = rnnrt.convert(os.path.join(HERE, "weights.npz"), os.path.join(tmp, "sensor.rnnrt"),
                             spec=os.path.join(HERE, "spec.json"))
        # Default threads: a call shares its work only with cores other processes leave
        # free, so this is never slower than one thread, busy machine or not.
        model = rnnrt.load(path)
        print("== converted ==")
        print(describe(model))

        print("\n== whole sequences ==")
        pred = model.run(x)[0]
        print(f"batch {x.shape[0]} x {x.shape[1]} steps -> {pred.shape}")
        print(f"max |rnnrt - PyTorch|      = {np.abs(pred - expected).max():.2e}")
        mse = float(np.mean((pred[:, 10:] - target[:, 10:]) ** 2))
        naive = float(np.mean((x[:, 10:] - target[:, 10:]) ** 2))
        print(f"forecast MSE {mse:.4f} vs repeat-last-value {naive:.4f}")
        one = x[:1]
        print(f"latency, 1 sequence x {x.shape[1]} steps: {median_us(lambda: model.run(one), 200):8.1f} µs")
        print(f"latency, {x.shape[0]} sequences:           {median_us(lambda: model.run(x), 100):8.1f} µs"
              f"  ({model.num_threads} threads at most)")

        print("\n== streaming, one step per call ==")
        stream = model.stream(batch_size=1)
        out = np.empty(4, np.float32)
        worst = 0.0
        for t in range(x.shape[1]):
            stream.step(x[0, t], out=out)
            worst = max(worst, float(np.abs(out - pred[0, t]).max()))
        print(f"streamed {x.shape[1]} steps; max |step - run| = {worst:.2e}")
        print(f"t=99 forecast {np.round(out, 3)}  actual {np.round(target[0, -1], 3)}")
        stream.reset()
        xt = x[0, 0]
        print(f"latency, step(): {median_us(lambda: stream.step(xt, out=out), 2000):8.2f} µs")
        ok = np.abs(pred - expected).max() <= 1e-5 and worst <= 1e-5
        print("\nOK" if ok else "\nMISMATCH")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
