"""From a .rnnrt graph document to an execution plan: validation and shape inference.

The document comes from a file and is not trusted: every attribute is type-checked and
every packed tensor's shape is checked against the attributes before C sees a pointer.
Shapes are symbolic: "batch" stands for the batch size of the call, and each graph input
with a time axis brings its own time symbol ("time", "time1", ...), so that the inputs of an
encoder and a decoder may have different lengths. Tensors computed from an input keep its
symbol; a layer reading two sequences requires the same symbol for both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import limits
from .errors import FormatError
from .layers import KINDS
# Re-exported: the symbols and activation codes the engine side and tests name as plan.*
from .layers.reading import (ACT_CODES, BATCH, TIME, fail, is_time, time_index,  # noqa: F401
                             time_symbol)

MAX_TIMES = 64      # sequence inputs with their own length (the engine's RNNRT_MAX_TIMES)
OP_CODES = {kind: cls.OP_CODE for kind, cls in KINDS.items()}


@dataclass
class Slot:
    """One tensor of the plan: its symbolic shape and dtype; for a graph input, `fixed`:
    per axis, the size a symbolic axis must have (what the source declares), or None."""
    name: str
    shape: tuple
    dtype: str
    fixed: tuple | None = None

    def concrete(self, B: int, Ts) -> tuple:
        """The shape for batch size B and time lengths Ts (indexed by time_index)."""
        return tuple(B if d == BATCH else Ts[time_index(d)] if is_time(d) else d
                     for d in self.shape)


@dataclass
class Plan:
    """What the engine needs: slots, op specs, and which slots are inputs / outputs."""
    slots: list            # list[Slot]
    ops: list              # list[dict], one per layer, for _engine.Plan
    inputs: list           # list[Slot] of the graph inputs (slot index = position)
    outputs: list          # slot indices of the graph outputs
    recurrent: list        # (layer name, cell, D, H, S, direction) per recurrent op
    num_times: int         # how many time symbols the inputs bring
    state_keys: list       # (h key, c key or None) per recurrent op: Stream.state's keys
    step_refusals: list    # (layer name, why) per layer that cannot run step by step

    def slot_bytes(self, B: int, Ts, skip=()) -> int:
        """Bytes of the slots (but the indices in `skip`) for batch B and time lengths Ts.
        An axis of size 0 counts as 1: NumPy refuses an array whose other axes overflow its
        sizes even when one axis is 0, so such a slot must not pass as empty."""
        return sum(math.prod(max(d, 1) for d in s.concrete(B, Ts)) * np.dtype(s.dtype).itemsize
                   for i, s in enumerate(self.slots) if i not in skip)

    def state_bytes(self, B: int) -> int:
        """Bytes of the states a stream of B rows carries: h and c of each recurrent layer
        (a c of H floats for every cell kind, as Stream keeps them)."""
        return sum(4 * B * (S + H) for _, _, _, H, S, _ in self.recurrent)


def _check_params(layer, tensors):
    """Each role a layer names is one its kind reads (its class's ROLES), naming a tensor of
    the file (null: no tensor). The kinds' plan_op read every role a layer names, so a file
    whose params name another role, or a tensor it does not hold, is refused rather than run
    without it."""
    params = layer.get("params", {})
    if not isinstance(params, dict):
        fail(layer, f"params must map roles to tensor names, got {params!r:.100}")
    allowed = KINDS[layer["kind"]].ROLES
    unknown = sorted(set(params) - allowed)
    if unknown:
        fail(layer, f"unknown parameter role(s) {unknown}; a {layer['kind']} layer reads "
                    f"{sorted(allowed) or 'none'}")
    for role, name in params.items():
        if name is not None and (not isinstance(name, str) or name not in tensors):
            fail(layer, f"parameter {role!r} names tensor {name!r:.100}, which is not in "
                        f"the file")


def _is_size(d) -> bool:
    """Whether d is a fixed axis size the kernels can take (a C int; JSON true is no size)."""
    return isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= limits.C_INT_MAX


def input_shape(info: dict, time_major: bool, time: str) -> tuple:
    """Symbolic shape of a graph input: when its first two axes are dynamic they are batch
    and `time` (time first for a time-major consumer); any other dynamic axis is batch."""
    shape = info["shape"]
    dyn = [i for i, d in enumerate(shape) if d is None or isinstance(d, str)]
    out = list(shape)
    if len(dyn) >= 2 and dyn[:2] == [0, 1]:
        out[0], out[1] = (time, BATCH) if time_major else (BATCH, time)
    for i in dyn:
        if out[i] not in (BATCH, time):
            out[i] = BATCH
    return tuple(out)


def _declared(info: dict, sym: tuple):
    """A graph input's declared sizes of its symbolic axes (ir.TensorInfo.declared)."""
    declared = info.get("declared")
    if declared is None:
        return None
    if not isinstance(declared, list) or len(declared) != len(sym) or not all(
            d is None or (type(d) is int and 1 <= d < 2 ** 31 and isinstance(s, str))
            for d, s in zip(declared, sym)):
        raise FormatError(f"graph input {info.get('name')!r}: bad declared sizes {declared!r} "
                          f"for shape {list(sym)}")
    return tuple(declared)


def _first_time_major(doc, name) -> bool:
    """Whether the first recurrent layer downstream of tensor `name` is time-major."""
    frontier = {name}
    for layer in doc["layers"]:
        a = layer["attrs"]
        reads = {v for k, v in a.items() if k in ("x", "ids", "h0", "c0") and v}
        if reads & frontier:
            if layer["kind"] == "Recurrent":
                return bool(a.get("time_major"))
            frontier |= {v for k, v in a.items() if k in ("out", "mask") and v}
    return False


def build(doc: dict, tensors: dict) -> Plan:
    """Validate a graph document against its tensors and infer every tensor's shape."""
    try:
        return _build(doc, tensors)
    except (TypeError, KeyError, AttributeError, ValueError, IndexError) as e:
        # The explicit checks name what they expected; a document malformed in a way they do
        # not foresee (a list where a dict belongs...) still gets a typed error.
        raise FormatError(f"malformed graph document: {type(e).__name__}: {e}") from None


def _build(doc: dict, tensors: dict) -> Plan:
    if not isinstance(doc, dict) or not all(k in doc for k in ("inputs", "layers", "outputs")):
        raise FormatError("graph must have inputs, layers and outputs")
    slots, index = [], {}

    def define(name, shape, dtype, layer=None):
        if not isinstance(name, str) or name in index:
            raise FormatError(f"tensor name {name!r} is invalid or defined twice")
        index[name] = len(slots)
        slots.append(Slot(name, tuple(shape), dtype))
        return index[name]

    def read(layer, name, rank=None):
        if name is None:
            return -1, None
        if name not in index:
            fail(layer, f"reads {name!r}, which is not defined before it")
        s = slots[index[name]]
        if rank is not None and len(s.shape) != rank:
            fail(layer, f"input {name!r} must have rank {rank}, has shape {s.shape}")
        return index[name], s

    inputs, num_times = [], 0
    for info in doc["inputs"]:
        if not isinstance(info, dict) or info.get("dtype") not in ("float32", "int64", "int32"):
            raise FormatError(f"bad graph input {info!r}")
        shape = info.get("shape")
        if not isinstance(shape, list) or not all(d is None or isinstance(d, str) or _is_size(d)
                                                  for d in shape):
            raise FormatError(f"bad shape for graph input {info.get('name')!r}: {shape!r:.200}; "
                              f"each axis must be null or a name (dynamic), or an int in "
                              f"0..{limits.C_INT_MAX}")
        time = time_symbol(num_times)
        sym = input_shape(info, _first_time_major(doc, info.get("name")), time)
        if sym.count(BATCH) > 1 or sym.count(time) > 1:
            # A second batch or time axis would be sized by the call but indexed by no
            # kernel (a dynamic axis named like the time axis is one).
            raise FormatError(f"graph input {info.get('name')!r}: shape {shape!r} has dynamic "
                              f"axes {[i for i, d in enumerate(sym) if not isinstance(d, int)]}"
                              f"; rnnrt runs one dynamic axis (the batch), or two when they "
                              f"are the first two (batch and time)")
        num_times += time in sym
        define(info.get("name"), sym, info["dtype"])
        slots[-1].fixed = _declared(info, sym)
        inputs.append(slots[-1])

    if num_times > MAX_TIMES:
        raise FormatError(f"the graph has {num_times} sequence inputs; at most {MAX_TIMES}")
    ops, recurrent, state_keys, names, refusals = [], [], [], set(), []
    for layer in doc["layers"]:
        if not isinstance(layer, dict) or layer.get("kind") not in KINDS:
            raise FormatError(f"unknown layer {layer!r:.200}")
        if not isinstance(layer.get("attrs"), dict) or not isinstance(layer.get("name"), str):
            raise FormatError(f"layer {layer.get('name')!r}: attrs and name required")
        if layer["name"] in names:
            # Names key a stream's state and every message: two would be told apart by none.
            raise FormatError(f"two layers are named {layer['name']!r}")
        names.add(layer["name"])
        kind = layer["kind"]
        _check_params(layer, tensors)
        op = KINDS[kind].plan_op(layer, tensors, read, define)
        op["kind"] = KINDS[kind].OP_CODE
        why = KINDS[kind].step_refusal(layer)
        if why is not None:
            refusals.append((layer["name"], why))
        if kind == "Recurrent":
            recurrent.append(op.pop("_info"))
            state_keys.append(op.pop("_state_keys"))
            op["stream_state"] = len(recurrent) - 1
        ops.append(op)
    keys = [k for pair in state_keys for k in pair if k is not None]
    if len(set(keys)) != len(keys):
        raise FormatError(f"two recurrent layers carry state under one key: {keys}")
    outputs = []
    if not isinstance(doc["outputs"], list) or not doc["outputs"]:
        raise FormatError("graph has no outputs")
    for name in doc["outputs"]:
        if name not in index:
            raise FormatError(f"graph output {name!r} is not produced by any layer")
        outputs.append(index[name])
    p = Plan(slots, ops, inputs, outputs, recurrent, num_times, state_keys, refusals)
    # Fixed axes (up to 2**31 - 1 each) can make even one row of one step too big to run.
    limits.check_fits(p.slot_bytes(1, [1] * num_times) + p.state_bytes(1),
                      "the graph: one sequence of one step", FormatError)
    return p
