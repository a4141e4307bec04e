"""Model (whole sequences) and Stream (one step at a time) over a loaded .rnnrt file.

Every check on user input happens here, in Python, before the single C call.
"""

from __future__ import annotations

import os
import threading
from typing import NamedTuple

import numpy as np

from . import _blas  # noqa: F401  (loads OpenBLAS first; must precede _engine)
from . import _engine, fileformat, limits, plan
from .errors import FormatError, InputError

_DTYPES = {"float32": np.float32, "int64": np.int64, "int32": np.int32}


class TensorSpec(NamedTuple):
    """A model input or output: name, shape (None for a dynamic axis), dtype."""
    name: str
    shape: tuple
    dtype: str


# TEST HOOK for tests/fuzz, off (None) in normal use: a byte value (0..255) that new buffers
# are filled with (run()'s outputs and workspace, a Stream's computed slots and workspace,
# StreamPool's workspace, generate()'s workspace and result), so that two runs with
# different fills tell any read of memory the engine never wrote.
_output_fill = None


def _new_buffer(shape, dtype, zeros=False) -> np.ndarray:
    """np.empty (np.zeros when `zeros`), or every byte _output_fill while the hook is set."""
    if _output_fill is None:
        return (np.zeros if zeros else np.empty)(shape, dtype)
    arr = np.empty(shape, dtype)
    arr.reshape(-1).view(np.uint8)[:] = _output_fill
    return arr


def _public_shape(slot):
    """A slot's shape for Model.inputs / outputs: None where the size is the call's."""
    fixed = slot.fixed or (None,) * len(slot.shape)
    return tuple(f if f is not None else None if isinstance(d, str) else d
                 for d, f in zip(slot.shape, fixed))


# Input shapes whose call run() keeps (a service sees a few; a sweep starts over).
_CALL_CACHE = 64


def usable_cores() -> int:
    """The cores this process may run on: its affinity mask (taskset, a container's cpuset),
    where the platform has one, else all of the machine's."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads() -> int:
    """OMP_NUM_THREADS when set (Dask and Ray set it per worker), else the cores this process
    may use. A call still shares its work only with cores other processes leave free
    (src_c/cpu_load.c), so this is a ceiling, not a promise."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    try:
        n = int(env.split(",")[0])
    except ValueError:
        n = usable_cores()
    return max(1, n)


def max_threads() -> int:
    """The most threads a model takes: 4 x the cores this process may run on (its CPU
    affinity, which a container or taskset narrows), and no more than the engine's limit.
    Beyond that threads only queue for the cores, each with its own stack and workspace."""
    return min(4 * usable_cores(), _engine.MAX_THREADS)


def _thread_count(num_threads) -> int:
    """The threads a Model runs with: num_threads, an int in 1..max_threads() (bool refused),
    or for None default_threads(), capped at max_threads()."""
    cap = max_threads()
    if num_threads is None:
        return min(default_threads(), cap)
    if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)):
        raise InputError(f"num_threads must be a positive int, got "
                         f"{type(num_threads).__name__} {num_threads!r}")
    if not 1 <= num_threads <= cap:
        raise InputError(f"num_threads must lie in 1..{cap} (4 x the {usable_cores()} cores "
                         f"this process may use, at most {_engine.MAX_THREADS}), got "
                         f"{num_threads}")
    return int(num_threads)


