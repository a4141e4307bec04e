"""The .rnnrt file container: a JSON header plus aligned raw tensors, read through mmap.

Layout (format v3, every integer little-endian; v1 and v2 are the same container, and differ
only in their graphs: v1 lays out recurrent weights row-major, v2 in gate panels, and v3 adds
a Recurrent attribute (empty_state) that a v2 reader would ignore and compute otherwise with;
rnnrt/plan.py reads all three):

    offset 0   magic            8 bytes  b"\\x89RNNRT\\r\\n"
    offset 8   format version   uint32   3
    offset 12  header CRC32     uint32   zlib.crc32 of the header bytes
    offset 16  header length    uint64   number of header bytes
    offset 24  header           UTF-8 JSON object:
                 {"format_version": 3,
                  "graph":    {...},   # the IR; opaque to this module
                  "tensors":  {name: {"dtype": "float32" | "int32" | "int64" | "uint8",
                                      "shape": [int, ...],
                                      "offset": int,   # from the start of the data section
                                      "nbytes": int,
                                      "crc32": int}},
                  "metadata": {...}}   # converter version, source; opaque
    then       zero bytes up to the data section, which starts at the first multiple of
               ALIGNMENT after the header; each tensor starts at a multiple of ALIGNMENT
               from there, C-contiguous and little-endian; gaps are zero bytes; the file
               ends where the last tensor ends.

The magic, like PNG's, starts with a non-ASCII byte and holds a CR LF pair so that a text-mode
transfer that mangles line endings is caught at once.

The reader trusts nothing in the file: every length, offset, shape and dtype is checked
against the file before use and any defect raises FormatError, whatever the bytes are.

A loaded model must survive its file being changed under it (`cp new.rnnrt live.rnnrt`
truncates the live file, then writes into it). A file up to private_copy_max_bytes() is
read into anonymous memory the model owns, in one pass that also computes the CRC32s: a
later truncation or overwrite of the file changes nothing. A larger one is mmap'd under the
SIGBUS guard (src_c/mapguard.c, GuardedMap in rnnrt/_engine.pyx): a fault reading a
truncated file becomes FormatError, and verify_data checks such a file again at every call.
"""

import errno
import json
import math
import mmap
import os
import stat
import struct
import sys
import zlib
from dataclasses import dataclass, field

import numpy as np

from . import _blas  # noqa: F401  (loads OpenBLAS first; must precede _engine)
from . import _engine
from .errors import FormatError, InputError

MAGIC = b"\x89RNNRT\r\n"
FORMAT_VERSION = 3     # v3: Recurrent.empty_state; v2: weights in gate panels (rnnrt/panels.py)
ALIGNMENT = 64

_PREAMBLE = struct.Struct("<8sIIQ")  # magic, version, header CRC32, header length
PREAMBLE_SIZE = _PREAMBLE.size  # 24

# Name in the header -> little-endian NumPy dtype.
DTYPES = {
    "float32": np.dtype("<f4"),
    "int32": np.dtype("<i4"),
    "int64": np.dtype("<i8"),
    "uint8": np.dtype("u1"),
}
_MAX_NDIM = 32  # NumPy 1.x's limit; a file must load under any supported NumPy
_TOP_KEYS = ("format_version", "graph", "tensors", "metadata")
_TENSOR_KEYS = ("dtype", "shape", "offset", "nbytes", "crc32")

# Files up to this size are copied into memory the model owns; larger ones stay mmap'd
# under the SIGBUS guard. Reading a copy and checksumming it costs 1.3-1.6x the CRC pass
# over a mapped file (40 ms against 30 ms for 50 MB, 200 against 130 for 200 MB), with the
# same peak RSS (benchmarks/private_copy.py); but a copy is the process's own: N worker
# processes hold N copies where mapped files share one in the page cache, and the kernel
# cannot drop it under memory pressure. The bound keeps that duplication small.
PRIVATE_COPY_MAX_BYTES = 256 << 20
PRIVATE_COPY_ENV = "RNNRT_PRIVATE_COPY_MAX_BYTES"   # overrides it, read at each load
_CHUNK = 256 << 10  # a copy is read and checksummed in pieces that stay in cache in between


