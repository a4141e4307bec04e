"""Score many sequences on Dask: `rnnrt.dask.predict(model_path, data)` -> a dask array.

`data` is a dask array (a model with one input), or a list of .npy / .npz shard files. Each
chunk or shard is one task, which calls Model.run once; the model reaches the workers as its
path, and each worker process loads it once (rnnrt/cache.py), however many tasks it runs.
The result is a lazy dask array, its rows in the order of the input's rows.

Needs the optional extra: pip install rnnrt[dask]. Every worker must see the .rnnrt file
(and the shards) at the same path as the client: docs/distributed.md says how.
"""

from __future__ import annotations

import os
import zipfile
from typing import NamedTuple

import numpy as np

try:
    import dask
    import dask.array as da
    from dask.base import tokenize
except ImportError as e:  # the extra is optional; say how to get it
    raise ImportError(f"rnnrt.dask needs dask, which is not installed ({e}): "
                      f"pip install rnnrt[dask]") from e

from . import cache, plan
from .errors import InputError

__all__ = ["predict", "ship_model"]


class _Job(NamedTuple):
    """What a task needs to find the model on a worker: small, picklable, no Model in it."""
    path: str
    num_threads: int | None
    verify: bool
    fingerprint: int
    inputs: tuple          # input names, in the model's order
    output: int            # index of the output to return
    dtype: str             # of that output


def predict(model_path, data, *, output=0, num_threads=None, verify=True):
    """Score `data` with the model at `model_path`; returns a dask array (lazy).

    data: a dask array shaped like the model's single input (chunked along the batch axis;
      other axes are merged into one chunk), or a list of paths of .npy shards (the single
      input) or .npz shards (one array per input name; an .npz holding one array serves a
      one-input model whatever the array's name). Shards are read on the workers; the client
      reads only their headers.
    output: index or name of the model output to return (default: the first).
    num_threads: threads per task; None uses OMP_NUM_THREADS, which Dask's nanny sets to 1.

    Rows come back in input order, chunked as the input chunks / shards. Each chunk gives
    exactly what Model.run gives on that chunk, with the workers' thread count.
    """
    if not isinstance(model_path, (str, os.PathLike)):
        raise InputError(f"model_path: expected the path of a .rnnrt file (str or PathLike), "
                         f"got {type(model_path).__name__}"
                         + (" (pass model.path)" if hasattr(model_path, "path") else ""))
    path = os.path.abspath(os.fspath(model_path))   # workers may have another cwd
    model = cache.load(path, num_threads=num_threads, verify=verify)
    model._verified_for_use()   # a damaged file fails here, not inside the workers' tasks
    p = model._plan
    index = _output_index(model, output)
    out_slot = p.slots[p.outputs[index]]
    job = _Job(path, num_threads, verify, cache.fingerprint(model),
               tuple(s.name for s in p.inputs), index, out_slot.dtype)

    if isinstance(data, da.Array):
        blocks = _array_blocks(p.inputs, data)
        make = _score_array
    else:
        blocks = _shard_blocks(p.inputs, data)
        make = _score_shard
    parts = []
    for source, sizes, where in blocks:
        shape = tuple(sizes[d] if isinstance(d, str) else d for d in out_slot.shape)
        key = f"rnnrt-predict-{tokenize(job, source, where)}"   # same inputs, same key
        task = dask.delayed(make)(job, source, shape, where, dask_key_name=key)
        parts.append(da.from_delayed(task, shape=shape, dtype=out_slot.dtype))
    return da.concatenate(parts, axis=out_slot.shape.index(plan.BATCH))


