"""A .rnnrt file as an editable document, and back to checksum-valid bytes.

A Doc holds the graph, the metadata and each tensor's dtype name, shape and raw bytes.
encode() lays the tensors out as rnnrt.fileformat.write does (64-byte aligned, in table
order) and computes every CRC32 and the preamble, so that the reader's checksums pass and
its structural checks, the planner and the engine see the edit. A mutation that lies in the
tensor table itself (a wrong offset, nbytes or shape) edits the laid-out table through
`table_edit`, before the header is serialized and checksummed.
"""

from __future__ import annotations

import json
import os
import tempfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from rnnrt import fileformat


@dataclass
class Tensor:
    dtype: str          # a header dtype name; mutations may set one the reader refuses
    shape: list         # as written in the header; mutations may set anything JSON holds
    data: bytes


@dataclass
class Doc:
    graph: dict
    metadata: dict
    tensors: dict                        # name -> Tensor, in file order
    version: int = fileformat.FORMAT_VERSION     # the preamble's
    header_version: object = None        # the header's format_version (None: = version)
    extra_header: dict = field(default_factory=dict)   # keys the reader does not expect

    def copy(self) -> "Doc":
        """A copy to mutate (the JSON parts through JSON: much faster than deepcopy)."""
        graph, metadata, extra = json.loads(json.dumps([self.graph, self.metadata,
                                                        self.extra_header]))
        return Doc(graph, metadata, {k: Tensor(t.dtype, list(t.shape), t.data)
                                     for k, t in self.tensors.items()},
                   self.version, self.header_version, extra)


def read(path) -> Doc:
    """A Doc of a valid .rnnrt file (a seed), read and checked by rnnrt's own reader."""
    mf = fileformat.read(path, verify=True)
    tensors = {}
    for name, arr in mf.tensors.items():
        tensors[name] = Tensor(fileformat._dtype_name(arr), list(arr.shape), arr.tobytes())
    return Doc(mf.graph, mf.metadata, tensors, mf.format_version)


def decode(raw: bytes) -> Doc:
    """A Doc of the bytes of a valid .rnnrt file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "seed.rnnrt")
        with open(path, "wb") as f:
            f.write(raw)
        return read(path)


def itemsize(dtype) -> int:
    """The item size of a dtype name, 1 for names the reader refuses."""
    dt = fileformat.DTYPES.get(dtype) if isinstance(dtype, str) else None
    return dt.itemsize if dt is not None else 1


def encode(doc: Doc, table_edit=None) -> bytes:
    """The file's bytes: tensors aligned, CRC32s and the preamble computed. table_edit(table)
    may change the laid-out table (name -> entry dict) in place before it is checksummed."""
    table, chunks, cursor = {}, [], 0
    for name, t in doc.tensors.items():
        offset = fileformat._align(cursor)
        chunks.append((offset, t.data))
        table[name] = {"dtype": t.dtype, "shape": t.shape, "offset": offset,
                       "nbytes": len(t.data), "crc32": zlib.crc32(t.data)}
        cursor = offset + len(t.data)
    if table_edit is not None:
        table_edit(table)
    header = {"format_version": doc.version if doc.header_version is None
              else doc.header_version,
              "graph": doc.graph, "tensors": table, "metadata": doc.metadata,
              **doc.extra_header}
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8",
                                                                                 "surrogatepass")
    data = bytearray(cursor)
    for offset, raw in chunks:
        data[offset:offset + len(raw)] = raw
    pre = fileformat._PREAMBLE.pack(fileformat.MAGIC, doc.version & 0xFFFFFFFF,
                                    zlib.crc32(text), len(text))
    pad = fileformat._align(fileformat.PREAMBLE_SIZE + len(text)) - fileformat.PREAMBLE_SIZE \
        - len(text)
    return pre + text + bytes(pad) + bytes(data)


def fix_header_crc(raw: bytes) -> bytes:
    """raw with the preamble's header CRC32 recomputed over the header its length names (so
    that a byte edit inside the header reaches the JSON parser); unchanged if too short."""
    if len(raw) < fileformat.PREAMBLE_SIZE:
        return raw
    magic, version, _, n = fileformat._PREAMBLE.unpack_from(raw, 0)
    end = fileformat.PREAMBLE_SIZE + n
    if end > len(raw):
        return raw
    return fileformat._PREAMBLE.pack(magic, version, zlib.crc32(raw[24:end]), n) + raw[24:]


def array(t: Tensor) -> np.ndarray | None:
    """The tensor as an array when its dtype and shape fit its bytes, else None."""
    dt = fileformat.DTYPES.get(t.dtype) if isinstance(t.dtype, str) else None
    if dt is None or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                             for d in t.shape):
        return None
    n = int(np.prod(t.shape, dtype=object)) if t.shape else 1
    if n * dt.itemsize != len(t.data):
        return None
    return np.frombuffer(t.data, dt).reshape(t.shape)