@dataclass
class ModelFile:
    """A parsed .rnnrt file. Each array in `tensors` is a read-only view onto the model's
    bytes: a private copy of the file, or (`guard` set) a guarded mmap of it; those bytes
    stay for as long as any of those arrays, or this object, lives."""

    path: str
    format_version: int
    file_size: int
    graph: dict
    metadata: dict
    tensors: dict = field(repr=False)
    header_crc: int = 0      # CRC32 of the header, which lists every tensor's CRC32
    # The GuardedMap of the file the tensors live in; None: they live in a private copy.
    guard: object = field(default=None, repr=False)
    _mmap: object = field(default=None, repr=False)     # a read-only memoryview of the bytes
    # (header end, data start, [(offset, nbytes, name, crc32)]): what verify_data checks.
    _layout: tuple = field(default=(), repr=False)
    # What verify_data found: None (not checked yet), "" (intact) or what is wrong.
    _data_problem: object = field(default=None, repr=False)

    @property
    def private_copy(self) -> bool:
        """True when the tensors live in memory of the model's own, which no change to the
        file can reach."""
        return self.guard is None


def _align(n):
    return -(-n // ALIGNMENT) * ALIGNMENT


def _is_int(v):
    # bool is a subclass of int, but true/false in a header is never a valid count.
    return isinstance(v, int) and not isinstance(v, bool)


def _shape_too_big(shape, itemsize):
    # NumPy refuses shapes whose product of non-zero dims times itemsize overflows intp,
    # even when another dim is 0; refuse them here, as a FormatError, before NumPy does.
    return math.prod(max(d, 1) for d in shape) * itemsize > sys.maxsize


# --------------------------------------------------------------------------- writing


def _dtype_name(arr):
    """The header name of arr's dtype (either byte order), or None if not supported."""
    for name, dt in DTYPES.items():
        if arr.dtype.kind == dt.kind and arr.dtype.itemsize == dt.itemsize:
            return name
    return None


def _prepare_tensors(tensors):
    """Validate tensors; return [(name, dtype name, C-contiguous little-endian array)]."""
    if not isinstance(tensors, dict):
        raise FormatError(f"tensors must be a dict of name -> ndarray, "
                          f"got {type(tensors).__name__}")
    out = []
    for name, arr in tensors.items():
        if not isinstance(name, str) or not name:
            raise FormatError(f"tensor names must be non-empty strings, got {name!r}")
        if not isinstance(arr, np.ndarray):
            raise FormatError(f"tensor {name!r} must be a numpy.ndarray, got {type(arr).__name__}")
        dname = _dtype_name(arr)
        if dname is None:
            raise FormatError(f"tensor {name!r} has unsupported dtype {arr.dtype}; "
                              f"supported: {', '.join(DTYPES)}")
        if arr.ndim > _MAX_NDIM:
            raise FormatError(f"tensor {name!r} has {arr.ndim} dimensions; at most {_MAX_NDIM}")
        # asarray, not ascontiguousarray: the latter turns a 0-d array into shape (1,)
        out.append((name, dname, np.asarray(arr, dtype=DTYPES[dname], order="C")))
    return out


def _copy_into(f, buf):
    """Write buf (a bytes-like object) to f. A seam of its own so tests can make it fail."""
    f.write(buf)


def _encode_header(header):
    try:
        text = json.dumps(header, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as e:  # UnicodeEncodeError is a ValueError
        raise FormatError(f"graph, metadata and tensor names must be plain JSON data: "
                          f"{e}") from None


def write(path, graph, tensors, metadata):
    """Write a .rnnrt file at `path` and return path (as a str).

    The bytes go to a temporary file in the same directory, which is fsynced and then renamed
    over `path`; on any failure the temporary file is removed and `path` is left as it was.
    Tensors are stored C-contiguous and little-endian whatever their layout in memory.
    """
    path = os.fspath(path)
    if not isinstance(graph, dict):
        raise FormatError(f"graph must be a dict, got {type(graph).__name__}")
    if not isinstance(metadata, dict):
        raise FormatError(f"metadata must be a dict, got {type(metadata).__name__}")
    # Name the destination, not the temporary file that would fail to be created.
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, "no such directory to write the model into",
                                directory)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "the destination is a directory", path)
    prepared = _prepare_tensors(tensors)

    table, cursor = {}, 0
    for name, dname, arr in prepared:
        offset = _align(cursor)
        table[name] = {"dtype": dname, "shape": list(arr.shape), "offset": offset,
                       "nbytes": arr.nbytes, "crc32": zlib.crc32(arr)}
        cursor = offset + arr.nbytes
    header = _encode_header({"format_version": FORMAT_VERSION, "graph": graph,
                             "tensors": table, "metadata": metadata})
    data_start = _align(PREAMBLE_SIZE + len(header))

    tmp, fd = _create_temp(directory, os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            _copy_into(f, _PREAMBLE.pack(MAGIC, FORMAT_VERSION, zlib.crc32(header), len(header)))
            _copy_into(f, header)
            _copy_into(f, bytes(data_start - PREAMBLE_SIZE - len(header)))
            pos = 0  # position within the data section
            for name, _, arr in prepared:
                _copy_into(f, bytes(table[name]["offset"] - pos))
                _copy_into(f, memoryview(arr.reshape(-1).view(np.uint8)))
                pos = table[name]["offset"] + arr.nbytes
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)  # make the rename itself durable
    return path