def _as_array(name: str, value, dtype: str) -> np.ndarray:
    """Convert one user input to the dtype the model reads, or say why it cannot."""
    try:
        arr = np.asarray(value)
    except Exception as e:  # ragged lists and the like
        raise InputError(f"input {name!r}: expected a numeric array, got {type(value).__name__}"
                         f" that NumPy cannot convert ({e})") from None
    kind = arr.dtype.kind
    if dtype == "float32" and kind not in "fiub":
        raise InputError(f"input {name!r}: expected float32 (or a real numeric dtype), got "
                         f"dtype {arr.dtype}")
    if dtype in ("int64", "int32") and kind not in "iu":
        raise InputError(f"input {name!r}: expected integer {dtype} values (token ids or "
                         f"lengths), got dtype {arr.dtype}")
    if dtype in ("int64", "int32") and arr.size and not np.can_cast(arr.dtype, dtype):
        # The cast below would wrap (2**32 + 1 -> 1 as int32): refuse what does not fit.
        info, lo, hi = np.iinfo(dtype), arr.min(), arr.max()
        if lo < info.min or hi > info.max:
            raise InputError(f"input {name!r}: values must fit {dtype} ({info.min}.."
                             f"{info.max}), got {lo}..{hi} (dtype {arr.dtype})")
    # Aligned too: C reads the array as floats, and a view at an odd offset (what Dask hands
    # a worker) is undefined behaviour there (UBSan: misaligned load in packed_gemm.c).
    return np.require(arr, _DTYPES[dtype], ["C", "A"])


def _check_memory(model, what: str, B: int, Ts, threads: int, *, skip=(), states=0,
                  extra=0) -> int:
    """InputError unless a call over B rows and time lengths Ts fits in this machine's
    memory (rnnrt/limits.py): its slot buffers but those in `skip`, `states` copies of the
    carried states, its workspace and `extra` bytes. Returns the workspace's floats."""
    limits.check_c_int(B, f"{what}: the batch size")
    for T in Ts:
        limits.check_c_int(T, f"{what}: the time length")
    p = model._plan
    nbytes = p.slot_bytes(B, Ts, skip) + states * p.state_bytes(B) + extra
    limits.check_fits(nbytes, what)     # first: it bounds the sizes work_floats multiplies
    work = model._engine_unverified.work_floats(B, Ts, threads)
    limits.check_fits(nbytes + 4 * work, what)
    return work


def _check_out(out, shape: tuple, dtype: str) -> None:
    """`out=` of a step: a writeable, C-contiguous array of the output's dtype, in native
    byte order, of exactly `shape` (the step writes it as raw memory), or InputError."""
    want = f"a writeable C-contiguous {dtype} array of shape {shape}"
    if not isinstance(out, np.ndarray):
        raise InputError(f"out must be {want}, got {type(out).__name__}")
    if out.dtype != np.dtype(dtype) or out.shape != shape or not out.flags.c_contiguous or \
            not out.flags.writeable:
        traits = [t for t, bad in (("read-only", not out.flags.writeable),
                                   ("non-contiguous", not out.flags.c_contiguous)) if bad]
        raise InputError(f"out must be {want}, got a {' '.join(traits + [str(out.dtype)])} "
                         f"array of shape {out.shape}")


def _bind(spec: plan.Slot, arr: np.ndarray, sizes: dict, drop_time=False) -> None:
    """Check arr's shape against a symbolic shape (and the sizes the source declares for
    it), binding batch / time in `sizes`."""
    keep = [i for i, d in enumerate(spec.shape) if not (drop_time and plan.is_time(d))]
    shape = tuple(spec.shape[i] for i in keep)
    fixed = tuple(spec.fixed[i] for i in keep) if spec.fixed else (None,) * len(shape)
    shown = shape
    if arr.ndim != len(shape):
        raise InputError(f"input {spec.name!r}: expected rank {len(shape)} {shown}, got "
                         f"shape {arr.shape}")
    for axis, (want, got, declared) in enumerate(zip(shape, arr.shape, fixed)):
        if declared is not None and got != declared:
            raise InputError(f"input {spec.name!r}: axis {axis} ({want}) must be {declared}, "
                             f"the size the model declares, got {got} (shape {arr.shape})")
        if isinstance(want, str):
            if sizes.setdefault(want, got) != got:
                raise InputError(f"input {spec.name!r}: axis {axis} ({want}) is {got}, but "
                                 f"another input has {want} {sizes[want]}")
        elif want != got:
            what = "features" if axis == len(shape) - 1 else f"size on axis {axis}"
            raise InputError(f"input {spec.name!r}: expected {want} {what}, got {got} "
                             f"(shape {arr.shape}, expected {shown})")


