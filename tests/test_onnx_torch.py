"""PyTorch models exported by torch.onnx.export, both exporters (fixtures made by
tools/make_onnx_fixtures.py with torch 2.13): converted and run at the export size and at
other batch and time sizes, they give PyTorch's own outputs; forward-only ones stream."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

import rnnrt
from rnnrt.errors import UnsupportedModelError
from stream_check import assert_stream_matches_run, convert_all, forward_only

pytest.importorskip("onnx")

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "onnx" / "torch"
FILES = sorted(p.stem for p in FIXTURES.glob("*.onnx"))
# torch's dynamo exporter unrolls nn.RNN (tanh / relu) into per-step arithmetic for the
# example's sequence length: no RNN operator is left, and rnnrt says so.
UNROLLED = sorted(n for n in FILES if n.startswith("rnn_") and n.endswith(".dynamo"))
CONVERTED = sorted(set(FILES) - set(UNROLLED))


def _cases(name):
    with np.load(FIXTURES / f"{name}.npz") as z:
        arrays = {k: z[k] for k in z.files}
    for k in range(len(arrays["sizes"])):
        yield {key.split("@")[0]: v for key, v in arrays.items() if key.endswith(f"@{k}")}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    return convert_all(FIXTURES, CONVERTED, tmp_path_factory.mktemp("torch_onnx"))


def test_both_exporters_are_covered():
    assert sum(n.endswith(".dynamo") for n in CONVERTED) >= 10
    assert sum(n.endswith(".legacy") for n in CONVERTED) >= 10


@pytest.mark.parametrize("name", CONVERTED)
def test_matches_pytorch_at_every_size(name, converted):
    model = converted[name]
    in_names = [i.name for i in model.inputs]
    sizes = set()
    for case in _cases(name):
        got = model.run({k: case[k] for k in in_names})
        want = [case[o.name] for o in model.outputs]
        for g, w in zip(got, want):
            assert g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
        sizes.add(tuple(np.asarray(case[in_names[0]]).shape[:2]))
    assert len(sizes) >= 2, "dynamic axes run at more than one size"


@pytest.mark.parametrize("name", CONVERTED)
def test_streams_like_run(name, converted):
    """Forward-only models stream (a stacked initial-state input is then the stream's own
    state); the others are refused."""
    model = converted[name]
    if not forward_only(model):
        with pytest.raises(rnnrt.InputError, match="forward-only"):
            model.stream()
        return
    seq = model.inputs[0]
    case = next(_cases(name))
    x = case[seq.name]
    time_major = _time_major(model, seq.name)
    if time_major:
        x = np.swapaxes(x, 0, 1)
    rng = np.random.default_rng(0)
    x = np.concatenate([x] * 8, axis=0)[rng.permutation(8 * x.shape[0])[:7], :5]
    if time_major:
        x = np.swapaxes(x, 0, 1)
    stream_names = [i.name for i in model.inputs if i.name != seq.name]
    if stream_names:    # state inputs: the stream starts from zeros, so run() must too
        model = _with_zero_states(model, stream_names)
    assert_stream_matches_run(model, x, time_major=time_major)


def _time_major(model, name) -> bool:
    for layer in model.graph["layers"]:
        a = layer["attrs"]
        if name in (a.get("x"), a.get("ids")):
            if layer["kind"] == "Recurrent":
                return a["time_major"]
            name = a.get("out")
    return False


class _with_zero_states:
    """A model whose state inputs are fed zeros in run(), as a fresh stream starts."""

    def __init__(self, model, names):
        self.model, self.names = model, names
        self.shapes = {i.name: i.shape for i in model.inputs}

    def stream(self, batch_size):
        return self.model.stream(batch_size=batch_size)

    def run(self, x):
        seq = self.model.inputs[0].name
        B = x.shape[1] if _time_major(self.model, seq) else x.shape[0]
        feeds = {seq: x}
        for n in self.names:
            feeds[n] = np.zeros([B if d is None else d for d in self.shapes[n]], np.float32)
        return self.model.run(feeds)


@pytest.mark.parametrize("name", UNROLLED)
def test_unrolled_dynamo_rnn_is_refused(name, tmp_path):
    with pytest.raises(UnsupportedModelError, match="no RNN, LSTM or GRU.*dynamo=False"):
        rnnrt.convert(FIXTURES / f"{name}.onnx", tmp_path / "m.rnnrt")