def _create_temp(directory, base):
    """Create an exclusively new file next to the target; return (its path, open fd).
    Mode 0o666 lets the umask decide permissions, as for any new file."""
    while True:
        tmp = os.path.join(directory, f".{base}.{os.urandom(6).hex()}.tmp")  # unguessable
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not supported on this platform / filesystem; the data itself is synced
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- reading


def read(path, *, verify=True, checksums=None):
    """Open a .rnnrt file, check it and return a ModelFile whose tensors are read-only views
    onto the model's bytes: a private copy of the file when it is at most
    private_copy_max_bytes(), else a guarded mmap of it. verify=True also checks each
    tensor's CRC32 and that padding is zero (verify_data); structural checks always run.
    checksums (default: verify) computes the CRC32s of a copied file while it is read, in
    the same pass, so that a later verify_data gives their verdict at no further cost.

    Raises FileNotFoundError if there is no such file, FormatError for anything else wrong.
    """
    path = os.fspath(path)
    src = _FileBytes(path)
    try:
        mf = _parse(path, src)
        if (verify if checksums is None else checksums) and mf.private_copy:
            mf._data_problem = _data_problem(mf._mmap, mf._layout, src.fill)
        src.fill(src.size)
    except FormatError:
        if src.guard is not None:
            src.guard.check()   # a fault while reading explains the defect better
        raise
    finally:
        src.close()
    if src.guard is not None:
        src.guard.check()
    if verify:
        verify_data(mf)
    return mf