def _match_feeds(names: list, inputs) -> dict:
    """{name: value} for each of `names`, from one value or a dict."""
    if isinstance(inputs, dict):
        unknown = sorted(set(inputs) - set(names))
        if unknown:
            raise InputError(f"unknown input name(s) {unknown}; the model's inputs are {names}")
        missing = [n for n in names if n not in inputs]
        if missing:
            raise InputError(f"missing input(s) {missing}; the model's inputs are {names}")
        return inputs
    if len(names) != 1:
        raise InputError(f"the model has {len(names)} inputs {names}: pass a dict "
                         f"{{name: array}}")
    return {names[0]: inputs}


class Model:
    """A loaded model. Thread-safe: run() may be called from many threads at once."""

    def __init__(self, path, *, num_threads=None, verify=True):
        self.path = os.path.abspath(os.fspath(path))   # pickles stay valid after a chdir
        # The header, the graph and every tensor's place and shape are checked now. The
        # tensors' CRC32s are computed now for a file copied into the model's own memory (in
        # the pass that copies it), later for a mapped one (a large file); their verdict comes
        # before the first computation reads them (the _engine property), or from verify().
        self._file = fileformat.read(self.path, verify=False, checksums=bool(verify))
        self._verify_before_use = bool(verify)
        self._data_verified = False
        self._verify_lock = threading.Lock()
        self._plan = plan.build(self._file.graph, self._file.tensors)
        self._engine_unverified = _engine.Engine(self._plan.ops)
        # A mapped file: each C call ends by checking that no fault hit it (it was truncated).
        self._engine_unverified.mapping = self._file.guard
        self.num_threads = _thread_count(num_threads)
        self._num_threads_arg = num_threads
        self._verify = verify
        slots = self._plan.slots
        self.inputs = [TensorSpec(s.name, _public_shape(s), s.dtype) for s in self._plan.inputs]
        self.outputs = [TensorSpec(slots[i].name, _public_shape(slots[i]), slots[i].dtype)
                        for i in self._plan.outputs]
        # (index, time symbol) of each TimeStep, and (graph input, time symbol) of each
        # sequence-lengths input: both are checked against the call's time lengths.
        self._time_indices = [(op["index"], op["tsym"]) for op in self._plan.ops
                              if op["kind"] == plan.OP_CODES["TimeStep"]]
        # Constant initial states or lengths (from an ONNX initializer) fix the batch size.
        fixed = {op["fixed_batch"] for op in self._plan.ops if op.get("fixed_batch")}
        if len(fixed) > 1:
            raise FormatError(f"layers fix different batch sizes {sorted(fixed)}")
        self.fixed_batch = fixed.pop() if fixed else None
        self._const_lengths = [(op["max_const_len"], op["tsym"]) for op in self._plan.ops
                               if op.get("max_const_len")]
        self._lengths = [(op["in"][1], op["tsym"]) for op in self._plan.ops
                         if "rec" in op and 0 <= op["in"][1] < len(self._plan.inputs)]
        # Embedding tables by the graph input they read: ids are range-checked in Python.
        self._vocab = {slots[op["in"][0]].name: op["vocab"] for op in self._plan.ops
                       if op["kind"] == plan.OP_CODES["Embedding"]
                       and op["in"][0] < len(self._plan.inputs)}
        # run()'s shape checks and buffer sizes, by (threads, input shapes): see run().
        self._calls = {}

    def verify(self):
        """Check the CRC32 of every tensor now, whatever load's `verify`. Raises FormatError
        for corrupt tensor data, or for a file truncated or overwritten since it was loaded.
        A model holding its own copy of its file keeps the first verdict; one that maps its
        file (a large one: README, "Replacing a live model") checks it again at every call."""
        with self._verify_lock:
            fileformat.verify_data(self._file)
            self._data_verified = True

    def _verified_for_use(self):
        """Verify before a computation, unless load() was told not to (verify=False)."""
        if self._verify_before_use and not self._data_verified:
            self.verify()

    @property
    def _engine(self):
        """The C engine, handed out only once the tensor data it reads is verified."""
        self._verified_for_use()
        return self._engine_unverified

    def __reduce__(self):
        # By path, never by bytes: each process maps the file itself, once (rnnrt/cache.py).
        # The fingerprint lets a worker refuse a different model found at the same path.
        from . import cache
        return (_load_for_pickle, (os.path.abspath(self.path), self._num_threads_arg,
                                   self._verify, cache.fingerprint(self)))

    def __repr__(self):
        return (f"rnnrt.Model({self.path!r}, inputs={[i.name for i in self.inputs]}, "
                f"outputs={[o.name for o in self.outputs]})")

    @property
    def graph(self) -> dict:
        """The graph document of the file (layers, attributes, tensor names)."""
        return self._file.graph

    @property
    def metadata(self) -> dict:
        return self._file.metadata

    def _check_ids(self, name, arr):
        vocab = self._vocab.get(name)
        if vocab is not None and arr.size:
            lo, hi = int(arr.min()), int(arr.max())
            if lo < 0 or hi >= vocab:
                bad = lo if lo < 0 else hi
                raise InputError(f"input {name!r}: token id {bad} is out of range; the "
                                 f"embedding has {vocab} rows (ids 0..{vocab - 1})")

    def run(self, inputs) -> list:
        """Run whole sequences: one array, or {name: array}. Returns the outputs in order."""
        engine = self._engine    # first: the checks below read tensor data (constant lengths)
        feeds = _match_feeds([s.name for s in self._plan.inputs], inputs)
        arrays = [_as_array(spec.name, feeds[spec.name], spec.dtype)
                  for spec in self._plan.inputs]
        threads = self.num_threads   # the engine decides how to use them
        key = (threads,) + tuple(a.shape for a in arrays)
        call = self._calls.get(key)
        if call is None:
            call = self._call_for_shapes(engine, arrays, threads)
            if len(self._calls) >= _CALL_CACHE:
                self._calls.clear()
            self._calls[key] = call
        B, Ts, slot_shapes, work_floats = call
        # What depends on the values, not the shapes, is checked every call.
        for spec, arr in zip(self._plan.inputs, arrays):
            self._check_ids(spec.name, arr)
        for i, tsym in self._lengths:
            arr = arrays[i]
            if arr.size and (arr.min() < 0 or arr.max() > Ts[tsym]):
                raise InputError(f"input {self._plan.inputs[i].name!r}: sequence lengths must "
                                 f"lie in 0..{Ts[tsym]} (the time axis), got "
                                 f"{arr.min()}..{arr.max()}")
        try:
            buffers = arrays + [_new_buffer(shape, dtype) for shape, dtype in slot_shapes]
            work = _new_buffer(work_floats, np.float32)
        except MemoryError as e:
            raise limits.out_of_memory(f"run() on a batch of {B}", e) from None
        bad = engine.run(buffers, B, Ts, threads, work)
        if bad >= 0:  # ids are checked above; this guards the C side all the same
            raise InputError("a token id is out of range of the embedding table")
        n_in = len(arrays)
        return [buffers[i].copy() if i < n_in else buffers[i] for i in self._plan.outputs]

    def _call_for_shapes(self, engine, arrays, threads) -> tuple:
        """Check the inputs' shapes, and derive what a call with them needs: (batch, time
        lengths, [(shape, dtype)] of the other slots, workspace floats). Depends on the
        shapes alone, so run() keeps it per shape."""
        sizes = {}
        for spec, arr in zip(self._plan.inputs, arrays):
            _bind(spec, arr, sizes)
        B = sizes.get(plan.BATCH, self.fixed_batch or 1)
        Ts = [sizes.get(plan.time_symbol(k), 1) for k in range(self._plan.num_times)]
        if self.fixed_batch is not None and B != self.fixed_batch:
            raise InputError(f"the model's constant initial state or sequence lengths fix the "
                             f"batch size to {self.fixed_batch}; got a batch of {B}")
        for most, tsym in self._const_lengths:
            if most > Ts[tsym]:
                raise InputError(f"the model's constant sequence lengths reach {most} steps; "
                                 f"the input has only {Ts[tsym]}")
        if B < 1 or min(Ts, default=1) < 1:
            raise InputError(f"batch and time must be at least 1, got batch {B}, time "
                             f"{Ts[0] if len(Ts) == 1 else Ts}")
        for index, tsym in self._time_indices:
            if not -Ts[tsym] <= index < Ts[tsym]:
                raise InputError(f"the model reads time step {index} of its sequence, which "
                                 f"does not exist in a sequence of {Ts[tsym]} steps")
        slot_shapes = [(s.concrete(B, Ts), s.dtype) for s in self._plan.slots[len(arrays):]]
        shown = Ts[0] if len(Ts) == 1 else Ts
        work = _check_memory(self, f"run() on a batch of {B} and time {shown}", B, Ts,
                             threads, skip=range(len(arrays)))
        return B, Ts, slot_shapes, work

    def __call__(self, x) -> np.ndarray:
        return self.run(x)[0]

    def step_refusal(self) -> str | None:
        """Why stream() would refuse this model, or None when it can run step by step."""
        try:
            _step_spec(self)
        except InputError as e:
            return str(e)
        return None

    def stream(self, batch_size: int = 1, state=None) -> "Stream":
        """A stateful stream over forward-only models: one time step per step() call.
        state: where to start, a snapshot (bytes from Stream.snapshot() or
        StreamPool.snapshot()) or a dict like Stream.state; None: the model's initial state
        (zeros, or its constant one)."""
        s = Stream(self, batch_size)
        if state is not None:
            s.state = state
        return s

    def stream_pool(self, capacity: int = 64):
        """A pool of batch-1 streams stepped together: rnnrt/pool.py."""
        from .pool import StreamPool
        self._verified_for_use()   # its steps would; a damaged model is better refused here
        return StreamPool(self, capacity)

    def generate(self, prompt, steps, *, temperature=0.0, top_k=None, seed=None, stop=None):
        """Feed the model's output back as its next input, `steps` times, in C (after the
        prompt): sampled token ids for a token model, a forecast for a regression model.
        rnnrt/generate.py has the details."""
        from .generate import generate
        return generate(self, prompt, steps, temperature=temperature, top_k=top_k, seed=seed,
                        stop=stop)


