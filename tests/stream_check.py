"""Checking Model.stream() against Model.run on the same model and inputs."""

from __future__ import annotations

import numpy as np

import rnnrt


def forward_only(model) -> bool:
    """Whether every recurrent layer of a loaded model runs forward (so it can stream)."""
    return all(layer["attrs"]["direction"] == "forward" for layer in model.graph["layers"]
               if layer["kind"] == "Recurrent")


def convert_all(fixtures, names, tmp) -> dict:
    """{name: loaded Model} for fixtures/<name>.onnx, converted into tmp."""
    return {n: rnnrt.load(rnnrt.convert(fixtures / f"{n}.onnx", tmp / f"{n}.rnnrt"))
            for n in names}


def assert_stream_matches_run(model, x, *, time_major=False, atol=1e-5):
    """Step a (batch, time, ...) (or time-major) input through a stream and compare each
    step's output with run() on the prefix so far: its row at that step for a sequence
    output, the whole output for a sequence-to-vector one. The batch must differ from every
    prefix length so the time axis of the output can be told apart."""
    t_axis = 0 if time_major else 1
    B, T = x.shape[1 - t_axis], x.shape[t_axis]
    assert B > T, "use a batch larger than the sequence length"
    stream = model.stream(batch_size=B)
    for t in range(T):
        x_t = np.take(x, t, axis=t_axis)
        got = stream.step(x_t)
        full = model.run(np.take(x, np.arange(t + 1), axis=t_axis))[0]
        if full.ndim == got.ndim + 1:
            axis = [i for i, n in enumerate(full.shape) if n == t + 1 and n != B]
            full = np.take(full, t, axis=axis[0])
        np.testing.assert_allclose(got.reshape(full.shape), full, rtol=1e-5, atol=atol)