def _parse(path, src):
    """The ModelFile of the bytes in src, checked, for read."""
    mm, size = src.view, src.size
    where = f"{path}:"
    src.fill(PREAMBLE_SIZE)
    if size < PREAMBLE_SIZE:
        head = bytes(mm[:size])
        if not MAGIC.startswith(head[:len(MAGIC)]):
            raise FormatError(f"{where} not an rnnrt file (magic {head[:len(MAGIC)]!r}, "
                              f"expected {MAGIC!r})")
        raise FormatError(f"{where} file is {size} bytes, shorter than the "
                          f"{PREAMBLE_SIZE}-byte preamble: truncated"
                          + (" (empty file)" if size == 0 else ""))

    magic, version, header_crc, header_len = _PREAMBLE.unpack_from(mm, 0)
    if magic != MAGIC:
        raise FormatError(f"{where} not an rnnrt file (magic {magic!r}, expected {MAGIC!r})")
    if version > FORMAT_VERSION:
        raise FormatError(f"{where} file is format v{version}; this rnnrt reads up to "
                          f"v{FORMAT_VERSION}: upgrade rnnrt to load it")
    if version < 1:
        raise FormatError(f"{where} invalid format version {version}")
    if header_len > size - PREAMBLE_SIZE:
        raise FormatError(f"{where} header length {header_len} runs past the end of the "
                          f"{size}-byte file: truncated or corrupt")

    src.fill(PREAMBLE_SIZE + header_len)
    header_bytes = bytes(mm[PREAMBLE_SIZE:PREAMBLE_SIZE + header_len])
    if zlib.crc32(header_bytes) != header_crc:
        raise FormatError(f"{where} header CRC32 mismatch (stored {header_crc:#010x}, computed "
                          f"{zlib.crc32(header_bytes):#010x}): header is corrupt")
    header = _parse_header(header_bytes, where)
    if header["format_version"] != version:
        raise FormatError(f"{where} header says format_version {header['format_version']} "
                          f"but the preamble says {version}")

    data_start = _align(PREAMBLE_SIZE + header_len)
    if data_start > size:
        raise FormatError(f"{where} data section starts at byte {data_start} but the file is "
                          f"{size} bytes: truncated")
    entries = _check_layout(header["tensors"], size - data_start, where)
    views = {}
    for name, e in header["tensors"].items():   # a copy's views fill in as it is read
        dt = DTYPES[e["dtype"]]
        arr = np.frombuffer(mm, dtype=dt, count=e["nbytes"] // dt.itemsize,
                            offset=data_start + e["offset"])
        views[name] = arr.reshape(tuple(e["shape"]))
    return ModelFile(path=path, format_version=version, file_size=size, graph=header["graph"],
                     metadata=header["metadata"], tensors=views, header_crc=header_crc,
                     guard=src.guard, _mmap=mm,
                     _layout=(PREAMBLE_SIZE + header_len, data_start, entries))


def verify_data(mf: ModelFile):
    """Check every tensor's CRC32 and that all padding is zero: the one pass over the data
    that read(verify=True) makes, for a file read with verify=False. FormatError if not.

    A private copy cannot change: it is checked once (by read with checksums, or by the
    first call here) and later calls give the same verdict. A mapped file can change under
    the model: it is checked again at every call, header included, and a fault during the
    pass (the file was truncated) or a mismatch where an earlier pass found none (it was
    overwritten) is reported as the file changed while loaded."""
    if mf.private_copy:
        if mf._data_problem is None:
            mf._data_problem = _data_problem(mf._mmap, mf._layout)
        if mf._data_problem:
            raise FormatError(f"{mf.path}: {mf._data_problem}")
        return
    header_end = mf._layout[0]
    problem = _data_problem(mf._mmap, mf._layout)
    if not problem and zlib.crc32(mf._mmap[PREAMBLE_SIZE:header_end]) != mf.header_crc:
        problem = "the header differs from the one loaded"
    mf.guard.check()
    if problem and mf._data_problem == "":
        raise FormatError(_changed_message(mf.path, f"the file was overwritten while loaded "
                                                    f"({problem})"))
    if problem:
        raise FormatError(f"{mf.path}: {problem}")
    mf._data_problem = ""


def _changed_message(path, what):
    return (f"{path}: {what}; replace a live model by writing a new file and renaming it "
            f"over the old one, as rnnrt.convert does")


def private_copy_max_bytes() -> int:
    """Files up to this many bytes are copied into memory the model owns; larger ones are
    mmap'd under the guard. RNNRT_PRIVATE_COPY_MAX_BYTES, read at each load, overrides the
    default PRIVATE_COPY_MAX_BYTES (0: map every file)."""
    text = os.environ.get(PRIVATE_COPY_ENV)
    if text is None:
        return PRIVATE_COPY_MAX_BYTES
    try:
        limit = int(text)
    except ValueError:
        limit = -1
    if limit < 0:
        raise InputError(f"{PRIVATE_COPY_ENV} must be a byte count (an int >= 0), "
                         f"got {text!r}")
    return limit