def ship_model(client, model_path) -> dict:
    """Copy the .rnnrt file at `model_path` to the same absolute path on every worker of a
    distributed `client`, for workers that share no filesystem with the client. A worker
    that already holds the same bytes there is left alone. Workers that join later need
    another call. Returns {worker address: True if written, False if already there}."""
    if not isinstance(model_path, (str, os.PathLike)):
        raise InputError(f"model_path: expected the path of a .rnnrt file, got "
                         f"{type(model_path).__name__}")
    path = os.path.abspath(os.fspath(model_path))
    cache.load(path)                        # a valid model, or FormatError here
    with open(path, "rb") as f:
        data = f.read()
    return client.run(_put_file, path, data)


def _put_file(path, data) -> bool:
    """Write `data` to `path` unless it already holds it; atomically (a task reading the
    file meanwhile sees the old one or the new one, never half of it)."""
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return False
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    part = f"{path}.{os.getpid()}.part"
    with open(part, "wb") as f:
        f.write(data)
    os.replace(part, path)
    return True


# ----------------------------------------------------------------------------- tasks

def _run(job, feeds, shape, where):
    if 0 in shape:      # an empty chunk or shard (Model.run wants a batch of at least 1)
        return np.empty(shape, job.dtype)
    model = cache.load(job.path, num_threads=job.num_threads, verify=job.verify,
                       expect_fingerprint=job.fingerprint)
    result = model.run(feeds)[job.output]
    if result.shape != shape:    # the shard changed since the client read its header
        raise InputError(f"{where}: the output has shape {result.shape}, expected {shape} "
                         f"from the shapes read when the graph was built; was it rewritten?")
    return result


def _score_array(job, block, shape, where):
    return _run(job, {job.inputs[0]: block}, shape, where)


def _score_shard(job, shard, shape, where):
    path, names, _ = shard
    if path.endswith(".npy"):
        feeds = {job.inputs[0]: np.load(path, allow_pickle=False)}
    else:
        with np.load(path, allow_pickle=False) as npz:
            feeds = {name: npz[key] for name, key in zip(job.inputs, names)}
    return _run(job, feeds, shape, where)


# ----------------------------------------------------------------------------- inputs

def _output_index(model, output) -> int:
    names = [o.name for o in model.outputs]
    if isinstance(output, str):
        if output not in names:
            raise InputError(f"output {output!r} is not an output of the model; its outputs "
                             f"are {names}")
        return names.index(output)
    if isinstance(output, int) and not isinstance(output, bool) and 0 <= output < len(names):
        return output
    raise InputError(f"output: expected an output name or an index in 0..{len(names) - 1} "
                     f"(outputs {names}), got {output!r}")


def _bind(slots, shapes, dtypes, where) -> dict:
    """Check each input's shape and dtype against the model, as Model.run will; returns the
    size of each symbolic axis (batch, time...)."""
    sizes = {}
    for slot, shape, dtype in zip(slots, shapes, dtypes):
        what = f"{where}: input {slot.name!r}"
        want_kind = "fiub" if slot.dtype == "float32" else "iu"
        if np.dtype(dtype).kind not in want_kind:
            raise InputError(f"{what}: expected {slot.dtype} values, got dtype {dtype}")
        if len(shape) != len(slot.shape):
            raise InputError(f"{what}: expected rank {len(slot.shape)} {slot.shape}, got "
                             f"shape {tuple(shape)}")
        for axis, (want, got) in enumerate(zip(slot.shape, shape)):
            if isinstance(want, str):
                if sizes.setdefault(want, got) != got:
                    raise InputError(f"{what}: axis {axis} ({want}) is {got}, but another "
                                     f"input has {want} {sizes[want]}")
            elif want != got:
                raise InputError(f"{what}: expected size {want} on axis {axis} (shape "
                                 f"{slot.shape}), got shape {tuple(shape)}")
    for symbol, n in sizes.items():
        if plan.is_time(symbol) and n < 1:
            raise InputError(f"{where}: sequences must have at least 1 time step, got {n}")
    return sizes


