"""State snapshots: bit-identical continuation (here and in another process), refusal of
damaged, truncated, foreign and mismatched snapshots with an InputError naming the defect."""

import json
import os
import shutil
import struct
import subprocess
import sys
import uuid
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnnrt
import rnnrt.packing
from rnnrt import ir, snapshot
from strategies import make_recurrent

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build(tmp_path, seed=0, cell="lstm", H=6, I=3, proj=None):
    """Two stacked forward layers (the second with a projection when proj) + Dense."""
    rng = np.random.default_rng(seed)
    r1 = make_recurrent("r1", "gru", "forward", 5, I, rng, x="x", y="y1")
    r2 = make_recurrent("r2", cell, "forward", H, 5, rng, x="y1", y="y2", proj=proj)
    dense = ir.Dense("d", "y2", "out", rng.uniform(-.5, .5, (proj or H, 2)).astype(np.float32))
    g = ir.Graph([ir.TensorInfo("x", (None, None, I), "float32")], [r1, r2, dense], ["out"])
    return rnnrt.packing.save(g, tmp_path / f"{uuid.uuid4().hex}.rnnrt")


def inputs(n_steps, batch, seed=1):
    return np.random.default_rng(seed).uniform(-1, 1, (n_steps, batch, 3)).astype(np.float32)


@pytest.mark.parametrize("batch", [1, 3])
def test_resumed_stream_continues_bit_for_bit(batch, tmp_path):
    model = rnnrt.load(build(tmp_path, proj=4))
    xs = inputs(10, batch)
    s = model.stream(batch_size=batch)
    for x in xs[:4]:
        s.step(x)
    snap = s.snapshot()
    assert isinstance(snap, bytes)
    rest = [s.step(x) for x in xs[4:]]
    resumed = model.stream(batch_size=batch, state=snap)
    for x, want in zip(xs[4:], rest):
        np.testing.assert_array_equal(resumed.step(x), want)
    # The state setter takes a snapshot too.
    again = model.stream(batch_size=batch)
    again.state = snap
    np.testing.assert_array_equal(again.step(xs[4]), rest[0])


def test_pool_snapshots_resume_in_a_pool_or_a_stream(tmp_path):
    model = rnnrt.load(build(tmp_path))
    xs = inputs(8, 1, seed=2)
    pool = model.stream_pool(2)
    a = pool.open()
    for x in xs[:3]:
        pool.step([a], x)
    snap = pool.snapshot(a)
    rest = [pool.step([a], x) for x in xs[3:]]
    b = pool.open(state=snap)
    s = model.stream(state=snap)
    for x, want in zip(xs[3:], rest):
        np.testing.assert_array_equal(pool.step([b], x), want)
        np.testing.assert_array_equal(s.step(x), want)


_CHILD = """
import sys, numpy as np
sys.path.insert(0, {root!r})
import rnnrt
model = rnnrt.load(sys.argv[1])
snap = open(sys.argv[2], "rb").read()
xs = np.load(sys.argv[3])
s = model.stream(batch_size=xs.shape[1], state=snap)
np.save(sys.argv[4], np.stack([s.step(x) for x in xs]))
"""


def test_resume_in_another_process_from_a_copy_of_the_model(tmp_path):
    path = build(tmp_path)
    model = rnnrt.load(path)
    xs = inputs(9, 2, seed=3)
    s = model.stream(batch_size=2)
    for x in xs[:4]:
        s.step(x)
    (tmp_path / "snap.bin").write_bytes(s.snapshot())
    want = np.stack([s.step(x) for x in xs[4:]])
    # Another process, the model file copied elsewhere: the fingerprint comes from the
    # file's graph and tensor checksums, not its path.
    copy = tmp_path / "copy" / "model.rnnrt"
    copy.parent.mkdir()
    shutil.copy(path, copy)
    np.save(tmp_path / "xs.npy", xs[4:])
    subprocess.run([sys.executable, "-c", _CHILD.format(root=ROOT), str(copy),
                    str(tmp_path / "snap.bin"), str(tmp_path / "xs.npy"),
                    str(tmp_path / "got.npy")], check=True, timeout=60)
    np.testing.assert_array_equal(np.load(tmp_path / "got.npy"), want)