class _FileBytes:
    """A file's bytes as a model will hold them, for read: `view`, a read-only memoryview of
    a private copy (anonymous memory, page-aligned) or of a guarded mapping (`guard`).
    A copy is read in order by fill(), in step with the checks that read it."""

    def __init__(self, path):
        self.path = path
        st = os.stat(path)  # FileNotFoundError propagates, as documented
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise FormatError(f"{path}: is {kind}, not an rnnrt file")
        try:
            self._file = open(path, "rb", buffering=0)
        except IsADirectoryError:  # replaced by a directory since the stat
            raise FormatError(f"{path}: is a directory, not an rnnrt file") from None
        try:
            self.size = os.fstat(self._file.fileno()).st_size
            self.guard = None
            if self.size > private_copy_max_bytes():
                damaged = _changed_message(path, "the file was truncated while loaded")
                self.guard = _engine.map_guarded(self._file.fileno(), self.size, damaged)
            self.filled = self.size
            if self.guard is not None:
                self.view = memoryview(self.guard)
            elif self.size == 0:
                self.view = memoryview(b"")     # mmap refuses length 0
            else:  # a copy; also when the guard cannot take another mapping (mapguard.h)
                self._into = memoryview(mmap.mmap(-1, self.size, flags=mmap.MAP_PRIVATE))
                self.view = self._into.toreadonly()
                self.filled = 0
        except BaseException:
            self._file.close()
            raise

    def fill(self, end):
        """Read the copy on up to byte `end` (a mapping has every byte already)."""
        end = min(end, self.size)
        while self.filled < end:
            n = self._file.readinto(self._into[self.filled:end])
            if not n:
                raise FormatError(_changed_message(
                    self.path, f"the file was cut to {self.filled} bytes while it was read "
                               f"(it had {self.size})"))
            self.filled += n

    def close(self):
        self._file.close()     # a mapping stays valid without it
        self._into = None      # no one writes into a copy once read


