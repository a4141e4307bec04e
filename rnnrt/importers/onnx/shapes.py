"""Shape arithmetic: the ops exporters use to build zero states and reshape targets from
the input's run-time shape (Shape, Gather, Slice, Concat, Unsqueeze, ConstantOfShape,
Expand ...), evaluated on SymInts and Fill values (see values.py). A run-time size stays
symbolic (its Axis); anything that would need its value fails with UnsupportedModelError."""

from __future__ import annotations

import numpy as np

from ...errors import FormatError, UnsupportedModelError
from .values import Axis, Const, Fill, Seq, SymInts, axis_index, dims_of


def items(v, where) -> list:
    """The entries of a SymInts or integer Const, as a list of ints and Axis objects."""
    if isinstance(v, SymInts):
        return list(v.items)
    if isinstance(v, Const) and v.value.dtype.kind in "iu":
        return [int(x) for x in np.asarray(v.value).reshape(-1)]
    raise UnsupportedModelError(f"{where}: expected integers (a shape), got {_describe(v)}")


def const_ints(v, where, name) -> list:
    """The entries of an integer constant (None for an absent input)."""
    if v is None:
        return None
    if not isinstance(v, Const):
        raise UnsupportedModelError(f"{where}: {name} must be a constant, got {_describe(v)}")
    if v.value.dtype.kind not in "iu":
        raise FormatError(f"{where}: {name} must be integers, got {v.value.dtype}")
    return [int(x) for x in np.asarray(v.value).reshape(-1)]


def _dims(v, where) -> list:
    """The shape of a run-time, filled or shape-vector value."""
    if isinstance(v, Seq):
        return list(dims_of(v.view))
    if isinstance(v, Fill):
        return list(v.dims)
    if isinstance(v, SymInts):
        return [] if v.scalar else [len(v.items)]
    raise UnsupportedModelError(f"{where}: the shape of {_describe(v)}")


def _fill(v, where) -> Fill:
    if not isinstance(v, Fill):
        raise UnsupportedModelError(f"{where}: {_describe(v)} where a filled tensor (zeros "
                                    f"of a run-time shape) was expected")
    return v


def _sizes(entries, where) -> tuple:
    """A shape: run-time sizes and non-negative ints."""
    if any(isinstance(e, int) and e < 0 for e in entries):
        raise FormatError(f"{where}: a shape with a negative size {list(entries)}")
    return tuple(entries)


def _describe(v) -> str:
    return {Const: "a constant", SymInts: "a shape computed at run time",
            Fill: "a filled tensor", Seq: "a run-time tensor",
            type(None): "a missing input"}.get(type(v), repr(v))


def _sym(entries, scalar=False):
    if all(isinstance(e, int) for e in entries):
        arr = np.array(entries, np.int64)
        return Const(arr.reshape(()) if scalar else arr)
    return SymInts(tuple(entries), scalar)


def shape(imp, node, where, ins, attrs):
    dims = _dims(ins[0], where)
    start, end = attrs.get("start", 0), attrs.get("end", None)
    return [_sym(dims[slice(start, end)])]


def gather(imp, node, where, ins, attrs):
    data, idx = ins
    if attrs.get("axis", 0) not in (0, -1):
        raise UnsupportedModelError(f"{where}: Gather on a shape must use axis 0")
    entries = items(data, where)
    index = const_ints(idx, where, "indices")
    if any(not -len(entries) <= i < len(entries) for i in index):
        raise FormatError(f"{where}: indices {index} out of range for {len(entries)} entries")
    picked = [entries[i] for i in index]
    return [_sym(picked, scalar=np.asarray(idx.value).ndim == 0)]


def slice_(imp, node, where, ins, attrs):
    starts, ends, axes, steps = _slice_args(ins, attrs, where)
    if isinstance(ins[0], Fill):
        return [_slice_fill(ins[0], starts, ends, axes, steps, where)]
    entries = items(ins[0], where)
    if axes not in ([0], [-1]) or len(starts) != 1:
        raise UnsupportedModelError(f"{where}: Slice of a shape must be along axis 0")
    return [_sym(entries[slice(starts[0], ends[0], steps[0])])]


def _slice_fill(v, starts, ends, axes, steps, where):
    dims = list(v.dims)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = axis_index(axis, len(dims), where)
        d = dims[axis]
        if isinstance(d, Axis):   # only the whole of a run-time axis can be kept
            if (start, step) != (0, 1) or end < 2 ** 31 - 1:
                raise UnsupportedModelError(f"{where}: Slice of a run-time axis")
            continue
        dims[axis] = len(range(*slice(start, end, step).indices(d)))
    return Fill(v.value, tuple(dims))


