"""The checks on a model rnnrt accepted: it is run the ways a user would, and what comes
back must agree with itself.

    poisoned-*            two calls whose new buffers were pre-filled with different bytes
                          (rnnrt.model._output_fill, a test hook) must give the same bytes:
                          a difference is a read of memory the engine never wrote
    step-fast-vs-general  Stream.step's C fast path and its general path, bit for bit
    snapshot-resume       a stream resumed from a snapshot steps as the original
    step-vs-run           a stream's last step against run() on the same sequence
    pool-vs-stream        StreamPool streams against a batched stream
    output-spec           run()'s outputs have the declared dtypes and shapes
    dangling_params()     every parameter a layer names is a tensor of the file

A failed check raises Defect; a typed rnnrt error ends the check (a call refused).
"""

from __future__ import annotations

import math

import numpy as np

import rnnrt
from rnnrt import model as rnnrt_model
from rnnrt import plan

# (batch, time) of the run() calls; a fixed batch replaces the batch.
SHAPES = ((1, 1), (3, 4))
STREAM_BT = (3, 4)
MAX_INPUT_ELEMENTS = 1 << 20     # inputs the harness itself would not allocate
FILLS = (0x00, 0xFF)             # 0xFF bytes are float32 NaN: they propagate


class Defect(Exception):
    """A check failed: outcome and site are set by the raiser."""

    def __init__(self, outcome, site, detail):
        super().__init__(detail)
        self.outcome, self.site, self.detail = outcome, site, detail


def _mismatch(check, detail):
    raise Defect("mismatch", f"mismatch:{check}", detail)


def _filled(fill, fn, *args, **kw):
    """fn(*args) with rnnrt's test hook filling new buffers with byte `fill`."""
    rnnrt_model._output_fill = fill
    try:
        return fn(*args, **kw)
    finally:
        rnnrt_model._output_fill = None