def _reject_duplicates(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise ValueError(f"duplicate key {k!r}")
        obj[k] = v
    return obj


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def _parse_header(header_bytes, where):
    try:
        header = json.loads(header_bytes.decode("utf-8"), object_pairs_hook=_reject_duplicates,
                            parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise FormatError(f"{where} header is not valid UTF-8 JSON: {e}") from None
    if not isinstance(header, dict):
        raise FormatError(f"{where} header must be a JSON object, got {type(header).__name__}")
    if sorted(header) != sorted(_TOP_KEYS):
        raise FormatError(f"{where} header keys must be exactly {list(_TOP_KEYS)}, "
                          f"got {sorted(header)}")
    if not _is_int(header["format_version"]):
        raise FormatError(f"{where} header format_version must be an int")
    for key in ("graph", "tensors", "metadata"):
        if not isinstance(header[key], dict):
            raise FormatError(f"{where} header {key} must be a JSON object, "
                              f"got {type(header[key]).__name__}")
    for name, e in header["tensors"].items():
        _check_entry(name, e, where)
    return header


def _check_entry(name, e, where):
    """Type-check one tensor-table entry and its internal consistency."""
    t = f"{where} tensor {name!r}:"
    if not name:
        raise FormatError(f"{where} empty tensor name")
    if not isinstance(e, dict) or sorted(e) != sorted(_TENSOR_KEYS):
        got = sorted(e) if isinstance(e, dict) else type(e).__name__
        raise FormatError(f"{t} entry must be an object with keys {list(_TENSOR_KEYS)}, got {got}")
    if not isinstance(e["dtype"], str) or e["dtype"] not in DTYPES:
        raise FormatError(f"{t} unsupported dtype {e['dtype']!r}; supported: {', '.join(DTYPES)}")
    shape = e["shape"]
    if not isinstance(shape, list) or not all(_is_int(d) for d in shape):
        raise FormatError(f"{t} shape must be a list of ints, got {shape!r}")
    if any(d < 0 for d in shape):
        raise FormatError(f"{t} negative dimension in shape {shape}")
    if len(shape) > _MAX_NDIM:
        raise FormatError(f"{t} shape has {len(shape)} dimensions; at most {_MAX_NDIM}")
    for key in ("offset", "nbytes", "crc32"):
        if not _is_int(e[key]) or e[key] < 0:
            raise FormatError(f"{t} {key} must be a non-negative int, got {e[key]!r}")
    if e["crc32"] > 0xFFFFFFFF:
        raise FormatError(f"{t} crc32 {e['crc32']} does not fit in 32 bits")
    itemsize = DTYPES[e["dtype"]].itemsize
    if _shape_too_big(shape, itemsize):
        raise FormatError(f"{t} shape {shape} is too large")
    if math.prod(shape) * itemsize != e["nbytes"]:
        raise FormatError(f"{t} nbytes mismatch: shape {shape} of {e['dtype']} is "
                          f"{math.prod(shape) * itemsize} bytes, header says {e['nbytes']}")
    if e["offset"] % ALIGNMENT:
        raise FormatError(f"{t} offset {e['offset']} is not aligned to {ALIGNMENT} bytes")


def _check_layout(table, data_size, where):
    """Check tensors lie inside the data section without overlapping and that the file ends
    where the last one does. Returns [(offset, nbytes, name, crc32)] sorted by offset."""
    entries = sorted((e["offset"], e["nbytes"], name, e["crc32"]) for name, e in table.items())
    for off, n, name, _ in entries:
        if off + n > data_size:
            raise FormatError(f"{where} tensor {name!r} (data bytes {off}..{off + n}) runs past "
                              f"the end of the file (data section is {data_size} bytes): "
                              f"truncated or corrupt")
    end, prev = 0, None  # end of the furthest non-empty tensor so far, and its name
    for off, n, name, _ in entries:
        if n == 0:
            continue  # an empty tensor occupies no bytes, so it overlaps nothing
        if off < end:
            raise FormatError(f"{where} tensors {prev!r} and {name!r} overlap "
                              f"(data byte {off} < {end})")
        end, prev = off + n, name
    last = max((off + n for off, n, _, _ in entries), default=0)
    if last != data_size:
        raise FormatError(f"{where} {data_size - last} unexpected bytes after the last tensor")
    return entries


def _data_problem(mm, layout, fill=lambda end: None):
    """What is wrong with the data: the first tensor whose CRC32 does not match, or non-zero
    padding ("": nothing), so that no byte of the file goes unchecked: the preamble and
    header are checked by read. fill(end) comes before each read of bytes below `end`: a
    copy is read from the file in step, in pieces that stay in cache for the CRC."""
    header_end, data_start, entries = layout

    def nonzero(lo, hi):
        fill(hi)
        return hi > lo and np.frombuffer(mm, np.uint8, count=hi - lo, offset=lo).any()

    if nonzero(header_end, data_start):
        return f"non-zero padding between bytes {header_end} and {data_start}: corrupt"
    pos = data_start  # end of the bytes checked so far
    for off, n, name, stored in entries:
        start = data_start + off
        if nonzero(pos, start):
            return f"non-zero padding between bytes {pos} and {start}: corrupt"
        crc = 0
        for lo in range(start, start + n, _CHUNK):
            hi = min(lo + _CHUNK, start + n)
            fill(hi)
            crc = zlib.crc32(mm[lo:hi], crc)
        if crc != stored:
            return (f"tensor {name!r}: data CRC32 mismatch (stored {stored:#010x}, "
                    f"computed {crc:#010x}): tensor data is corrupt")
        pos = max(pos, start + n)
    return ""