def _slice_args(ins, attrs, where):
    """Slice's (starts, ends, axes, steps), as lists of one length (axes and steps filled
    in with their defaults)."""
    if "starts" in attrs:   # opset < 10
        starts, ends = list(attrs["starts"]), list(attrs.get("ends", []))
        axes, steps = attrs.get("axes"), None
    else:
        starts, ends, axes, steps = [const_ints(ins[i] if i < len(ins) else None, where, n)
                                     for i, n in ((1, "starts"), (2, "ends"), (3, "axes"),
                                                  (4, "steps"))]
    if starts is None or ends is None:
        raise FormatError(f"{where}: Slice needs starts and ends")
    axes = list(range(len(starts))) if axes is None else list(axes)
    steps = [1] * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise FormatError(f"{where}: Slice's starts {starts}, ends {ends}, axes {axes} and "
                          f"steps {steps} differ in length")
    if 0 in steps:
        raise FormatError(f"{where}: Slice with a step of 0")
    return starts, ends, axes, steps


def concat(imp, node, where, ins, attrs):
    if any(isinstance(v, Fill) for v in ins):
        return [_concat_fill(ins, attrs.get("axis"), where)]
    entries = []
    for v in ins:
        entries.extend(items(v, where))
    return [_sym(entries)]


def _concat_fill(ins, axis, where):
    values = set()
    dims = None
    for v in ins:
        if isinstance(v, Const) and np.all(v.value == v.value.reshape(-1)[0]):
            v = Fill(float(v.value.reshape(-1)[0]), tuple(v.value.shape))
        if not isinstance(v, Fill):
            raise UnsupportedModelError(f"{where}: Concat of a filled tensor with {_describe(v)}")
        values.add(v.value)
        if dims is None:
            dims = list(v.dims)
            ax = axis_index(axis, len(dims), where)
        elif len(v.dims) != len(dims):
            raise FormatError(f"{where}: Concat of tensors of ranks {len(dims)} and "
                              f"{len(v.dims)}")
        else:
            if not isinstance(dims[ax], int) or not isinstance(v.dims[ax], int):
                raise UnsupportedModelError(f"{where}: Concat along a run-time axis")
            dims[ax] += v.dims[ax]
    if len(values) != 1:
        raise UnsupportedModelError(f"{where}: Concat of tensors filled with different values")
    return Fill(values.pop(), tuple(dims))


def _axes(ins, attrs, where):
    if "axes" in attrs:
        return list(attrs["axes"])
    return const_ints(ins[1] if len(ins) > 1 else None, where, "axes")


def unsqueeze(imp, node, where, ins, attrs):
    axes = _axes(ins, attrs, where)
    if axes is None:
        raise FormatError(f"{where}: Unsqueeze without axes")
    v = ins[0]
    if isinstance(v, SymInts):
        if not v.scalar or axes not in ([0], [-1]):
            raise UnsupportedModelError(f"{where}: Unsqueeze of a shape vector")
        return [SymInts(v.items, False)]
    dims = list(_fill(v, where).dims)
    rank = len(dims) + len(axes)
    for a in sorted(axis_index(x, rank, where) for x in axes):
        dims.insert(a, 1)
    return [Fill(v.value, tuple(dims))]


def squeeze(imp, node, where, ins, attrs):
    axes = _axes(ins, attrs, where)
    v = ins[0]
    if isinstance(v, SymInts):
        if v.scalar or len(v.items) != 1:
            raise UnsupportedModelError(f"{where}: Squeeze of a shape vector")
        return [SymInts(v.items, True)]
    dims = list(_fill(v, where).dims)
    drop = {axis_index(a, len(dims), where) for a in axes} if axes else \
        {i for i, d in enumerate(dims) if d == 1}
    if any(dims[a] != 1 for a in drop):
        raise UnsupportedModelError(f"{where}: Squeeze of an axis whose size is not 1")
    return [Fill(v.value, tuple(d for i, d in enumerate(dims) if i not in drop))]


def same(imp, node, where, ins, attrs):
    """Identity, Cast: the value is unchanged (sizes stay integers, fills stay fills)."""
    return [ins[0]]


def reshape(imp, node, where, ins, attrs):
    v, target = ins[0], const_ints(ins[1], where, "shape")
    if isinstance(v, SymInts) and target in ([-1], [1], [len(v.items)]):
        return [SymInts(v.items, False)]
    if isinstance(v, SymInts) and target == [] and len(v.items) == 1:
        return [SymInts(v.items, True)]
    raise UnsupportedModelError(f"{where}: Reshape of {_describe(v)} to {target}")