def _load_for_pickle(path, num_threads, verify, fingerprint=None):
    from . import cache   # cache imports this module
    return cache.load(path, num_threads=num_threads, verify=verify,
                      expect_fingerprint=fingerprint)


def _state_slots(p) -> set:
    """Graph inputs that only ever feed recurrent initial states or lengths, directly or
    through Slice / Concat layers (PyTorch's stacked (layers*directions, batch, H) state
    inputs), and the slots those layers make of them."""
    passing = (plan.OP_CODES["Slice"], plan.OP_CODES["Concat"])
    from_inputs = set(range(len(p.inputs)))
    for op in p.ops:
        if op["kind"] in passing and all(i in from_inputs for i in op["in"] if i >= 0):
            from_inputs.add(op["out"][0])
    readers = {}
    for op in p.ops:
        for k, i in enumerate(op["in"]):
            if i >= 0:
                readers.setdefault(i, []).append((op, k))
    outputs = set(p.outputs)
    state = set()
    for i in range(len(p.slots) - 1, -1, -1):     # readers are defined after what they read
        rs = readers.get(i)
        if not rs or i in outputs or i not in from_inputs:
            continue
        if all(("rec" in op and k > 0) or (op["kind"] in passing and op["out"][0] in state)
               for op, k in rs):
            state.add(i)
    return state


