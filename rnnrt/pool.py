"""StreamPool: many live batch-1 streams of one model, any subset of them stepped in one call.

    pool = model.stream_pool(capacity)
    a, b = pool.open(), pool.open(state=snapshot)
    y = pool.step([a, b], x)        # x: one row per id, in the order of the ids
    pool.snapshot(a); pool.close(a)

The state of every stream is one row of a per-layer store ((capacity, S) for h, (capacity, H)
for an LSTM's c). pool.step checks the ids and inputs here, then makes one C call
(src_c/pool.c) that gathers the streams' rows into a contiguous block, runs the model's plan
once with batch = len(ids) (one batched GEMM per layer instead of one GEMV per stream), and
scatters the new states back. Full, the pool doubles its capacity; stream ids stay valid.

A stream id is (generation << 32) | row: a row reused after close() gets a new generation, so
a closed id stays refused even after its row serves another stream.

The model must be able to stream (Model.stream's checks, shared through model._step_spec).
Outputs agree with stepping each stream alone to float32 rounding (a batched GEMM sums in
another order than a one-row GEMV), not bit for bit.

Threads: every method takes the pool's lock, so threads may share a pool; their calls run
one after another. pool.step releases the GIL while it computes.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from . import limits, plan
from .errors import InputError
from .model import Model, _check_memory, _check_out, _new_buffer, _step_spec

_ROW_BITS = 32
_ROW_MASK = (1 << _ROW_BITS) - 1


class StreamPool:
    """Batch-1 streams of one model with their states side by side; see the module doc."""

    def __init__(self, model: Model, capacity: int):
        self._spec = _step_spec(model)      # InputError for a model that cannot stream
        if self._spec.fixed_batch not in (None, 1):
            raise InputError(f"the model's constant initial state or sequence lengths fix the "
                             f"batch size to {self._spec.fixed_batch}; pool streams are batch 1")
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise InputError(f"capacity must be a positive int, got {capacity!r}")
        if capacity > _ROW_MASK:
            raise InputError(f"capacity must be below 2**{_ROW_BITS}, got {capacity}")
        self.model = model
        p = model._plan
        self._out_slot = p.outputs[0]
        if plan.BATCH not in self._spec.out_axes:
            raise InputError(f"a pool returns one row of the first output per stream; output "
                             f"{p.slots[self._out_slot].name!r} has no batch axis (shape "
                             f"{p.slots[self._out_slot].shape})")
        # Each stream has its own row of every tensor a step computes or reads.
        unbatched = [s for i, s in enumerate(p.slots)
                     if i not in self._spec.unbuffered and plan.BATCH not in s.shape]
        if unbatched:
            raise InputError(f"a pool gives each stream its own row of every tensor; "
                             f"{unbatched[0].name!r} has no batch axis (shape "
                             f"{unbatched[0].shape}): step such a model with Model.stream()")
        self._out_batch_axis = self._spec.out_axes.index(plan.BATCH)
        self._out_dtype = p.slots[self._out_slot].dtype
        self._out_row_shape = tuple(d for d in self._spec.out_axes if d != plan.BATCH)
        # Elements per stream of each slot (every slot has one batch axis; time is 1).
        self._per_row = [math.prod(s.concrete(1, self._spec.Ts)) for s in p.slots]
        self._lock = threading.Lock()
        self._capacity = 0
        self._gen = np.zeros(0, np.int64)        # generation of each row
        self._open = np.zeros(0, bool)
        self._free = []                          # free rows; open() takes the last
        self._store_h = [np.zeros((0, S), np.float32) for (_, _, _, H, S, _) in p.recurrent]
        self._store_c = [np.zeros((0, H), np.float32) if cell == "lstm" else None
                         for (_, cell, _, H, S, _) in p.recurrent]
        self._grow(capacity)

    # ------------------------------------------------------------------ bookkeeping

    def _grow(self, capacity: int) -> None:
        """Room for `capacity` streams; open streams keep their rows, ids and states."""
        old = self._capacity
        p = self.model._plan
        # Per stream: a row of each slot, of each state store and gathered block, and its
        # generation and open flag; and the workspace of a step over all of them.
        _check_memory(self.model, f"a stream pool of capacity {capacity}", capacity,
                      self._spec.Ts, self.model.num_threads, skip=self._spec.unbuffered,
                      states=2, extra=9 * capacity)

        def widen(a):
            if a is None:
                return None
            b = np.zeros((capacity,) + a.shape[1:], a.dtype)
            b[:old] = a
            return b
        # Everything new is made before anything is replaced: a pool that could not grow
        # is left as it was.
        with limits.allocating(f"a stream pool of capacity {capacity}"):
            store_h = [widen(a) for a in self._store_h]
            store_c = [widen(a) for a in self._store_c]
            gen, is_open = widen(self._gen), widen(self._open)
            # Gathered state blocks, and one flat buffer per slot: a step over n streams
            # uses the first n rows' worth of each.
            block_h = [np.empty_like(a) for a in store_h]
            block_c = [None if a is None else np.empty_like(a) for a in store_c]
            flat = [None if i in self._spec.unbuffered else np.zeros(capacity * n, s.dtype)
                    for i, (s, n) in enumerate(zip(p.slots, self._per_row))]
        self._store_h, self._store_c, self._gen, self._open = store_h, store_c, gen, is_open
        self._block_h, self._block_c, self._flat = block_h, block_c, flat
        self._free = list(range(capacity - 1, old - 1, -1)) + self._free
        self._views = (0, None)
        self._work = np.empty(0, np.float32)
        self._capacity = capacity

    def _buffers(self, n: int) -> list:
        """Each slot's buffer for a step over n streams (views of the flat buffers)."""
        if self._views[0] != n:
            Ts = self._spec.Ts
            self._views = (n, [None if f is None else f[:n * k].reshape(s.concrete(n, Ts))
                               for f, k, s in zip(self._flat, self._per_row,
                                                  self.model._plan.slots)])
        return self._views[1]

    @staticmethod
    def _as_ids(ids) -> np.ndarray:
        if isinstance(ids, (int, np.integer)):
            raise InputError(f"ids must be a sequence of stream ids, got the single id {ids}: "
                             f"pass [{ids}]")
        try:
            arr = np.asarray(ids)
        except Exception as e:
            raise InputError(f"ids must be a sequence of stream ids, got "
                             f"{type(ids).__name__} ({e})") from None
        if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
            raise InputError(f"ids must be a 1-D sequence of int stream ids, got dtype "
                             f"{arr.dtype} shape {arr.shape}")
        if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
            raise InputError(f"unknown stream id {int(arr.max())}: this pool never opened it")
        return arr.astype(np.int64)

    def _describe_bad(self, i: int) -> str:
        row, gen = i & _ROW_MASK, i >> _ROW_BITS
        if i >= 0 and row < self._capacity and gen < self._gen[row]:
            return f"stream id {i} is closed"
        return f"unknown stream id {i}: this pool never opened it"

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        """The rows of open, distinct ids; InputError naming the first id that is not."""
        rows = ids & _ROW_MASK
        seen = np.minimum(rows, self._capacity - 1)
        ok = (ids >= 0) & (rows < self._capacity) & self._open[seen] & \
            (self._gen[seen] == ids >> _ROW_BITS)
        if not ok.all():
            raise InputError(self._describe_bad(int(ids[np.argmin(ok)])))
        if rows.size > 1:
            s = np.sort(rows)
            repeated = s[1:][s[1:] == s[:-1]]
            if repeated.size:
                i = int(ids[rows == repeated[0]][0])
                raise InputError(f"stream id {i} appears more than once in ids: a step "
                                 f"advances each stream once")
        return rows

    def _row(self, stream_id) -> int:
        if isinstance(stream_id, bool) or not isinstance(stream_id, (int, np.integer)):
            raise InputError(f"a stream id is an int, got {type(stream_id).__name__}")
        if not 0 <= stream_id <= np.iinfo(np.int64).max:
            raise InputError(f"unknown stream id {stream_id}: this pool never opened it")
        return int(self._rows(np.array([stream_id], np.int64))[0])

    def _layer_arrays(self, row_slice):
        """(key, store view) of each carried state, restricted to row_slice."""
        for (hk, ck), h, c in zip(self._spec.keys, self._store_h, self._store_c):
            yield hk, h[row_slice]
            if ck is not None:
                yield ck, c[row_slice]

    # ------------------------------------------------------------------ public

    @property
    def capacity(self) -> int:
        """Streams the pool holds room for now (it doubles when full)."""
        return self._capacity

    @property
    def ids(self) -> list:
        """The ids of the open streams."""
        with self._lock:
            rows = np.flatnonzero(self._open)
            return [int(i) for i in (self._gen[rows] << _ROW_BITS) | rows]

    def __len__(self) -> int:
        return int(self._open.sum())

    def open(self, state=None) -> int:
        """Open a stream; returns its id. state: a snapshot (bytes) of a batch-1 stream, or a
        dict like a batch-1 Stream.state; None: the model's initial state (zeros, or its
        constant one)."""
        arrays = None if state is None else self._spec.check_state(self.model, state, 1)
        with self._lock:
            if not self._free:
                self._grow(2 * self._capacity)
            row = self._free.pop()
            for key, a in self._layer_arrays(row):
                a[...] = self._spec.start_state(key, 1)[0] if arrays is None \
                    else arrays[key][0]
            self._open[row] = True
            return int(self._gen[row]) << _ROW_BITS | row

    def close(self, stream_id) -> None:
        """Close a stream: its id is refused from now on, its row serves a later open()."""
        with self._lock:
            row = self._row(stream_id)
            self._open[row] = False
            self._gen[row] += 1
            self._free.append(row)

    def state(self, stream_id) -> dict:
        """Copies of one stream's state, as a batch-1 Stream.state gives it."""
        with self._lock:
            row = self._row(stream_id)
            return {key: a.copy() for key, a in self._layer_arrays(slice(row, row + 1))}

    def snapshot(self, stream_id) -> bytes:
        """One stream's state as a snapshot (rnnrt/snapshot.py): resume it with
        pool.open(state=snap) or model.stream(state=snap)."""
        from . import snapshot
        return snapshot.encode(self.model, self.state(stream_id))

    def step(self, ids, x, out=None) -> np.ndarray:
        """Advance the streams `ids` one time step. x: one row per id, in the order of ids:
        (len(ids), features), (len(ids),) token ids, or a dict {name: array} for several
        inputs. Returns (len(ids), ...) of what each stream's step() would return."""
        ids = self._as_ids(ids)
        n = ids.size
        arrays, _ = self._spec.read_inputs(self.model, x, n, vector_ok=False)
        shape = (n,) + self._out_row_shape
        if out is not None:
            _check_out(out, shape, self._out_dtype)
        else:
            out = np.empty(shape, self._out_dtype)
        with self._lock:
            rows = self._rows(ids)
            if n == 0:
                return out
            buffers = self._buffers(n)
            for i, arr in arrays.items():
                buffers[i].reshape(arr.shape)[...] = arr
            threads = self.model.num_threads   # the engine decides how to use them
            engine = self.model._engine
            need = engine.work_floats(n, self._spec.Ts, threads)
            if self._work.size < need:
                with limits.allocating(f"a pool step of {n} streams"):
                    self._work = _new_buffer(need, np.float32)
            bad = engine.pool_step(buffers, n, self._spec.Ts, threads, self._work,
                                   self._store_h, self._store_c, self._block_h,
                                   self._block_c, rows)
            if bad >= 0:     # ids are checked above; this guards the C side all the same
                raise InputError("a token id is out of range of the embedding table")
            result = buffers[self._out_slot].reshape(
                tuple(n if d == plan.BATCH else d for d in self._spec.out_axes))
            out[...] = np.moveaxis(result, self._out_batch_axis, 0)
        return out

    def __reduce__(self):
        raise TypeError("a StreamPool does not pickle: it holds live state. Snapshot its "
                        "streams (pool.snapshot(id)) and open them in another pool")

    def __repr__(self):
        return f"<rnnrt.StreamPool {len(self)} open of capacity {self._capacity}>"