# ----------------------------------------------------------------------------- refusals

def snap_of(model, batch=1, steps=2):
    s = model.stream(batch_size=batch)
    for x in inputs(steps, batch):
        s.step(x)
    return s.snapshot()


def refused(model, data, batch=1):
    with pytest.raises(rnnrt.InputError) as err:
        model.stream(batch_size=batch, state=data)
    return str(err.value)


def test_damaged_snapshot_is_refused(tmp_path):
    model = rnnrt.load(build(tmp_path))
    snap = bytearray(snap_of(model))
    snap[-3] ^= 0x10                                     # a bit of the state data
    assert "damaged" in refused(model, bytes(snap)) and "CRC32" in refused(model, bytes(snap))


def test_truncated_snapshot_is_refused(tmp_path):
    model = rnnrt.load(build(tmp_path))
    snap = snap_of(model)
    assert "truncated" in refused(model, snap[:-4])
    assert "truncated" in refused(model, snap[:20])      # inside the preamble
    assert "appended" in refused(model, snap + b"\0")
    assert "empty" in refused(model, b"")


def test_snapshot_of_another_model_is_refused(tmp_path):
    mine = rnnrt.load(build(tmp_path, seed=0))
    same_shapes_other_weights = rnnrt.load(build(tmp_path, seed=1))
    other_shapes = rnnrt.load(build(tmp_path, seed=0, H=7))
    snap = snap_of(mine)
    assert "another model" in refused(same_shapes_other_weights, snap)
    assert "another model" in refused(other_shapes, snap)
    # A pool of the other model refuses it the same way.
    with pytest.raises(rnnrt.InputError, match="another model"):
        same_shapes_other_weights.stream_pool(1).open(state=snap)


def test_snapshot_of_another_batch_size_is_refused(tmp_path):
    model = rnnrt.load(build(tmp_path))
    snap3 = snap_of(model, batch=3)
    msg = refused(model, snap3, batch=1)
    assert "batch 3" in msg and "batch_size=3" in msg
    with pytest.raises(rnnrt.InputError, match="batch 3"):
        model.stream_pool(1).open(state=snap3)            # pool streams are batch 1
    model.stream(batch_size=3, state=snap3)               # its own batch size is fine


def test_foreign_and_newer_snapshots_are_refused(tmp_path):
    model = rnnrt.load(build(tmp_path))
    snap = snap_of(model)
    assert "not an rnnrt state snapshot" in refused(model, b"hello, world" * 4)
    with open(model.path, "rb") as f:
        path_bytes = f.read(64)
    assert "not an rnnrt state snapshot" in refused(model, path_bytes)   # a model file
    newer = snap[:8] + struct.pack("<I", snapshot.VERSION + 1) + snap[12:]
    assert "upgrade rnnrt" in refused(model, newer)
    for wrong in (3, [1, 2], "snapshot"):          # None means the zero state
        with pytest.raises(rnnrt.InputError, match="state must be"):
            model.stream(state=wrong)


def reseal(body_header: dict, data: bytes) -> bytes:
    """A snapshot with a header of our choosing and a valid CRC: what a buggy or hostile
    writer could produce."""
    header = json.dumps(body_header).encode()
    total = 28 + len(header) + len(data)
    body = struct.pack("<QI", total, len(header)) + header + data
    return snapshot.MAGIC + struct.pack("<II", 1, zlib.crc32(body)) + body


