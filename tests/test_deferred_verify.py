"""load() checks structure at once and the tensors' CRC32s before the first computation:
a damaged tensor must stop every way of computing with FormatError, never give numbers.
Each test runs for a file copied into memory (the CRC32s computed as it is read, their
verdict deferred) and for a mapped one (RNNRT_PRIVATE_COPY_MAX_BYTES=0: the pass deferred)."""
import pathlib

import numpy as np
import pytest

import rnnrt
from rnnrt import fileformat, ir, packing
from strategies import make_recurrent

V, E, H = 5, 3, 4


@pytest.fixture(autouse=True, params=["copy", "mmap"])
def read_path(request, monkeypatch):
    if request.param == "mmap":
        monkeypatch.setenv("RNNRT_PRIVATE_COPY_MAX_BYTES", "0")
    else:
        monkeypatch.delenv("RNNRT_PRIVATE_COPY_MAX_BYTES", raising=False)
    return request.param


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


def test_the_data_pass_is_made_once_before_the_first_computation(paths, monkeypatch,
                                                                 read_path):
    # A copy is checksummed as it is read, by load; a mapping before its first computation.
    passes = []
    real = fileformat._data_problem
    monkeypatch.setattr(fileformat, "_data_problem",
                        lambda *args: passes.append(args) or real(*args))
    model = rnnrt.load(paths[0])
    assert len(passes) == (1 if read_path == "copy" else 0)
    first = model.run(IDS)[0]
    model.stream().step(IDS[:, 0])
    model.stream_pool(2)
    assert len(passes) == 1
    model.verify()
    # A copy cannot change: it keeps its verdict. A mapped file can: it is checked again.
    assert len(passes) == (1 if read_path == "copy" else 2)
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
