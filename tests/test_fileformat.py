"""Tests for the .rnnrt container (rnnrt/fileformat.py).

The layout is checked with a small independent parser written from the spec (struct + json),
and damaged files are built by hand here, so these tests do not trust the writer to check
the reader or the other way round.
"""

import gc
import json
import mmap
import os
import re
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnnrt
from rnnrt import fileformat as ff
from rnnrt import _engine, packing
from strategies import recurrent_cases
from rnnrt.errors import FormatError

SPEC_MAGIC = b"\x89RNNRT\r\n"
FLIP_SETTINGS = settings(max_examples=150, deadline=None,
                         suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(autouse=True, params=["copy", "mmap"])
def read_path(request, monkeypatch):
    """Every test reads files both ways: copied into memory (files up to the threshold) and
    mmap'd under the SIGBUS guard (larger ones; RNNRT_PRIVATE_COPY_MAX_BYTES=0 forces it)."""
    if request.param == "mmap":
        monkeypatch.setenv("RNNRT_PRIVATE_COPY_MAX_BYTES", "0")
    else:
        monkeypatch.delenv("RNNRT_PRIVATE_COPY_MAX_BYTES", raising=False)
    return request.param


def sample_tensors():
    rng = np.random.default_rng(0)
    return {
        "w": rng.standard_normal((3, 5)).astype(np.float32),
        "ids": np.arange(-4, 7, dtype=np.int64),
        "lens": np.array([3, 1, 2], dtype=np.int32),
        "mask": np.array([[1, 0, 1], [0, 1, 1]], dtype=np.uint8),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "scalar": np.array(2.5, dtype=np.float32),
        "tail": np.array([255, 7, 9], dtype=np.uint8),
    }


GRAPH = {"inputs": [{"name": "x", "shape": [None, None, 5], "dtype": "float32"}],
         "layers": [{"op": "lstm", "hidden": 4, "clip": 1.5}], "outputs": ["y"]}
META = {"converter": "rnnrt 0.1.0", "source": {"kind": "keras", "file": "m.npz"}}


def put(path, data):
    """Write bytes to path by rename, so an older mmap of path is never truncated under us."""
    tmp = f"{path}.put"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return path


def parse(data):
    """Split a file's bytes as the spec describes: (version, crc, header dict, data start)."""
    magic, version, crc, hlen = struct.unpack_from("<8sIIQ", data, 0)
    assert magic == SPEC_MAGIC
    header = json.loads(data[24:24 + hlen].decode("utf-8"))
    data_start = -(-(24 + hlen) // 64) * 64
    return version, crc, header, data_start, hlen


def repack(data, header=None, *, header_bytes=None, magic=SPEC_MAGIC, version=3, crc=None,
           hlen=None):
    """Rebuild a file from `data` with a replaced header (correct CRC unless `crc` is given),
    keeping its data section byte for byte."""
    _, _, old_header, data_start, _ = parse(data)
    if header_bytes is None:
        header_bytes = json.dumps(old_header if header is None else header).encode("utf-8")
    pre = struct.pack("<8sIIQ", magic, version,
                      zlib.crc32(header_bytes) if crc is None else crc,
                      len(header_bytes) if hlen is None else hlen)
    body = pre + header_bytes
    body += bytes(-len(body) % 64)
    return body + data[data_start:]


@pytest.fixture
def good(tmp_path):
    """(path, bytes) of a valid file holding sample_tensors()."""
    path = ff.write(tmp_path / "good.rnnrt", GRAPH, sample_tensors(), META)
    with open(path, "rb") as f:
        return path, f.read()


def read_error(path, **kw):
    with pytest.raises(FormatError) as ei:
        ff.read(path, **kw)
    return str(ei.value)


def mutated(tmp_path, data, fn, **kw):
    """Write `data` with its header passed through fn(header) (in place) and return the path."""
    header = parse(data)[2]
    fn(header)
    return put(tmp_path / "bad.rnnrt", repack(data, header, **kw))


# ------------------------------------------------------------------ round trip and layout


def test_constants():
    assert ff.MAGIC == SPEC_MAGIC
    assert ff.FORMAT_VERSION == 3
    assert ff.ALIGNMENT == 64


def test_round_trip(tmp_path):
    tensors = sample_tensors()
    path = ff.write(tmp_path / "m.rnnrt", GRAPH, tensors, META)
    assert path == str(tmp_path / "m.rnnrt")
    mf = ff.read(path)
    assert mf.format_version == ff.FORMAT_VERSION
    assert mf.file_size == os.path.getsize(path)
    assert mf.graph == GRAPH
    assert mf.metadata == META
    assert list(mf.tensors) == list(tensors)
    for name, a in tensors.items():
        b = mf.tensors[name]
        assert b.dtype == a.dtype and b.shape == a.shape, name
        np.testing.assert_array_equal(b, a)
    assert mf.tensors["scalar"].ndim == 0 and mf.tensors["scalar"][()] == 2.5
    assert mf.tensors["empty"].size == 0


def test_round_trip_odd_layouts(tmp_path):
    """Big-endian and non-contiguous inputs come back as the same values, little-endian and
    C-contiguous; unicode names survive."""
    base = np.arange(24, dtype=np.int32).reshape(4, 6)
    tensors = {"be": np.arange(5, dtype=">i8"), "transposed": base.T,
               "strided": np.linspace(0, 1, 10, dtype=np.float32)[::3], "ünï/cøde": base[1:3]}
    mf = ff.read(ff.write(tmp_path / "m.rnnrt", {}, tensors, {}))
    for name, a in tensors.items():
        b = mf.tensors[name]
        np.testing.assert_array_equal(b, a)
        assert b.flags.c_contiguous and b.dtype.byteorder in "<|=", name
    assert mf.tensors["be"].dtype == np.dtype("<i8")


def test_no_tensors(tmp_path):
    path = ff.write(tmp_path / "m.rnnrt", {"g": 1}, {}, {"m": 2})
    mf = ff.read(path)
    assert mf.tensors == {} and mf.graph == {"g": 1} and mf.metadata == {"m": 2}
    data = open(path, "rb").read()
    data_start, hlen = parse(data)[3:]
    assert mf.file_size == data_start  # ends where data would start
    assert data_start > 24 + hlen, "test needs some padding after the header"
    msg = read_error(put(path, data[:-1]))
    assert f"data section starts at byte {data_start} but the file is {data_start - 1} bytes: " \
           "truncated" in msg


def test_layout_matches_spec(good):
    """Parse the writer's output by hand: preamble fields, header CRC, 64-byte alignment, raw
    little-endian bytes at each offset, zero padding, and the file ending at the last tensor."""
    path, data = good
    version, crc, header, data_start, hlen = parse(data)
    assert version == 3 and header["format_version"] == 3
    assert crc == zlib.crc32(data[24:24 + hlen])
    assert data_start % 64 == 0 and data_start >= 24 + hlen
    assert not any(data[24 + hlen:data_start])
    assert header["graph"] == GRAPH and header["metadata"] == META
    expected = sample_tensors()
    assert set(header["tensors"]) == set(expected)
    covered = np.zeros(len(data) - data_start, dtype=bool)
    for name, e in header["tensors"].items():
        a = expected[name]
        raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
        assert e["dtype"] == a.dtype.name and e["shape"] == list(a.shape)
        assert e["offset"] % 64 == 0, name
        assert e["nbytes"] == len(raw)
        start = data_start + e["offset"]
        assert data[start:start + e["nbytes"]] == raw, name
        assert e["crc32"] == zlib.crc32(raw)
        covered[e["offset"]:e["offset"] + e["nbytes"]] = True
    gaps = np.frombuffer(data, np.uint8)[data_start:][~covered]
    assert not gaps.any() and len(gaps) < 64 * len(expected)
    assert len(data) == max(data_start + e["offset"] + e["nbytes"]
                            for e in header["tensors"].values())


def _mmap_under(arr):
    """Follow an array's chain of bases down to the mapping that owns its memory: an
    anonymous mmap.mmap (a private copy) or a GuardedMap of the file."""
    obj = arr
    while not isinstance(obj, (mmap.mmap, _engine.GuardedMap)):
        obj = obj.obj if isinstance(obj, memoryview) else obj.base
        assert obj is not None, "array does not live on an mmap"
    return obj


def test_views_are_read_only_mmap_views(good, read_path):
    path, data = good
    mf = ff.read(path)
    data_start = parse(data)[3]
    header = parse(data)[2]
    mm = _mmap_under(mf.tensors["w"])
    assert isinstance(mm, mmap.mmap if read_path == "copy" else _engine.GuardedMap)
    assert mf.private_copy is (read_path == "copy")
    whole = np.frombuffer(mm, dtype=np.uint8)
    assert len(whole) == len(data)
    assert whole.ctypes.data % mmap.PAGESIZE == 0   # tensor offsets keep their alignment
    for name, t in mf.tensors.items():
        assert _mmap_under(t) is mm, name  # one mapping shared by every tensor
        assert not t.flags.writeable, name
        with pytest.raises(ValueError):
            t.setflags(write=True)
        if t.size:
            assert np.shares_memory(t, whole), name
            addr = t.__array_interface__["data"][0] - whole.__array_interface__["data"][0]
            assert addr == data_start + header["tensors"][name]["offset"], name
            with pytest.raises(ValueError):
                t.reshape(-1)[0] = 0
    assert not np.shares_memory(mf.tensors["w"], mf.tensors["ids"])


def test_views_outlive_the_model_file_and_the_path(good):
    path, _ = good
    mf = ff.read(path)
    w, tail = mf.tensors["w"], mf.tensors["tail"]
    del mf
    gc.collect()
    os.remove(path)  # the mapping keeps the inode alive
    gc.collect()
    np.testing.assert_array_equal(w, sample_tensors()["w"])
    np.testing.assert_array_equal(tail, [255, 7, 9])


def test_accepts_pathlike_and_overwrites(tmp_path):
    p = tmp_path / "m.rnnrt"
    ff.write(p, {}, {"a": np.ones(3, np.float32)}, {})
    ff.write(p, {}, {"b": np.zeros(2, np.int32)}, {})
    mf = ff.read(p)
    assert list(mf.tensors) == ["b"]
    assert sorted(os.listdir(tmp_path)) == ["m.rnnrt"]


# ------------------------------------------------------------------ writer validation, atomicity


@pytest.mark.parametrize("arr", [np.zeros(3, np.float64), np.zeros(3, bool),
                                 np.array([1, "a"], dtype=object), np.zeros(2, np.float16),
                                 np.zeros(2, np.complex64), np.array(["ab"]),
                                 np.zeros(2, np.uint16)],
                         ids=lambda a: str(a.dtype))
def test_write_rejects_unsupported_dtype(tmp_path, arr):
    with pytest.raises(FormatError, match=rf"tensor 'bad'.*unsupported dtype {arr.dtype}"):
        ff.write(tmp_path / "m.rnnrt", {}, {"ok": np.ones(2, np.float32), "bad": arr}, {})
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("graph, tensors, meta, msg", [
    ({}, {"": np.ones(1, np.float32)}, {}, "non-empty strings"),
    ({}, {3: np.ones(1, np.float32)}, {}, "non-empty strings"),
    ({}, {"a": [1.0, 2.0]}, {}, "must be a numpy.ndarray"),
    ({}, [("a", np.ones(1))], {}, "tensors must be a dict"),
    ([], {}, {}, "graph must be a dict"),
    ({}, {}, None, "metadata must be a dict"),
    ({"x": float("nan")}, {}, {}, "plain JSON"),
    ({}, {}, {"x": object()}, "plain JSON"),
    ({}, {"a": np.zeros((1,) * 33, np.uint8)}, {}, "33 dimensions"),
])
def test_write_rejects_bad_arguments(tmp_path, graph, tensors, meta, msg):
    with pytest.raises(FormatError, match=msg):
        ff.write(tmp_path / "m.rnnrt", graph, tensors, meta)
    assert os.listdir(tmp_path) == []


def _prior_file(tmp_path):
    """A valid file already at the target path, to check a failed write leaves it alone."""
    path = ff.write(tmp_path / "m.rnnrt", {"old": True}, {"a": np.arange(3, dtype=np.int32)}, {})
    with open(path, "rb") as f:
        return path, f.read()


@pytest.mark.parametrize("fail_at", range(1, 8))
@pytest.mark.parametrize("existing", [False, True])
def test_write_failing_midway_leaves_nothing(tmp_path, monkeypatch, fail_at, existing):
    """A write that dies after some bytes (disk full) removes its temp file and leaves the
    target as it was. 2 tensors: 3 writes (preamble, header, padding) + 2 per tensor."""
    if existing:
        path, before = _prior_file(tmp_path)
    calls = []
    real = ff._copy_into

    def flaky(f, buf):
        calls.append(1)
        if len(calls) == fail_at:
            f.write(bytes(memoryview(buf))[:len(memoryview(buf)) // 2])
            raise OSError(28, "No space left on device")
        real(f, buf)

    monkeypatch.setattr(ff, "_copy_into", flaky)
    tensors = {"a": np.ones(100, np.float32), "b": np.arange(7, dtype=np.int64)}
    with pytest.raises(OSError, match="No space"):
        ff.write(tmp_path / "m.rnnrt", {"new": True}, tensors, {})
    assert len(calls) == fail_at
    if existing:
        assert os.listdir(tmp_path) == ["m.rnnrt"]
        assert open(path, "rb").read() == before
        assert ff.read(path).graph == {"old": True}
    else:
        assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("step", ["fsync", "replace"])
def test_write_failing_at_fsync_or_rename_leaves_nothing(tmp_path, monkeypatch, step):
    path, before = _prior_file(tmp_path)
    seen = []

    def boom(*args):
        seen.append(args)
        raise OSError(5, f"{step} failed")

    monkeypatch.setattr(os, step, boom)
    with pytest.raises(OSError, match=f"{step} failed"):
        ff.write(path, {}, {"a": np.zeros(5, np.float32)}, {})
    monkeypatch.undo()
    assert seen, f"write never called os.{step}"
    assert os.listdir(tmp_path) == ["m.rnnrt"]
    assert open(path, "rb").read() == before


def test_write_into_missing_directory_raises_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        ff.write(tmp_path / "nope" / "m.rnnrt", {}, {}, {})
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ damaged files


def test_every_truncation_is_a_format_error(good, tmp_path):
    path, data = good
    for cut in range(len(data)):
        put(tmp_path / "cut.rnnrt", data[:cut])
        msg = read_error(tmp_path / "cut.rnnrt")
        assert "truncated" in msg, (cut, msg)
    assert ff.read(put(tmp_path / "cut.rnnrt", data)).tensors.keys() == sample_tensors().keys()


def _regions(data):
    """[(start, end, regex)] covering every byte of the file: the error a flip there gives."""
    _, _, header, data_start, hlen = parse(data)
    regions = [(0, 8, r"not an rnnrt file"),
               (8, 12, r"file is format v\d+; this rnnrt reads up to v3|invalid format version|"
                       r"header says format_version 3 but the preamble says"),
               (12, 16, r"header CRC32 mismatch"),
               (16, 24, r"header length \d+ runs past|header CRC32 mismatch"),
               (24, 24 + hlen, r"header CRC32 mismatch"),
               (24 + hlen, data_start, r"non-zero padding")]
    pos = data_start
    for name, e in sorted(header["tensors"].items(), key=lambda kv: kv[1]["offset"]):
        start = data_start + e["offset"]
        regions.append((pos, start, r"non-zero padding"))
        regions.append((start, start + e["nbytes"],
                        rf"tensor {re.escape(repr(name))}: data CRC32 mismatch"))
        pos = max(pos, start + e["nbytes"])
    assert pos == len(data)
    return [r for r in regions if r[1] > r[0]]


def _expected_for(data, pos):
    for lo, hi, rx in _regions(data):
        if lo <= pos < hi:
            return rx
    raise AssertionError(f"byte {pos} in no region")


def _flip(data, pos, bit):
    b = bytearray(data)
    b[pos] ^= 1 << bit
    return bytes(b)


@FLIP_SETTINGS
@given(pos=st.integers(0, 10**6), bit=st.integers(0, 7))
def test_any_bit_flip_is_caught(good, tmp_path, pos, bit):
    path, data = good
    pos %= len(data)
    p = put(tmp_path / "flip.rnnrt", _flip(data, pos, bit))
    assert re.search(_expected_for(data, pos), read_error(p)), pos


def test_bit_flip_in_every_byte(good, tmp_path):
    """The same, deterministically, once per byte of the file."""
    path, data = good
    assert {rx for _, _, rx in _regions(data)} >= {r"non-zero padding", r"header CRC32 mismatch"}
    for pos in range(len(data)):
        p = put(tmp_path / "flip.rnnrt", _flip(data, pos, pos % 8))
        msg = read_error(p)
        assert re.search(_expected_for(data, pos), msg), (pos, msg)


def test_verify_false_skips_data_checks_only(good, tmp_path):
    path, data = good
    _, _, header, data_start, hlen = parse(data)
    where = data_start + header["tensors"]["tail"]["offset"]
    p = put(tmp_path / "flip.rnnrt", _flip(data, where, 0))
    assert "tensor 'tail'" in read_error(p)
    assert ff.read(p, verify=False).tensors["tail"][0] == 254  # served as stored, unchecked
    p = put(tmp_path / "flip.rnnrt", _flip(data, 30, 0))
    assert "header CRC32 mismatch" in read_error(p, verify=False)


@pytest.mark.parametrize("head", [b"\x89PNG\r\n\x1a\n", b"PK\x03\x04\x14\x00\x00\x00",
                                  b"\x89RNNRT\n\n", b"GGUF\x03\x00\x00\x00"])
def test_wrong_magic(good, tmp_path, head):
    path, data = good
    p = put(tmp_path / "m.rnnrt", head + data[8:])
    msg = read_error(p)
    assert "not an rnnrt file" in msg and repr(head) in msg and str(p) in msg


@pytest.mark.parametrize("data", [b"\x00", b"hello", b"PK\x03", b"{\"format_version\": 1}"])
def test_short_garbage_is_not_an_rnnrt_file(tmp_path, data):
    assert "not an rnnrt file" in read_error(put(tmp_path / "g.rnnrt", data))


def test_empty_file_directory_missing_and_device(tmp_path):
    assert "truncated (empty file)" in read_error(put(tmp_path / "e.rnnrt", b""))
    assert "is a directory" in read_error(tmp_path)
    with pytest.raises(FileNotFoundError):
        ff.read(tmp_path / "missing.rnnrt")
    if os.path.exists("/dev/null"):
        assert "not a regular file" in read_error("/dev/null")


@pytest.mark.parametrize("version", [4, 7, 2**32 - 1])
def test_newer_version(good, tmp_path, version):
    path, data = good
    p = put(tmp_path / "v.rnnrt", repack(data, version=version))
    assert f"file is format v{version}; this rnnrt reads up to v3" in read_error(p)


def test_a_v2_file_still_reads(good, tmp_path):
    path, data = good
    header = parse(data)[2]
    p = put(tmp_path / "v2.rnnrt", repack(data, {**header, "format_version": 2}, version=2))
    assert ff.read(p).format_version == 2


def test_version_zero_and_header_version_mismatch(good, tmp_path):
    path, data = good
    assert "invalid format version 0" in read_error(put(tmp_path / "v.rnnrt",
                                                        repack(data, version=0)))
    p = mutated(tmp_path, data, lambda h: h.update(format_version=4))
    assert "header says format_version 4 but the preamble says 3" in read_error(p)


@pytest.mark.parametrize("hlen", [10**6, 2**63, 2**64 - 1])
def test_header_length_past_eof(good, tmp_path, hlen):
    path, data = good
    p = put(tmp_path / "h.rnnrt", repack(data, hlen=hlen))
    assert f"header length {hlen} runs past the end" in read_error(p)


def test_stored_header_crc_wrong(good, tmp_path):
    path, data = good
    p = put(tmp_path / "h.rnnrt", repack(data, crc=12345))
    assert "header CRC32 mismatch (stored 0x00003039" in read_error(p)


def _set(name, key, value):
    return lambda h: h["tensors"][name].__setitem__(key, value)


@pytest.mark.parametrize("fn, msg", [
    (_set("w", "dtype", "float64"), "tensor 'w': unsupported dtype 'float64'"),
    (_set("w", "dtype", 5), "tensor 'w': unsupported dtype 5"),
    (_set("w", "dtype", "<f4"), "unsupported dtype '<f4'"),
    (_set("w", "shape", [-3, -5]), "tensor 'w': negative dimension in shape [-3, -5]"),
    (_set("w", "shape", [5, 3, 1]), None),  # same size, different shape: allowed
    (_set("w", "shape", [5, 4]), "tensor 'w': nbytes mismatch"),
    (_set("w", "nbytes", 64), "tensor 'w': nbytes mismatch"),
    (_set("w", "shape", "3x5"), "tensor 'w': shape must be a list of ints"),
    (_set("w", "shape", [3.0, 5]), "shape must be a list of ints"),
    (_set("w", "shape", [True, 15]), "shape must be a list of ints"),
    (_set("w", "shape", 15), "shape must be a list of ints"),
    (_set("empty", "shape", [0, 2**62]),
     "tensor 'empty': shape [0, 4611686018427387904] is too large"),
    (_set("empty", "shape", [0] + [1] * 40), "shape has 41 dimensions; at most 32"),
    (_set("w", "offset", -64), "tensor 'w': offset must be a non-negative int"),
    (_set("w", "offset", "0"), "offset must be a non-negative int"),
    (_set("w", "nbytes", None), "nbytes must be a non-negative int"),
    (_set("w", "crc32", 2**32), "crc32 4294967296 does not fit in 32 bits"),
    (_set("w", "crc32", 1.5), "crc32 must be a non-negative int"),
    (_set("w", "extra", 1), "tensor 'w': entry must be an object with keys"),
    (lambda h: h["tensors"]["w"].pop("crc32"), "entry must be an object with keys"),
    (lambda h: h["tensors"].__setitem__("w", [1, 2]), "entry must be an object"),
    (lambda h: h["tensors"].__setitem__("", h["tensors"].pop("w")), "empty tensor name"),
    (lambda h: h.__setitem__("tensors", []), "header tensors must be a JSON object"),
    (lambda h: h.__setitem__("graph", "lstm"), "header graph must be a JSON object"),
    (lambda h: h.__setitem__("metadata", None), "header metadata must be a JSON object"),
    (lambda h: h.pop("metadata"), "header keys must be exactly"),
    (lambda h: h.__setitem__("extra", 1), "header keys must be exactly"),
    (lambda h: h.__setitem__("format_version", "1"), "format_version must be an int"),
])
def test_bad_tensor_table(good, tmp_path, fn, msg):
    path, data = good
    p = mutated(tmp_path, data, fn)
    if msg is None:
        assert ff.read(p).tensors["w"].shape == (5, 3, 1)
    else:
        assert msg in read_error(p)


def test_unaligned_offset(good, tmp_path):
    path, data = good
    p = mutated(tmp_path, data, lambda h: h["tensors"]["w"].__setitem__(
        "offset", h["tensors"]["w"]["offset"] + 4))
    assert "tensor 'w': offset" in read_error(p) and "not aligned to 64 bytes" in read_error(p)


def test_overlapping_offsets(good, tmp_path):
    path, data = good

    def overlap(h):  # put "lens" (12 bytes) inside "w" (60 bytes)
        h["tensors"]["lens"]["offset"] = h["tensors"]["w"]["offset"]

    msg = read_error(mutated(tmp_path, data, overlap))
    assert re.search(r"tensors '(w|lens)' and '(w|lens)' overlap", msg), msg


def test_empty_tensor_may_sit_anywhere_inside_the_data(good, tmp_path):
    path, data = good
    p = mutated(tmp_path, data, _set("empty", "offset", 0))
    assert ff.read(p).tensors["empty"].shape == (0, 4)


def test_tensor_past_end_of_file(good, tmp_path):
    path, data = good
    p = mutated(tmp_path, data, _set("tail", "offset", 64 * 1000))
    assert re.search(r"tensor 'tail' \(data bytes 64000\.\.64003\) runs past the end",
                     read_error(p))
    p = mutated(tmp_path, data, _set("w", "offset", 2**70))
    assert "tensor 'w'" in read_error(p) and "runs past the end" in read_error(p)


def test_trailing_bytes(good, tmp_path):
    path, data = good
    assert "5 unexpected bytes after the last tensor" in read_error(
        put(tmp_path / "t.rnnrt", data + b"\0" * 5))


def test_nonzero_header_padding(tmp_path):
    path = ff.write(tmp_path / "m.rnnrt", {}, {"a": np.ones(2, np.float32)}, {})
    data = open(path, "rb").read()
    _, _, _, data_start, hlen = parse(data)
    assert data_start > 24 + hlen, "test needs some padding after the header"
    msg = read_error(put(path, _flip(data, data_start - 1, 3)))
    assert f"non-zero padding between bytes {24 + hlen} and {data_start}" in msg
    assert ff.read(path, verify=False).tensors["a"].tolist() == [1.0, 1.0]


@pytest.mark.parametrize("header_bytes, msg", [
    (b"\xff\xfe{}", "not valid UTF-8 JSON"),
    (b"{\"format_version\": 1,", "not valid UTF-8 JSON"),
    (b"", "not valid UTF-8 JSON"),
    (b"[1, 2]", "header must be a JSON object, got list"),
    (b"\"text\"", "header must be a JSON object, got str"),
    (b"{\"format_version\":1,\"graph\":{},\"graph\":{},\"tensors\":{},\"metadata\":{}}",
     "duplicate key 'graph'"),
    (b"{\"format_version\":1,\"graph\":{\"x\":NaN},\"tensors\":{},\"metadata\":{}}",
     "NaN is not valid JSON"),
    (b"[" * 100000 + b"]" * 100000, "not valid UTF-8 JSON"),
])
def test_bad_header_json(good, tmp_path, header_bytes, msg):
    path, data = good
    p = put(tmp_path / "j.rnnrt", repack(data, header_bytes=header_bytes))
    assert msg in read_error(p)


# ------------------------------------------------------------------ fuzzing: never another error

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=4),
    max_leaves=10)


@FLIP_SETTINGS
@given(which=st.sampled_from(["w", "empty", "scalar", "tail"]),
       key=st.sampled_from(["dtype", "shape", "offset", "nbytes", "crc32"]),
       value=json_values | st.lists(st.integers(-3, 2**64), max_size=4)
       | st.integers(-200, 2000).map(lambda n: 64 * n))
def test_random_header_fields_never_crash(good, tmp_path, which, key, value):
    path, data = good
    p = mutated(tmp_path, data, _set(which, key, value))
    try:
        mf = ff.read(p)
    except FormatError:
        return
    for name, t in mf.tensors.items():  # accepted: then it must be a self-consistent file
        assert t.nbytes == parse(data)[2]["tensors"][name]["nbytes"] or name == which


@FLIP_SETTINGS
@given(tail=st.binary(max_size=300), prefix=st.sampled_from(
    [b"", SPEC_MAGIC, SPEC_MAGIC + struct.pack("<I", 1),
     SPEC_MAGIC + struct.pack("<IIQ", 1, 0, 2)]))
def test_garbage_is_always_a_format_error(tmp_path, tail, prefix):
    p = put(tmp_path / "garbage.rnnrt", prefix + tail)
    with pytest.raises(FormatError):
        ff.read(p)


def v1_document(graph):
    """The graph document and tensors format v1 stored: row-major Wt (I, D*G*H) and
    Rt (D, S, G*H) in place of v2's gate panels; everything else the same."""
    doc, tensors = packing.graph_document(graph)
    for spec, layer in zip(doc["layers"], graph.layers):
        if layer.kind == "Recurrent":
            params = spec["params"]
            del tensors[params.pop("Wp")], tensors[params.pop("Rp")]
            params["Wt"], params["Rt"] = f"{layer.name}.Wt", f"{layer.name}.Rt"
            W = layer.W.astype(np.float32)
            tensors[params["Wt"]] = np.concatenate(list(W.transpose(0, 2, 1)), axis=1)
            tensors[params["Rt"]] = np.ascontiguousarray(
                layer.R.astype(np.float32).transpose(0, 2, 1))
    return doc, tensors


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=recurrent_cases())
def test_format_v1_files_load_and_run_like_v2(case, tmp_path, monkeypatch):
    v2 = rnnrt.load(packing.save(case.graph, tmp_path / "v2.rnnrt"), num_threads=1)
    doc, tensors = v1_document(case.graph)
    monkeypatch.setattr(ff, "FORMAT_VERSION", 1)
    path = ff.write(str(tmp_path / "v1.rnnrt"), doc, tensors, {})
    monkeypatch.undo()
    v1 = rnnrt.load(path, num_threads=1)
    assert v1._file.format_version == 1
    for got, want in zip(v1.run(case.feeds), v2.run(case.feeds)):
        np.testing.assert_array_equal(got, want)


def test_a_file_written_by_the_v1_writer_loads_and_matches_the_reference():
    # tests/fixtures/v1: written by rnnrt at format v1 (tools/make_v1_fixture.py), with the
    # NumPy reference's outputs: a bidirectional LSTM with projection, then a GRU.
    fixtures = os.path.join(os.path.dirname(__file__), "fixtures", "v1")
    model = rnnrt.load(os.path.join(fixtures, "model.rnnrt"), num_threads=1)
    assert model._file.format_version == 1
    io = np.load(os.path.join(fixtures, "io.npz"))
    y, h_n = model.run(io["x"])
    np.testing.assert_allclose(y, io["y"], atol=1e-5)
    np.testing.assert_allclose(h_n, io["h_n"], atol=1e-5)
