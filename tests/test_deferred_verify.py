"""load() checks structure at once and the tensors' CRC32s before the first computation:
a damaged tensor must stop every way of computing with FormatError, never give numbers."""
import pathlib

import numpy as np
import pytest

import rnnrt
from rnnrt import fileformat, ir, packing
from strategies import make_recurrent

V, E, H = 5, 3, 4


def token_graph():
    rng = np.random.default_rng(0)
    emb = ir.Embedding("emb", "ids", "e", rng.uniform(-1, 1, (V, E)).astype(np.float32))
    rec = make_recurrent("rec", "gru", "forward", H, E, rng, x="e", y="y")
    head = ir.Dense("head", "y", "scores", rng.uniform(-1, 1, (H, V)).astype(np.float32))
    return ir.Graph([ir.TensorInfo("ids", (None, None), "int64")], [emb, rec, head],
                    ["scores"])


@pytest.fixture
def paths(tmp_path):
    good = packing.save(token_graph(), tmp_path / "good.rnnrt")
    data = bytearray(pathlib.Path(good).read_bytes())
    data[-1] ^= 0x40            # the last byte of the file is the last tensor's data
    bad = tmp_path / "bad.rnnrt"
    bad.write_bytes(bytes(data))
    return good, bad


IDS = np.array([[1, 2, 3]], np.int64)
COMPUTATIONS = {
    "run": lambda m: m.run(IDS),
    "call": lambda m: m(IDS),
    "stream": lambda m: m.stream(),
    "stream_pool": lambda m: m.stream_pool(4),
    "generate": lambda m: m.generate([1, 2], 3),
    "verify": lambda m: m.verify(),
}


@pytest.mark.parametrize("how", sorted(COMPUTATIONS))
def test_a_damaged_tensor_stops_every_computation(paths, how):
    model = rnnrt.load(paths[1])          # structure is intact: the load itself succeeds
    for _ in range(2):                    # and it keeps refusing, never runs unchecked
        with pytest.raises(rnnrt.FormatError, match="data CRC32 mismatch"):
            COMPUTATIONS[how](model)


def test_load_defers_the_data_pass_to_the_first_computation(paths, monkeypatch):
    calls = []
    real = fileformat.verify_data
    monkeypatch.setattr(fileformat, "verify_data", lambda mf: calls.append(mf) or real(mf))
    model = rnnrt.load(paths[0])
    assert calls == []
    first = model.run(IDS)[0]
    assert len(calls) == 1
    model.stream().step(IDS[:, 0])
    model.verify()
    assert len(calls) == 1                # checked once per model
    np.testing.assert_array_equal(model.run(IDS)[0], first)


def test_verify_false_never_checks_and_eager_read_still_refuses(paths, monkeypatch):
    monkeypatch.setattr(fileformat, "verify_data", lambda mf: pytest.fail("data was checked"))
    assert rnnrt.load(paths[1], verify=False).run(IDS)[0].shape == (1, 3, V)
    monkeypatch.undo()
    with pytest.raises(rnnrt.FormatError, match="data CRC32 mismatch"):
        fileformat.read(paths[1])


def test_an_explicit_verify_checks_even_when_load_was_told_not_to(paths):
    unchecked = rnnrt.load(paths[1], verify=False)
    with pytest.raises(rnnrt.FormatError, match="data CRC32 mismatch"):
        unchecked.verify()
    rnnrt.load(paths[0], verify=False).verify()      # an intact file passes


def test_dask_predict_refuses_a_damaged_file_before_any_task(paths):
    dask_predict = pytest.importorskip("rnnrt.dask").predict
    with pytest.raises(rnnrt.FormatError, match="data CRC32 mismatch"):
        dask_predict(str(paths[1]), np.zeros((2, 3), np.int64))