def test_well_sealed_but_inconsistent_snapshots_are_refused(tmp_path):
    model = rnnrt.load(build(tmp_path, H=4))
    fp = snapshot.fingerprint(model)
    arrays = [["r1.h", 5], ["r2.h", 4], ["r2.c", 4]]
    data = bytes(4 * 13)
    good = reseal({"fingerprint": fp, "batch": 1, "arrays": arrays}, data)
    model.stream(state=good)                                   # the control: accepted
    bad = [
        ({"fingerprint": fp, "batch": 1, "arrays": arrays[:2]}, data[:36], "holds arrays"),
        ({"fingerprint": fp, "batch": 1, "arrays": [["r1.h", 5], ["r2.h", 4], ["r2.x", 4]]},
         data, "holds arrays"),
        ({"fingerprint": fp, "batch": 1, "arrays": arrays}, data[:-4], "damaged"),
        ({"fingerprint": fp, "batch": 0, "arrays": arrays}, data, "malformed"),
        ({"fingerprint": fp, "batch": True, "arrays": arrays}, data, "malformed"),
        ({"fingerprint": 5, "batch": 1, "arrays": arrays}, data, "malformed"),
        ({"batch": 1, "arrays": arrays}, data, "malformed"),
    ]
    for header, payload, message in bad:
        assert message in refused(model, reseal(header, payload)), header
    body = struct.pack("<QI", 28 + 3, 3) + b"{x}"
    not_json = snapshot.MAGIC + struct.pack("<II", 1, zlib.crc32(body)) + body
    assert "not valid JSON" in refused(model, not_json)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_single_byte_change_is_refused_with_input_error(data, tmp_path_factory):
    model = _shared_model(tmp_path_factory)
    snap = bytearray(_shared_snapshot(model))
    at = data.draw(st.integers(0, len(snap) - 1), label="offset")
    snap[at] ^= data.draw(st.integers(1, 255), label="xor")
    with pytest.raises(rnnrt.InputError):
        model.stream(state=bytes(snap))


_cache = {}


def _shared_model(tmp_path_factory):
    if "model" not in _cache:
        _cache["model"] = rnnrt.load(build(tmp_path_factory.mktemp("snap"), proj=3))
    return _cache["model"]


def _shared_snapshot(model):
    if "snap" not in _cache:
        _cache["snap"] = snap_of(model)
    return _cache["snap"]


def test_fingerprint_ignores_location_and_metadata_but_not_weights(tmp_path):
    rng = np.random.default_rng(0)
    layer = make_recurrent("r", "gru", "forward", 4, 3, rng, x="x", y="y")
    g = ir.Graph([ir.TensorInfo("x", (None, None, 3), "float32")], [layer], ["y"])
    a = rnnrt.packing.save(g, tmp_path / "a.rnnrt")
    b = tmp_path / "elsewhere.rnnrt"
    shutil.copy(a, b)
    fa, fb = snapshot.fingerprint(rnnrt.load(a)), snapshot.fingerprint(rnnrt.load(b))
    assert fa == fb and len(fa) == 64
    g.metadata = {"source": "somewhere else"}             # converter metadata differs
    d = rnnrt.packing.save(g, tmp_path / "d.rnnrt")
    assert Path(d).read_bytes() != Path(a).read_bytes()
    assert snapshot.fingerprint(rnnrt.load(d)) == fa
    layer.R = layer.R.copy()
    layer.R[0, 0, 0] += 0.125
    c = rnnrt.packing.save(g, tmp_path / "c.rnnrt")
    assert snapshot.fingerprint(rnnrt.load(c)) != fa


def test_snapshot_of_a_model_without_state_is_an_input_error(tmp_path):
    """A model with no recurrent layer streams, but has no state to snapshot: InputError
    saying so, not a ValueError from inside (found by the fuzz harness)."""
    rng = np.random.default_rng(0)
    graph = ir.Graph([ir.TensorInfo("x", (None, None, 2), "float32")],
                     [ir.Dense("dense", "x", "y", rng.standard_normal((2, 3)).astype("f4"))],
                     ["y"])
    model = rnnrt.load(rnnrt.packing.save(graph, tmp_path / "dense.rnnrt"))
    stream = model.stream(batch_size=2)
    stream.step(np.ones((2, 2), np.float32))
    with pytest.raises(rnnrt.InputError, match="no state .* nothing to snapshot"):
        stream.snapshot()
    pool = model.stream_pool(2)
    with pytest.raises(rnnrt.InputError, match="nothing to snapshot"):
        pool.snapshot(pool.open())
