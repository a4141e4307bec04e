"""Stream state snapshots: the carried state of a stream as bytes, bound to its model.

Layout (snapshot v1, every integer little-endian):

    offset 0   magic          8 bytes  b"\\x89RNNST\\r\\n"
    offset 8   version        uint32   1
    offset 12  CRC32          uint32   zlib.crc32 of every byte from offset 16 to the end
    offset 16  total length   uint64   bytes in the whole snapshot
    offset 24  header length  uint32
    offset 28  header         UTF-8 JSON object:
                 {"fingerprint": "<64 hex digits>",   # the model's, see fingerprint()
                  "batch": B,                          # rows of every array
                  "arrays": [[key, width], ...]}       # Stream.state's keys, in order
    then       the arrays, float32 (B, width) each, C order, one after the other

The keys are "<layer>.h" / "<layer>.c", or the names a layer's h_state_key / c_state_key
give its states (an ONNX model's state inputs: "h0", "c0", "h0[1]"). They are part of the
model's graph, which the fingerprint covers: a file keeps the keys it was converted with
(files from before state keys keep "<layer>.h"), so its snapshots still resume, and the keys
needed no new snapshot version.

The state is stored exactly (float32 bits), so a stream resumed from a snapshot continues bit
for bit as the original would have. decode() trusts nothing: a short, damaged, foreign or
newer snapshot, or one taken from another model, raises InputError saying which.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib

import numpy as np

from .errors import InputError

MAGIC = b"\x89RNNST\r\n"
VERSION = 1
_PREAMBLE = struct.Struct("<8sIIQI")   # magic, version, CRC32, total length, header length
_CRC_FROM = 16                         # the CRC covers the lengths, header and data
_F32 = np.dtype("<f4")


def fingerprint(model) -> str:
    """SHA-256 (hex) of the model's graph and of each tensor's name, dtype, shape and CRC32,
    as the header of its .rnnrt file records them. The converter's metadata and the tensors'
    offsets are left out: the same model copied elsewhere, or written again, matches."""
    cached = model.__dict__.get("_snapshot_fingerprint")
    if cached is not None:
        return cached
    # The file's own header, from the model's mmap (the bytes the model runs on, not whatever
    # is at its path now); rnnrt/fileformat.py has the preamble: 8-byte magic, uint32 version,
    # uint32 header CRC32, uint64 header length, then the header.
    mm = model._file._mmap
    (header_len,) = struct.unpack_from("<Q", mm, 16)
    header = json.loads(bytes(mm[24:24 + header_len]).decode("utf-8"))
    table = {name: [e["dtype"], e["shape"], e["crc32"]]
             for name, e in sorted(header["tensors"].items())}
    doc = json.dumps({"graph": header["graph"], "tensors": table}, sort_keys=True,
                     separators=(",", ":"))
    value = hashlib.sha256(doc.encode("utf-8")).hexdigest()
    model._snapshot_fingerprint = value
    return value


def encode(model, arrays: dict) -> bytes:
    """Snapshot of `arrays` ({key: float32 (B, width)}, all with the same B) for `model`."""
    if not arrays:
        raise InputError("the model carries no state from one step to the next (it has no "
                         "recurrent layer): there is nothing to snapshot")
    batch = {a.shape[0] for a in arrays.values()}
    if len(batch) != 1:
        raise ValueError(f"state arrays must share their batch size, got {sorted(batch)}")
    header = json.dumps({"fingerprint": fingerprint(model), "batch": batch.pop(),
                         "arrays": [[key, int(a.shape[1])] for key, a in arrays.items()]},
                        separators=(",", ":")).encode("utf-8")
    data = b"".join(np.ascontiguousarray(a, _F32).tobytes() for a in arrays.values())
    total = _PREAMBLE.size + len(header) + len(data)
    body = _PREAMBLE.pack(MAGIC, VERSION, 0, total, len(header))[_CRC_FROM:] + header + data
    return MAGIC + struct.pack("<II", VERSION, zlib.crc32(body)) + body


def decode(model, data, widths: dict, batch=None) -> dict:
    """{key: float32 (B, width)} from a snapshot taken of `model`. widths: {key: width} the
    model's stream state has, in order; batch: the batch size it must have, or None (any)."""
    data = bytes(data)
    if not data:
        raise InputError("state snapshot is empty (0 bytes)")
    if len(data) < _PREAMBLE.size:
        if not MAGIC.startswith(data[:len(MAGIC)]):
            raise InputError(f"not an rnnrt state snapshot (it starts {data[:8]!r}, a snapshot "
                             f"starts {MAGIC!r})")
        raise InputError(f"state snapshot is {len(data)} bytes, shorter than its "
                         f"{_PREAMBLE.size}-byte preamble: truncated")
    magic, version, crc, total, header_len = _PREAMBLE.unpack_from(data)
    if magic != MAGIC:
        raise InputError(f"not an rnnrt state snapshot (it starts {magic!r}, a snapshot "
                         f"starts {MAGIC!r})")
    if version > VERSION:
        raise InputError(f"state snapshot is version {version}; this rnnrt reads up to "
                         f"version {VERSION}: upgrade rnnrt to resume it")
    if version < 1:
        raise InputError(f"state snapshot has an invalid version {version}: damaged")
    if len(data) != total:
        what = "truncated" if len(data) < total else "with bytes appended"
        raise InputError(f"state snapshot is {len(data)} bytes but says it is {total}: {what}"
                         f" (or damaged)")
    computed = zlib.crc32(data[_CRC_FROM:])
    if computed != crc:
        raise InputError(f"state snapshot is damaged: CRC32 {computed:#010x}, it records "
                         f"{crc:#010x}")
    header = _header(data, header_len)
    if header["fingerprint"] != fingerprint(model):
        raise InputError("state snapshot was taken from another model (its model fingerprint "
                         f"{header['fingerprint'][:16]}... is not this model's "
                         f"{fingerprint(model)[:16]}...)")
    got = {key: width for key, width in header["arrays"]}
    if list(got.items()) != list(widths.items()):
        raise InputError(f"state snapshot holds arrays {got}, this model's stream state is "
                         f"{widths}")
    B = header["batch"]
    if batch is not None and B != batch:
        raise InputError(f"state snapshot holds the state of batch {B}, but batch {batch} is "
                         f"needed here: resume it with a stream of batch_size={B}")
    offset = _PREAMBLE.size + header_len
    if total - offset != 4 * B * sum(widths.values()):
        raise InputError(f"state snapshot data is {total - offset} bytes, its header describes "
                         f"{4 * B * sum(widths.values())}: damaged")
    arrays = {}
    for key, width in widths.items():
        n = B * width
        arrays[key] = np.frombuffer(data, _F32, n, offset).reshape(B, width).astype(np.float32)
        offset += 4 * n
    return arrays


def _header(data: bytes, header_len: int) -> dict:
    """The JSON header, type-checked (the CRC matched, but it may have been written by
    anything)."""
    try:
        header = json.loads(data[_PREAMBLE.size:_PREAMBLE.size + header_len].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise InputError(f"state snapshot header is not valid JSON: {e}") from None
    ok = (isinstance(header, dict)
          and isinstance(header.get("fingerprint"), str)
          and type(header.get("batch")) is int and header["batch"] >= 1
          and isinstance(header.get("arrays"), list)
          and all(isinstance(a, list) and len(a) == 2 and isinstance(a[0], str)
                  and type(a[1]) is int and a[1] >= 1 for a in header["arrays"]))
    if not ok:
        raise InputError(f"state snapshot header is malformed: {header!r:.200}")
    return header
