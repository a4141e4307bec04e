"""Keras models exported by tf2onnx (fixtures made by tools/make_tf2onnx_fixtures.py with
TensorFlow 2.21, Keras 3.15, tf2onnx 1.17): converted and run, they give the Keras model's
own outputs; the forms rnnrt does not convert (control-flow Loops) are refused by name."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

import rnnrt
from rnnrt.errors import UnsupportedModelError
from stream_check import assert_stream_matches_run, convert_all, forward_only

pytest.importorskip("onnx")

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "onnx" / "tf2onnx"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())["models"]

# tf2onnx writes these as a Loop over the cell arithmetic (or, for TimeDistributed, a
# pfor Loop that Keras itself traces with the wrong length); rnnrt refuses them and points
# to the Keras importer.
LOOPS = {"bidir_gru_concat", "embedding_mask_lstm", "gru_last", "gru_reset_after",
         "gru_reset_before", "lstm_recurrent_dropout", "lstm_time_distributed",
         "masking_lstm", "simple_rnn"}
CONVERTED = sorted(set(MANIFEST) - LOOPS)


def _cases(name):
    for path in sorted(FIXTURES.glob(f"{name}.b*.npz")):
        with np.load(path) as z:
            yield path.name, {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    return convert_all(FIXTURES, CONVERTED, tmp_path_factory.mktemp("tf2onnx"))


def test_every_fixture_is_classified():
    assert set(MANIFEST) == set(CONVERTED) | LOOPS
    assert len(CONVERTED) >= 10


@pytest.mark.parametrize("name", CONVERTED)
def test_matches_keras(name, converted):
    model = converted[name]
    in_names = [i.name for i in model.inputs]
    assert [o.name for o in model.outputs] == MANIFEST[name]["outputs"]
    n = 0
    for case, arrays in _cases(name):
        feeds = {k: arrays[k] for k in in_names}
        want = [arrays[k] for k in MANIFEST[name]["outputs"]]
        got = model.run(feeds)
        for g, w in zip(got, want):
            assert g.shape == w.shape, case
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5, err_msg=case)
        n += 1
    assert n == 3


@pytest.mark.parametrize("name", CONVERTED)
def test_streams_like_run(name, converted):
    """Every forward-only model streams; the others are refused with InputError."""
    model = converted[name]
    if not forward_only(model):
        with pytest.raises(rnnrt.InputError, match="forward-only"):
            model.stream()
        return
    ((_, arrays),) = [c for c in _cases(name) if c[0].endswith(".b4t7.npz")]
    x = arrays[model.inputs[0].name]
    if x.dtype.kind in "iu":
        x = np.abs(x)
    x = np.concatenate([x, x[:, ::-1]], axis=0)[:, :6]   # batch 8 > time 6
    assert_stream_matches_run(model, x)


@pytest.mark.parametrize("name", sorted(LOOPS))
def test_loops_are_refused_by_name(name, tmp_path):
    with pytest.raises(UnsupportedModelError) as e:
        rnnrt.convert(FIXTURES / f"{name}.onnx", tmp_path / "m.rnnrt")
    msg = str(e.value)
    assert "Loop" in msg and "config=" in msg
    assert not (tmp_path / "m.rnnrt").exists()