class _StepSpec:
    """How a model steps, worked out once per model and shared by Stream, StreamPool and
    Model.generate: refuses a model that cannot be stepped, knows which inputs a step takes,
    which state arrays it carries and the shape of its first output."""

    def __init__(self, model: Model):
        p = model._plan
        for name, cell, D, H, S, direction in p.recurrent:
            if direction != "forward":
                raise InputError(f"recurrent layer {name!r} is {direction}: step() needs "
                                 f"forward-only layers (a {direction} layer reads the future)")
        for name, why in p.step_refusals:
            raise InputError(f"layer {name!r} cannot run step by step: {why}")
        n_inputs = len(p.inputs)
        state_slots = _state_slots(p)
        for op, (name, *_) in zip((o for o in p.ops if "rec" in o), p.recurrent):
            if any(i >= n_inputs and i not in state_slots for i in op["in"][3:5]):
                raise InputError(f"recurrent layer {name!r} starts from a state another layer "
                                 f"computes at the end of the sequence: it cannot be stepped")
        if any(index != -1 for index, _ in model._time_indices):
            raise InputError("the model reads a fixed time step other than the last one: a "
                             "stream only knows the steps so far")
        # Graph inputs read only as lengths or initial states: a stream has its own state and
        # runs every row, so step() does not take them. Those a Slice reads (a stacked state
        # split per layer) still get a buffer, of zeros, for that Slice to read.
        self.state_inputs = {i for i in state_slots if i < n_inputs}
        read_as_data = {i for op in p.ops if "rec" not in op for i in op["in"] if i >= 0}
        self.unbuffered = self.state_inputs - read_as_data
        self.step_inputs = [i for i, s in enumerate(p.inputs) if i not in self.state_inputs]
        self.step_names = [p.inputs[i].name for i in self.step_inputs]
        self.Ts = [1] * p.num_times
        # The first output's symbolic axes without time.
        self.out_axes = tuple(d for d in p.slots[p.outputs[0]].shape if not plan.is_time(d))
        # The carried state arrays, in order: key -> width (h: S, c: H for an LSTM). The
        # keys (h key, c key or None) of each recurrent layer: "<layer>.h" / "<layer>.c", or
        # the graph input its initial state comes from (ir.Recurrent.h_state_key).
        self.keys = p.state_keys
        self.state_widths = {}
        for (hk, ck), (name, cell, D, H, S, direction) in zip(self.keys, p.recurrent):
            self.state_widths[hk] = S
            if ck is not None:
                self.state_widths[ck] = H
        # Where a stream starts: zeros, or the model's constant initial states (which fix
        # its batch size, self.fixed_batch). A batch size the source declares for a step
        # input fixes it too (declared_batch: (size, input name)).
        self.fixed_batch = model.fixed_batch
        self.declared_batch = next(
            ((f, s.name) for s in (p.inputs[i] for i in self.step_inputs)
             for d, f in zip(s.shape, s.fixed or ()) if d == plan.BATCH and f is not None),
            None)
        self.start = {}
        for op, (hk, ck) in zip((o for o in p.ops if "rec" in o), self.keys):
            for key, value in ((hk, op["rec"].get("h0v")), (ck, op["rec"].get("c0v"))):
                if value is not None:
                    self.start[key] = np.asarray(value).reshape(self.fixed_batch, -1)

    def start_state(self, key: str, batch: int) -> np.ndarray:
        """The (batch, width) state a new stream starts from."""
        if self.declared_batch is not None and batch != self.declared_batch[0]:
            size, name = self.declared_batch
            raise InputError(f"input {name!r} is declared with batch size {size}; a stream of "
                             f"{batch} rows cannot run it")
        if self.fixed_batch is not None and batch != self.fixed_batch:
            raise InputError(f"the model's constant initial state or sequence lengths fix the "
                             f"batch size to {self.fixed_batch}; a stream of {batch} rows "
                             f"cannot start from it")
        value = self.start.get(key)
        return np.zeros((batch, self.state_widths[key]), np.float32) if value is None \
            else value

    def feeds(self, x_t) -> dict:
        """{name: value} for each step input, from one value or a dict."""
        if isinstance(x_t, dict):
            return _match_feeds(self.step_names, x_t)
        if len(self.step_names) == 1:
            return {self.step_names[0]: x_t}
        raise InputError(f"the model has several step inputs {self.step_names}: pass a dict "
                         f"{{name: array}}")

    def read_inputs(self, model: Model, x_t, batch: int, vector_ok: bool):
        """Check one step's inputs for `batch` rows. Returns ({input index: array of the
        buffer's shape without time}, whether x_t came without its batch axis). vector_ok: a
        (features,) input stands for batch 1."""
        feeds = self.feeds(x_t)
        arrays, unbatched = {}, False
        for i in self.step_inputs:
            spec = model._plan.inputs[i]
            arr = _as_array(spec.name, feeds[spec.name], spec.dtype)
            if vector_ok and batch == 1 and arr.ndim == len(spec.shape) - 2:
                arr = arr[None]
                unbatched = True
            _bind(spec, arr, {plan.BATCH: batch}, drop_time=True)
            model._check_ids(spec.name, arr)
            arrays[i] = arr
        return arrays, unbatched

    def check_state(self, model: Model, value, batch: int) -> dict:
        """{key: float32 (batch, width)} from a snapshot (bytes) or a dict like Stream.state;
        InputError naming what does not fit."""
        if isinstance(value, (bytes, bytearray, memoryview)):
            from . import snapshot
            return snapshot.decode(model, value, self.state_widths, batch)
        expected = {key: (batch, w) for key, w in self.state_widths.items()}
        if not isinstance(value, dict) or set(value) != set(expected):
            got = sorted(value) if isinstance(value, dict) else type(value).__name__
            raise InputError(f"state must be a snapshot (bytes) or a dict with keys "
                             f"{sorted(expected)}, got {got}")
        arrays = {}
        for key, shape in expected.items():
            arr = _as_array(key, value[key], "float32")
            if arr.shape != shape:
                raise InputError(f"state {key!r}: expected shape {shape}, got {arr.shape}")
            arrays[key] = arr
        return arrays