def _array_blocks(slots, data):
    """(block, sizes, where) for each chunk of a dask array along the batch axis."""
    if len(slots) != 1:
        raise InputError(f"the model has {len(slots)} inputs {[s.name for s in slots]}: a "
                         f"dask array feeds one; pass .npz shards holding each input by name")
    (slot,) = slots
    if any(np.isnan(c) for chunks in data.chunks for c in chunks):
        raise InputError("data has chunks of unknown size: call data.compute_chunk_sizes() "
                         "first")
    _bind(slots, [data.shape], [data.dtype], "data")      # the whole array, before any chunk
    batch_axis = slot.shape.index(plan.BATCH)
    whole = {axis: -1 for axis in range(data.ndim) if axis != batch_axis}
    if any(len(data.chunks[axis]) > 1 for axis in whole):
        data = data.rechunk(whole)      # a task needs whole sequences and whole features
    blocks = data.to_delayed().reshape(-1)  # one block per batch chunk, in order
    start = 0
    for block, rows in zip(blocks, data.chunks[batch_axis]):
        shape = data.shape[:batch_axis] + (rows,) + data.shape[batch_axis + 1:]
        where = f"data rows {start}..{start + rows - 1}"
        yield block, _bind(slots, [shape], [data.dtype], where), where
        start += rows


def _shard_blocks(slots, data):
    """((path, array names, stamp), sizes, where) for each shard file, its header read here.
    The stamp (size, modification time) is only there to give a rewritten shard a new key."""
    if isinstance(data, (str, os.PathLike)):
        data = [data]
    if isinstance(data, np.ndarray) or not isinstance(data, (list, tuple)):
        raise InputError(f"data: expected a dask array or a list of .npy / .npz paths, got "
                         f"{type(data).__name__}"
                         + (" (wrap it: dask.array.from_array(x, chunks=...))"
                            if isinstance(data, np.ndarray) else ""))
    if not data:
        raise InputError("data: the list of shards is empty")
    names = [s.name for s in slots]
    for shard in data:
        if not isinstance(shard, (str, os.PathLike)):
            raise InputError(f"data: expected shard paths, got a {type(shard).__name__}")
        path = os.path.abspath(os.fspath(shard))
        if path.endswith(".npy"):
            if len(slots) != 1:
                raise InputError(f"{path}: a .npy shard holds one array, but the model has "
                                 f"{len(slots)} inputs {names}: use .npz shards")
            arr = np.load(path, mmap_mode="r", allow_pickle=False)   # reads the header only
            headers = {names[0]: (arr.shape, arr.dtype)}
            keys = (names[0],)
        elif path.endswith(".npz"):
            headers, keys = _npz_headers(path, names)
        else:
            raise InputError(f"{path}: expected a .npy or .npz shard")
        shapes, dtypes = zip(*(headers[n] for n in names))
        st = os.stat(path)
        yield (path, keys, (st.st_size, st.st_mtime_ns)), _bind(slots, shapes, dtypes, path), path


def _npz_headers(path, names):
    """{input name: (shape, dtype)} from the array headers of an .npz, and the array name
    read for each input. Extra arrays (labels, ids) are ignored."""
    with zipfile.ZipFile(path) as zf:
        found = {}
        for info in zf.infolist():
            if info.filename.endswith(".npy"):
                with zf.open(info) as f:
                    found[info.filename[:-4]] = _npy_header(f, path, info.filename)
    if len(names) == 1 and len(found) == 1:
        (key,) = found
        return {names[0]: found[key]}, (key,)
    missing = [n for n in names if n not in found]
    if missing:
        raise InputError(f"{path}: no array for input(s) {missing}; the shard holds "
                         f"{sorted(found)}, the model's inputs are {names}")
    return {n: found[n] for n in names}, tuple(names)


def _npy_header(f, path, member):
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise InputError(f"{path}: array {member!r} is in .npy format {version}; expected "
                         f"1.0 or 2.0 (what np.savez writes for numeric arrays)")
    return shape, dtype
