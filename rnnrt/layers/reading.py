"""Reading one layer of a .rnnrt graph document, which comes from a file and is not trusted:
the helpers each layer kind's `plan_op` checks its attributes, tensors and input shapes with.

Shapes are symbolic: "batch" stands for the batch size of the call, and each graph input
with a time axis brings its own time symbol ("time", "time1", ...), so that the inputs of
an encoder and a decoder may have different lengths (rnnrt/plan.py explains).
"""

from __future__ import annotations

import numpy as np

from ..errors import FormatError
from .base import ROW_WISE

BATCH, TIME = "batch", "time"


def time_symbol(k: int) -> str:
    """The symbol of the k-th time axis: "time", "time1", "time2", ..."""
    return TIME if k == 0 else f"{TIME}{k}"


def is_time(d) -> bool:
    return isinstance(d, str) and d.startswith(TIME)


def time_index(d) -> int:
    """k for time_symbol(k)."""
    return int(d[len(TIME):] or 0)

ACT_CODES = {name: i for i, name in enumerate(
    ["linear", "relu", "tanh", "sigmoid", "affine", "leaky_relu", "thresholded_relu",
     "scaled_tanh", "hard_sigmoid", "elu", "softsign", "softplus", "relu6", "selu", "silu",
     "exponential", "gelu", "gelu_tanh", "mish", "hard_silu", "log_sigmoid", "tanh_shrink",
     "softmax", "log_softmax"])}


def fail(layer, msg):
    raise FormatError(f"layer {layer.get('name')!r} ({layer.get('kind')}): {msg}")


def attr(layer, key, types, optional=False):
    attrs = layer["attrs"]
    v = attrs.get(key)
    if v is None and optional:
        return None
    if isinstance(v, bool) and bool not in types:
        fail(layer, f"attribute {key!r} must be {types}, got {v!r}")
    if not isinstance(v, types):
        fail(layer, f"attribute {key!r} must be {[t.__name__ for t in types]}, got {v!r}")
    if isinstance(v, int) and not -2 ** 31 < v < 2 ** 31:   # C ints in the kernels
        fail(layer, f"attribute {key!r} is out of range: {v}")
    return v


def act_code(layer, d, row_wise_ok=False):
    if not isinstance(d, dict) or not isinstance(d.get("name"), str):
        fail(layer, f"bad activation {d!r}")
    name = d["name"]
    if name not in ACT_CODES or (name in ROW_WISE and not row_wise_ok):
        fail(layer, f"unknown activation {name!r}")
    alpha, beta = d.get("alpha", 0.0), d.get("beta", 0.0)
    if not all(isinstance(v, (int, float)) and np.isfinite(v) for v in (alpha, beta)):
        fail(layer, f"activation {name!r} parameters must be finite numbers")
    return (ACT_CODES[name], float(alpha), float(beta))


def lookup(layer, tensors, role):
    """The tensor a layer names for `role`, or None (its shape is checked by the caller;
    _check_params made sure that a name is a tensor of the file)."""
    name = layer.get("params", {}).get(role)
    return None if name is None else tensors[name]


def tensor(layer, tensors, role, shape, optional=False):
    arr = lookup(layer, tensors, role)
    if arr is None:
        if optional:
            return None
        fail(layer, f"missing parameter {role!r}")
    if arr.dtype != np.float32 or arr.shape != tuple(shape):
        fail(layer, f"parameter {role!r} must be float32 {tuple(shape)}, got {arr.dtype} "
                     f"{arr.shape}")
    return arr


def features(layer, xs) -> int:
    """The size of x's last axis, which a row-wise kernel takes as its fixed row length."""
    if xs.dtype != "float32" or not xs.shape or not isinstance(xs.shape[-1], int):
        fail(layer, f"x must be float32 with a fixed last axis, got {xs.dtype} {xs.shape}")
    return xs.shape[-1]


def rows_of(layer, shape):
    """(tsym, rows_mult) of a tensor whose rows are all axes but the last: rows =
    batch * T[tsym] * rows_mult, tsym -1 when there is no time axis."""
    lead = shape[:-1]
    if BATCH not in lead:
        fail(layer, f"input of shape {shape} has no batch axis")
    mult = 1
    for d in lead:
        if isinstance(d, int):
            mult *= d
    times = [d for d in lead if is_time(d)]
    return (time_index(times[0]) if times else -1), mult


def sequence_time(layer, shape, time_major, what="x"):
    """The time symbol of a (batch, time, ...) / (time, batch, ...) tensor."""
    t = shape[0] if time_major else shape[1] if len(shape) > 1 else None
    other = shape[1] if time_major else shape[0]
    if not is_time(t) or other != BATCH:
        order = "(time, batch, ...)" if time_major else "(batch, time, ...)"
        fail(layer, f"{what} must be a sequence {order}, got shape {shape}")
    return t


def row_op(layer, read, define, out_width, **extra):
    x_i, xs = read(layer, attr(layer, "x", (str,)))
    n = features(layer, xs)
    w = out_width(n)
    tsym, mult = rows_of(layer, xs.shape)
    out = define(attr(layer, "out", (str,)), xs.shape[:-1] + (w,), "float32")
    return {"in": [x_i], "out": [out], "tsym": tsym, "rows_mult": mult, "n_in": n, "n_out": w,
            **extra}


def count_of(layer, dims) -> dict:
    """How a product of symbolic dims is computed at run time: batch (0/1) x T[tsym] x mult."""
    if sum(d == BATCH for d in dims) > 1 or sum(is_time(d) for d in dims) > 1:
        fail(layer, f"axes {dims} repeat batch or time")
    times = [time_index(d) for d in dims if is_time(d)]
    mult = 1
    for d in dims:
        if isinstance(d, int):
            mult *= d
    return {"b": int(BATCH in dims), "t": times[0] if times else -1, "mult": mult}


def fixed_axis(layer, shape, axis):
    if not 0 <= axis < len(shape) or not isinstance(shape[axis], int):
        fail(layer, f"axis {axis} of a tensor of shape {shape} is not an axis of fixed size")


def axis_op(layer, shape, axis, ins, out, lens, **extra):
    return {"in": ins, "out": [out], "tsym": -1, "rows_mult": 1, "n_in": 0, "n_out": 0,
            "outer": count_of(layer, shape[:axis]), "inner": count_of(layer, shape[axis + 1:]),
            "axis_len": lens, **extra}