def constant_of_shape(imp, node, where, ins, attrs):
    value = attrs.get("value")
    if value is not None and (value.size != 1 or value.dtype.kind not in "fiub"):
        raise FormatError(f"{where}: ConstantOfShape's value must be one number, got "
                          f"{value.dtype} of shape {value.shape}")
    fill = 0.0 if value is None else float(value.reshape(-1)[0])
    return [Fill(fill, _sizes(items(ins[0], where), where))]


def expand(imp, node, where, ins, attrs):
    v, target = ins[0], list(_sizes(items(ins[1], where), where))
    if isinstance(v, SymInts) and len(v.items) == 1:
        v = Fill(v.items[0], (1,))    # one size repeated: e.g. every sequence's full length
    if isinstance(v, Const):
        flat = np.asarray(v.value).reshape(-1)
        if flat.size == 0 or flat.dtype.kind not in "fiub" or not np.all(flat == flat[0]):
            raise UnsupportedModelError(f"{where}: Expand of a non-uniform constant to a "
                                        f"run-time shape")
        v = Fill(float(flat[0]), tuple(v.value.shape))
    if not isinstance(v, Fill):
        raise UnsupportedModelError(f"{where}: Expand of {_describe(v)}")
    dims = list(v.dims)
    rank = max(len(dims), len(target))
    dims = [1] * (rank - len(dims)) + dims
    target = [1] * (rank - len(target)) + target
    out = []
    for d, t in zip(dims, target):
        if d == 1:
            out.append(t)
        elif t == 1 or t is d or t == d:
            out.append(d)
        else:
            raise UnsupportedModelError(f"{where}: Expand of {v.dims} to {target}")
    return [Fill(v.value, tuple(out))]


def transpose(imp, node, where, ins, attrs):
    v = _fill(ins[0], where)
    dims = list(v.dims)
    perm = attrs.get("perm") or list(range(len(dims)))[::-1]
    if sorted(perm) != list(range(len(dims))):
        raise FormatError(f"{where}: perm {perm} is not a permutation of the axes of a "
                          f"rank-{len(dims)} tensor")
    return [Fill(v.value, tuple(dims[p] for p in perm))]


def equal(imp, node, where, ins, attrs):
    a, b = _broadcast([items(v, where) for v in ins], where)
    out = []
    for x, y in zip(a, b):
        if isinstance(x, Axis) or isinstance(y, Axis):
            other = y if isinstance(x, Axis) else x
            if isinstance(other, int) and other <= 0:
                out.append(False)   # a run-time size is at least 1
                continue
            if x is y:
                out.append(True)
                continue
            raise UnsupportedModelError(f"{where}: comparing a run-time size with {other}")
        out.append(x == y)
    return [Const(np.array(out))]


def where_(imp, node, where, ins, attrs):
    cond = np.asarray(ins[0].value).reshape(-1) if isinstance(ins[0], Const) else None
    if cond is None:
        raise UnsupportedModelError(f"{where}: Where with a run-time condition")
    cond, a, b = _broadcast([list(cond), items(ins[1], where), items(ins[2], where)], where)
    return [_sym([x if c else y for c, x, y in zip(cond, a, b)])]


def _broadcast(vectors, where) -> list:
    """Vectors of one length, from vectors of that length and of length 1."""
    n = max(len(v) for v in vectors)
    if any(len(v) not in (1, n) for v in vectors):
        raise FormatError(f"{where}: vectors of lengths {[len(v) for v in vectors]} do not "
                          f"broadcast")
    return [v * n if len(v) == 1 else v for v in vectors]


def arithmetic(imp, node, where, ins, attrs):
    """Add / Sub / Mul / Div / Max / Min where a run-time size is left unchanged (x*1, x+0,
    max(x, 1) ...); anything else needs the size's value."""
    if len(ins) != 2:
        raise UnsupportedModelError(f"{where}: {node.op_type} of {len(ins)} inputs on a "
                                    f"run-time size")
    a, b = (items(v, where) for v in ins)
    op = node.op_type
    neutral = {"Add": 0, "Sub": 0, "Mul": 1, "Div": 1, "Max": 1, "Min": None}[op]
    if len(b) == 1 and b[0] == neutral:
        return [ins[0]]
    if len(a) == 1 and a[0] == neutral and op in ("Add", "Mul", "Max"):
        return [ins[1]]
    raise UnsupportedModelError(f"{where}: {op} on a run-time size")


HANDLERS = {
    "Shape": shape, "Gather": gather, "Slice": slice_, "Concat": concat,
    "Unsqueeze": unsqueeze, "Squeeze": squeeze, "Identity": same, "Cast": same,
    "Reshape": reshape, "ConstantOfShape": constant_of_shape, "Expand": expand,
    "Transpose": transpose, "Equal": equal, "Where": where_,
    "Add": arithmetic, "Sub": arithmetic, "Mul": arithmetic, "Div": arithmetic,
    "Max": arithmetic,
}
