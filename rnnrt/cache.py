"""A per-process cache of loaded models, so that a worker maps each model file once.

A Model pickles by path (model.py, `Model.__reduce__`); unpickling goes through `load()`
here. A Dask or Ray worker unpickles the model with every task it runs: the first call loads
the file (its bytes, checks, execution plan), the next ones get the same Model back.
Model.run() is thread-safe, so one cached Model serves all the threads of a worker.

The key is the file's real path (symlinks resolved), its size and modification time, and
the load options. A file replaced at the same path (renamed over it, or rewritten in place)
gets a new key and is loaded anew; the stale entry for that path is dropped so that its
memory is freed once no one uses it. What a Model already handed out does when its file
changes: README, "Replacing a live model".

A pickled Model also carries the fingerprint of the file it was loaded from (the header's
CRC32, which covers every tensor's CRC32): a worker whose file at that path holds another
model refuses it rather than scoring with the wrong weights.
"""

from __future__ import annotations

import os
import threading

from .errors import FormatError
from .model import Model, default_threads

_lock = threading.Lock()
_models: dict = {}          # key -> Model
_loads = 0                  # models read from disk by this process
_hits = 0                   # requests answered from the cache


def _key(path, num_threads, verify):
    real = os.path.realpath(os.fspath(path))
    st = os.stat(real)      # FileNotFoundError propagates, as from rnnrt.load
    # num_threads=None means "OMP_NUM_THREADS or all cores", read when the model is made:
    # the resolved count is part of the key so that a changed setting is honoured.
    threads = ("default", default_threads()) if num_threads is None else num_threads
    return (real, st.st_size, st.st_mtime_ns), (threads, bool(verify))


def fingerprint(model: Model) -> int:
    """The header CRC32 of the model's file as it was loaded, so that it describes the bytes
    the model runs on (not whatever is at its path now)."""
    return model._file.header_crc


def load(path, *, num_threads=None, verify=True, expect_fingerprint=None) -> Model:
    """The Model for `path` and these options: loaded once per process, then shared.

    expect_fingerprint: the fingerprint() of the model that was pickled; FormatError if the
    file now at `path` is another model."""
    global _loads, _hits
    file_key, options = _key(path, num_threads, verify)
    key = file_key + options
    with _lock:
        model = _models.get(key)
        if model is None:
            model = Model(file_key[0], num_threads=num_threads, verify=verify)
            # Any entry for an older version of this file is stale: drop it.
            for old in [k for k in _models if k[0] == file_key[0] and k[1:3] != file_key[1:]]:
                del _models[old]
            _models[key] = model
            _loads += 1
        else:
            _hits += 1
    if expect_fingerprint is not None and fingerprint(model) != expect_fingerprint:
        raise FormatError(
            f"{path}: this file is not the model that was pickled (header CRC32 "
            f"{fingerprint(model):#010x}, the pickled model's was {expect_fingerprint:#010x}); "
            f"every worker needs the same .rnnrt file at the same path")
    return model


def stats() -> dict:
    """{'loads': models read from disk, 'hits': requests served from the cache, 'cached':
    models held now}, for this process (read it on each worker with client.run)."""
    with _lock:
        return {"loads": _loads, "hits": _hits, "cached": len(_models)}


def clear() -> None:
    """Forget every cached model and reset the counters (models in use stay valid)."""
    global _loads, _hits
    with _lock:
        _models.clear()
        _loads = _hits = 0