def _same_bytes(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _close(a, b, sensitivity=0.0) -> bool:
    """Equal up to float32 rounding of a different summation order: 1e-3 of the peak, or
    ten times how far the model's answer moves for a one-rounding nudge of its inputs
    (mutated weights make some models chaotic). Values past 1e30 or not finite are left
    out: near float32's largest, the rounding decides which sums overflow."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind != "f":
        return np.array_equal(a, b)
    with np.errstate(invalid="ignore", over="ignore"):
        keep = np.isfinite(a) & np.isfinite(b) & (np.abs(a) < 1e30) & (np.abs(b) < 1e30)
        a, b = a[keep].astype(np.float64), b[keep].astype(np.float64)
        peak = float(np.abs(b).max(initial=0.0))
        atol = max(1e-3 * max(1.0, peak), 10 * sensitivity)
        return bool(np.allclose(a, b, rtol=1e-3, atol=atol))


def _sensitivity(model, feeds, out) -> float:
    """How far run()'s first output moves when every float input is nudged by one
    rounding (the model's own float32 sensitivity)."""
    nudged = {k: (v * np.float32(1 + 2 ** -23) if v.dtype == np.float32 else v)
              for k, v in feeds.items()}
    with np.errstate(invalid="ignore", over="ignore"):
        moved = np.abs(model.run(nudged)[0].astype(np.float64) - out)
        moved = moved[np.isfinite(moved)]
        return float(moved.max(initial=0.0))


def _extreme_weights(model) -> bool:
    """Whether a weight of the model is past 1e30 or not finite. Then a product of it with
    an input is near float32's largest, and which partial sums overflow depends on the
    summation order, which a step (B rows) and run() (B x T rows) need not share: their
    answers may differ by more than rounding, both right (a campaign find: a Dense kernel
    of -3e38 entries, inf in one path and -2.3e38 in the other)."""
    def extreme(v):
        if isinstance(v, dict):
            return any(extreme(x) for x in v.values())
        if isinstance(v, (list, tuple)):
            return any(extreme(x) for x in v)
        if isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.size:
            with np.errstate(invalid="ignore"):
                return not bool(np.all(np.abs(v) < 1e30))
        return False
    return any(extreme(op) for op in model._plan.ops)


def _describe(a, b) -> str:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return f"{a.dtype} {a.shape} vs {b.dtype} {b.shape}"
    diff = np.flatnonzero(a.reshape(-1).view(np.uint8) != b.reshape(-1).view(np.uint8))
    return f"{a.dtype} {a.shape}: {diff.size} differing bytes, first at byte {diff[:1]}"


def _concrete(shape, B, T):
    # int(): a JSON true the planner let through as a dimension is 1 here
    return tuple(B if d == plan.BATCH else T if plan.is_time(d) else int(d) for d in shape)


def make_inputs(model, B, T, gen) -> dict | None:
    """Random inputs of the model's declared shapes (None when the harness would not hold
    them): floats, token ids inside the vocabulary, lengths 0..T."""
    feeds = {}
    for spec in model._plan.inputs:
        shape = _concrete(spec.shape, B, T)
        if math.prod(max(d, 1) for d in shape) > MAX_INPUT_ELEMENTS:  # (NumPy's rule)
            return None
        if spec.dtype == "float32":
            feeds[spec.name] = gen.standard_normal(shape).astype(np.float32)
        elif spec.dtype == "int64":
            vocab = model._vocab.get(spec.name, 4)
            feeds[spec.name] = gen.integers(0, max(1, vocab), shape).astype(np.int64)
        else:
            feeds[spec.name] = gen.integers(0, T + 1, shape).astype(np.int32)
    return feeds


def _check_outputs(model, outs, B, T):
    if len(outs) != len(model.outputs):
        _mismatch("output-spec", f"{len(outs)} outputs, the model declares "
                                 f"{len(model.outputs)}")
    for out, spec, slot in zip(outs, model.outputs, model._plan.outputs):
        want = _concrete(model._plan.slots[slot].shape, B, T)
        if out.dtype != np.dtype(spec.dtype) or out.shape != want:
            _mismatch("output-spec", f"output {spec.name!r}: {out.dtype} {out.shape}, "
                                     f"declared {spec.dtype} {want}")


def check_runs(model, B, T, gen, log):
    """run() twice on the same inputs, buffers pre-filled with different bytes."""
    feeds = make_inputs(model, B, T, gen)
    if feeds is None:
        return None
    first = _filled(FILLS[0], model.run, feeds)
    second = _filled(FILLS[1], model.run, feeds)
    _check_outputs(model, first, B, T)
    for k, (a, b) in enumerate(zip(first, second)):
        if not _same_bytes(a, b):
            _mismatch("poisoned-run", f"run(batch {B}, time {T}) output {k} depends on "
                                      f"the buffers' fill: {_describe(a, b)}")
    log.append(f"run {B}x{T}")
    return feeds, first


def _stream_feeds(model, feeds, T):
    """feeds with full lengths (int32 inputs) and zeros for every float input without a
    time axis (initial states, however the graph reads them): what a stream computes (every
    row, to the end, from the model's own initial state) for the run it is compared with."""
    out = dict(feeds)
    for s in model._plan.inputs:
        if s.dtype == "int32":
            out[s.name] = np.full_like(feeds[s.name], T)
        elif s.dtype == "float32" and not any(plan.is_time(d) for d in s.shape):
            out[s.name] = np.zeros_like(feeds[s.name])
    return out


def _at_step(x, shape, t):
    """Step t of input x of symbolic shape `shape` (all of x when it has no time axis)."""
    t_axes = [k for k, d in enumerate(shape) if plan.is_time(d)]
    return np.ascontiguousarray(np.take(x, t, axis=t_axes[0]) if t_axes else x)


def _as_general(x_t):
    """The same step input in a form only the general step path takes (lists)."""
    if isinstance(x_t, dict):
        return {k: v.tolist() for k, v in x_t.items()}
    return x_t.tolist()


def check_stream(model, gen, log):
    """Step a sequence through streams: fast path under two fills, the general path, a
    resumed snapshot; compare with run() on the same sequence."""
    B, T = STREAM_BT
    if model.fixed_batch is not None:
        B = model.fixed_batch
    try:
        streams = [_filled(f, model.stream, B) for f in FILLS]
    except rnnrt.InputError:
        return None       # not streamable: the refusal is the answer
    spec = rnnrt_model._step_spec(model)
    feeds = make_inputs(model, B, T, gen)
    if feeds is None:
        return None
    feeds = _stream_feeds(model, feeds, T)
    general = _filled(FILLS[1], model.stream, B)
    steps = []
    for t in range(T):
        x_t = {}
        for i in spec.step_inputs:
            s = model._plan.inputs[i]
            x_t[s.name] = _at_step(feeds[s.name], s.shape, t)
        if len(x_t) == 1:
            x_t = next(iter(x_t.values()))
        if t == T - 1:
            snap = streams[0].snapshot()
        outs = [_filled(f, s.step, x_t) for f, s in zip(FILLS, streams)]
        if not _same_bytes(outs[0], outs[1]):
            _mismatch("poisoned-step", f"step {t} depends on the buffers' fill: "
                                       f"{_describe(outs[0], outs[1])}")
        slow = _filled(FILLS[1], general.step, _as_general(x_t))
        if not _same_bytes(outs[0], slow):
            _mismatch("step-fast-vs-general", f"step {t}: the fast path gives "
                                              f"{_describe(outs[0], slow)} from the general")
        steps.append(outs[0])
    resumed = _filled(FILLS[1], model.stream, B, state=snap)
    again = resumed.step(x_t)
    if not _same_bytes(again, steps[-1]):
        _mismatch("snapshot-resume", f"a stream resumed from a snapshot steps to "
                                     f"{_describe(again, steps[-1])}")
    full = _filled(FILLS[0], model.run, feeds)[0]
    out_shape = model._plan.slots[model._plan.outputs[0]].shape
    t_axes = [k for k, d in enumerate(out_shape) if plan.is_time(d)]
    want = np.take(full, T - 1, axis=t_axes[0]) if t_axes else full
    # A stream runs every row to the end: constant lengths (seq_lens_value) apply to run()
    # only, and there the two may differ.
    const_lengths = any(op.get("rec", {}).get("lensv") is not None for op in model._plan.ops)
    if not const_lengths and not _extreme_weights(model) and \
            not _close(steps[-1], want) and \
            not _close(steps[-1], want, _sensitivity(model, feeds, full)):
        _mismatch("step-vs-run", f"the last step of a stream vs run() at that step: "
                                 f"{_describe(steps[-1], want)}, max difference "
                                 f"{_maxdiff(steps[-1], want)}")
    log.append(f"stream {B}x{T}")
    return feeds, steps, B


def _maxdiff(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype.kind != "f" or b.dtype.kind != "f":
        return "n/a"
    with np.errstate(invalid="ignore", over="ignore"):
        return float(np.nanmax(np.abs(a.astype(np.float64) - b), initial=0.0))


def check_pool(model, stream_result, log):
    """The same sequences through a StreamPool (batch-1 streams stepped together), under
    two fills, against the batched stream."""
    if stream_result is None:
        return
    feeds, steps, B = stream_result
    if model.fixed_batch not in (None, 1):
        return
    spec = rnnrt_model._step_spec(model)
    got = []
    for fill in FILLS:
        pool = _filled(fill, model.stream_pool, 2)
        ids = [pool.open() for _ in range(B)]
        for t in range(len(steps)):
            x_t = {}
            for i in spec.step_inputs:
                s = model._plan.inputs[i]
                step_shape = tuple(d for d in s.shape if not plan.is_time(d))
                x = _at_step(feeds[s.name], s.shape, t)
                if plan.BATCH in step_shape:
                    x = np.moveaxis(x, step_shape.index(plan.BATCH), 0)
                x_t[s.name] = np.ascontiguousarray(x)
            if len(x_t) == 1:
                x_t = next(iter(x_t.values()))
            out = _filled(fill, pool.step, ids, x_t)
        got.append(out)
    if not _same_bytes(got[0], got[1]):
        _mismatch("poisoned-pool", f"a pool step depends on the buffers' fill: "
                                   f"{_describe(got[0], got[1])}")
    out_axes = spec.out_axes
    b_axis = out_axes.index(plan.BATCH)
    want = np.moveaxis(steps[-1], b_axis, 0)
    if not _close(got[0], want):
        _mismatch("pool-vs-stream", f"pool streams vs a batched stream: "
                                    f"{_describe(got[0], want)}")
    log.append("pool")


def check_generate(model, gen, log):
    """generate() a few steps, under two fills."""
    spec = rnnrt_model._step_spec(model)
    if len(spec.step_inputs) != 1:
        return
    s = model._plan.inputs[spec.step_inputs[0]]
    vocab = model._vocab.get(s.name)
    if vocab is not None:
        prompt = gen.integers(0, vocab, 3)
        kw = {"seed": 7, "temperature": 0.5}
    else:
        width = s.shape[-1] if isinstance(s.shape[-1], int) else 1
        prompt = gen.standard_normal((3, width)).astype(np.float32)
        kw = {}
    try:
        got = [_filled(f, model.generate, prompt, 4, **kw) for f in FILLS]
    except rnnrt.InputError:
        return     # not a model generate() takes
    if not _same_bytes(got[0], got[1]):
        _mismatch("poisoned-generate", f"generate() depends on the buffers' fill: "
                                       f"{_describe(got[0], got[1])}")
    log.append("generate")


# The parameters each layer kind reads (format v1 recurrent layers: Wt and Rt).
READS = {"Recurrent": {"Wp", "Rp", "b", "rbh", "P", "Projt", "h0_value", "c0_value",
                       "seq_lens_value", "Wt", "Rt"},
         "Dense": {"kernel", "bias"}, "Embedding": {"table"}}


def dangling_params(model) -> list:
    """(layer kind, role, name) of each parameter the graph names whose tensor is not in the
    file."""
    out = []
    for layer in model.graph.get("layers", []):
        params = layer.get("params") if isinstance(layer, dict) else None
        kind = layer.get("kind") if isinstance(layer, dict) else None
        for role, name in (params.items() if isinstance(params, dict) else ()):
            if name is not None and (not isinstance(name, str)
                                     or name not in model._file.tensors):
                out.append((kind, role, name))
    return out