def _step_spec(model: Model) -> _StepSpec:
    """The model's _StepSpec, made on first use (InputError when the model cannot step)."""
    spec = model.__dict__.get("_step_spec_cache")
    if spec is None:
        spec = model._step_spec_cache = _StepSpec(model)
    return spec


def _busy_error():
    return InputError("this Stream is being used by another thread; use one Stream per "
                      "thread (or a StreamPool, which serialises its callers)")


class Stream:
    """Step-by-step inference with carried state. One thread at a time: a second thread that
    calls it while it is busy gets InputError (the stream is never left half-updated)."""

    def __init__(self, model: Model, batch_size: int):
        spec = _step_spec(model)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
        self.model = model
        self.batch_size = B = batch_size
        p = model._plan
        self._spec = spec
        self._step_inputs = spec.step_inputs
        self._step_names = spec.step_names
        self._Ts = spec.Ts
        self._threads = model.num_threads   # the engine decides how to use them
        work = _check_memory(model, f"a stream of batch {B}", B, self._Ts, self._threads,
                             skip=spec.unbuffered, states=1)
        with limits.allocating(f"a stream of batch {B}"):
            self._buffers = [None if i in spec.unbuffered
                             else np.zeros(s.concrete(B, self._Ts), s.dtype)
                             for i, s in enumerate(p.inputs)]
            self._buffers += [_new_buffer(s.concrete(B, self._Ts), s.dtype, zeros=True)
                              for s in p.slots[len(p.inputs):]]
            self._h = [np.zeros((1, B, S), np.float32) for (_, _, _, H, S, _) in p.recurrent]
            self._c = [np.zeros((1, B, H), np.float32) for (_, _, _, H, S, _) in p.recurrent]
            self._work = _new_buffer(work, np.float32)
        self._restart()
        model._verified_for_use()           # as the steps would: a damaged model is refused
        # The first output without its time axis; without its batch axis too for a
        # (features,) x_t at batch size 1.
        self._out_shape = tuple(B if d == plan.BATCH else d for d in spec.out_axes)
        self._out_shape_unbatched = tuple(d for d in spec.out_axes if d != plan.BATCH)
        self._out_dtype = p.slots[p.outputs[0]].dtype
        self._busy = _engine.Busy()
        # The fast path of step() for one float input and a float first output (not a
        # Masking layer's uint8 mask): everything bound once in C.
        self._stepper = None
        if len(spec.step_inputs) == 1 and p.inputs[spec.step_inputs[0]].dtype == "float32" \
                and self._out_dtype == "float32":
            i = spec.step_inputs[0]
            self._stepper = _engine.Stepper(model._engine, self._buffers, B, self._Ts,
                                            self._threads, self._work, self._h, self._c,
                                            i, p.outputs[0], self._busy, _busy_error)
            row = self._buffers[i].shape
            row = tuple(n for n, d in zip(row, p.inputs[i].shape) if not plan.is_time(d))
            if B == 1:
                self._stepper.accept(row, self._out_shape, row[1:], self._out_shape_unbatched)
            else:
                self._stepper.accept(row, self._out_shape)
            # step() is the Stepper's own method, so that a step enters C with no Python
            # frame (~70 ns of a 0.4 us step); it falls back to _step_general.
            self._stepper.general = self._step_general
            self.step = self._stepper.step

    def _arrays(self):
        """(key, the live state array (B, width)) for each carried state."""
        for (hk, ck), h, c in zip(self._spec.keys, self._h, self._c):
            yield hk, h[0]
            if ck is not None:
                yield ck, c[0]

    def _restart(self) -> None:
        for (hk, ck), h, c in zip(self._spec.keys, self._h, self._c):
            h[0] = self._spec.start_state(hk, self.batch_size)
            if ck is not None:
                c[0] = self._spec.start_state(ck, self.batch_size)

    def reset(self) -> None:
        """Back to the initial state: zeros, or the model's constant initial state."""
        if not self._busy.acquire():
            raise _busy_error()
        try:
            self._restart()
        finally:
            self._busy.release()

    @property
    def state(self) -> dict:
        """Copies of the carried states: {'<layer>.h': (B, S), '<layer>.c': (B, H) (lstm)},
        keyed instead by the graph input a layer's initial state comes from in an ONNX model
        ('h0', 'c0'; 'h0[1]' for row 1 of a stacked state input)."""
        if not self._busy.acquire():
            raise _busy_error()
        try:
            return {key: a.copy() for key, a in self._arrays()}
        finally:
            self._busy.release()

    @state.setter
    def state(self, value) -> None:
        """Set from a dict like the getter's, or from a snapshot (bytes)."""
        arrays = self._spec.check_state(self.model, value, self.batch_size)
        if not self._busy.acquire():
            raise _busy_error()
        try:
            for key, a in self._arrays():
                a[...] = arrays[key]
        finally:
            self._busy.release()

    def snapshot(self) -> bytes:
        """The carried state as bytes (rnnrt/snapshot.py: versioned, checksummed, bound to
        this model): `model.stream(batch_size, state=snap)` resumes it here or in another
        process, and the resumed stream continues bit for bit as this one would."""
        from . import snapshot
        return snapshot.encode(self.model, self.state)

    def step(self, x_t, out=None) -> np.ndarray:
        """Advance one time step. x_t: (batch, features), or (features,) when batch_size is 1
        (a dict {name: array} for several inputs). Returns this step's first output."""
        if self._stepper is not None:      # instances call it directly (see __init__)
            return self._stepper.step(x_t, out)
        return self._step_general(x_t, out)

    def _step_general(self, x_t, out=None) -> np.ndarray:
        """step() for any input the C path does not take: checks and explains."""
        arrays, unbatched = self._spec.read_inputs(self.model, x_t, self.batch_size, True)
        shape = self._out_shape_unbatched if unbatched else self._out_shape
        if out is not None:
            _check_out(out, shape, self._out_dtype)
        if not self._busy.acquire():
            raise _busy_error()
        try:
            for i, arr in arrays.items():
                self._buffers[i].reshape(arr.shape)[...] = arr
            bad = self.model._engine.run(self._buffers, self.batch_size, self._Ts,
                                         self._threads, self._work, self._h, self._c)
            if bad >= 0:
                raise InputError("a token id is out of range of the embedding table")
            result = self._buffers[self.model._plan.outputs[0]].reshape(shape)
            if out is None:
                return result.copy()
            out[...] = result
            return out
        finally:
            self._busy.release()

    def __reduce__(self):
        raise TypeError("a Stream does not pickle: it holds live state bound to this process. "
                        "Take snap = stream.snapshot(), send snap and the Model (which pickles "
                        "by path), and resume with model.stream(state=snap)")
