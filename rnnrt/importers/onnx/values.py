"""What the ONNX importer knows about each tensor while it walks the graph.

A tensor is one of:
  Const    its value, known at convert time (initializers, and everything computed from
           them alone: exporters slice, concatenate and reshape weights inside the graph);
  SymInts  a small integer vector (or scalar) some of whose entries are run-time sizes: what
           Shape(x) and the arithmetic on it produce (exporters build zero states from it);
  Fill     a tensor with one value everywhere, of a shape that may hold run-time sizes (a
           zero initial state built with ConstantOfShape or Expand);
  Seq      a run-time tensor: an IR tensor seen through a view.

Run-time tensors are described by axes. An Axis is batch ('B'), time ('T'), features ('F'),
directions ('D'), an inserted axis of size 1 ('U'), or a dynamic graph-input axis not yet
known to be batch or time ('?'). A view is a tuple of groups of axes: each ONNX axis is one
group, the product of its axes (Reshape merges and splits groups, Transpose reorders them).
The IR tensor behind a Seq has a layout of its own, also a tuple of groups; a consumer checks
that the view it needs is what the IR tensor holds (`same_shape`, `rows_match`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import FormatError, UnsupportedModelError


class Axis:
    """One axis; identity matters (two dynamic axes are the same size only if the same)."""
    __slots__ = ("kind", "size", "declared")

    def __init__(self, kind: str, size: int | None = None, declared: int | None = None):
        self.kind = kind
        self.size = size          # None for a dynamic axis (batch, time, '?')
        self.declared = declared  # a graph input's declared size, for '?' axes

    @property
    def dynamic(self) -> bool:
        return self.size is None

    def __repr__(self):
        return f"{self.kind}{'' if self.size is None else self.size}"


@dataclass
class Const:
    value: np.ndarray


@dataclass
class SymInts:
    """Integers, each an int or a dynamic Axis (its run-time size). `scalar`: a 0-d value."""
    items: tuple
    scalar: bool = False


@dataclass
class Fill:
    value: object             # a float, or a dynamic Axis (its size, e.g. full lengths)
    dims: tuple               # ints and dynamic Axis entries


@dataclass
class Seq:
    """A run-time tensor: `source` gives the IR tensor (importer.Tensor, or a pending one
    that picks its layout when first read); `view` the ONNX shape as groups of axes.
    `reversed`: the time axis runs backwards relative to the IR tensor (a ReverseSequence
    of whole sequences, which a recurrent reader folds into its direction)."""
    source: object
    view: tuple
    reversed: bool = False


def canon(groups) -> tuple:
    """Groups without their static size-1 axes: two tensors with equal canon have the same
    shape and the same memory order."""
    return tuple(tuple(a for a in g if a.size != 1) for g in groups)


def same_shape(view, layout) -> bool:
    return canon(view) == canon(layout)


def rows_match(view, layout) -> bool:
    """A row-wise layer (Dense, Activation) may run on `layout` for `view`: same last axis,
    the same other axes, in any order."""
    cv, cl = canon(view), canon(layout)
    if not cv or not cl or cv[-1] != cl[-1]:
        return False
    rest = lambda c: sorted(id(a) for g in c[:-1] for a in g)
    return rest(cv) == rest(cl)


def float32(value: np.ndarray, where: str, what: str) -> np.ndarray:
    """A constant rnnrt computes with (a weight, a bias, a table), which must be float32,
    the type of the run-time tensors it meets: ONNX does not mix element types, and
    rnnrt does not round a float64 weight or read integers as weights."""
    if value.dtype != np.float32:
        raise FormatError(f"{where}: {what} must be float32 like the run-time tensors, got "
                          f"{value.dtype}")
    return value


def single_axis(group, where):
    """The one axis of a view group that is not a static 1 (None when there is none);
    UnsupportedModelError for a group that merges several (a Reshape of batch and time)."""
    (axes,) = canon((group,))
    if len(axes) > 1:
        raise UnsupportedModelError(f"{where}: the axis {group} merges several axes")
    return axes[0] if axes else None


def axis_index(axis, rank: int, where: str, what: str = "axis") -> int:
    """An ONNX axis attribute or input (-rank <= axis < rank) as an index 0..rank-1; one out
    of that range makes the model invalid (FormatError)."""
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool) or \
            not -rank <= axis < rank:
        raise FormatError(f"{where}: {what} {axis} is out of range for a rank-{rank} tensor")
    return int(axis) % rank


def group_size(group):
    """An int, a dynamic Axis, or None when the group mixes a dynamic axis with others."""
    dyn = [a for a in group if a.dynamic]
    static = int(np.prod([a.size for a in group if not a.dynamic], dtype=np.int64))
    if not dyn:
        return static
    if len(dyn) == 1 and static == 1:
        return dyn[0]
    return None


def dims_of(view) -> tuple:
    out = []
    for g in view:
        s = group_size(g)
        if s is None:
            raise UnsupportedModelError(
                f"the shape of a tensor with a merged batch/time axis {g} is not supported")
        out.append(s)
    return tuple(out)


def _signature(dim):
    """(static product, frozenset of dynamic axes) of an int, an Axis, or a group."""
    if isinstance(dim, Axis):
        return (1, frozenset([dim])) if dim.dynamic else (dim.size, frozenset())
    if isinstance(dim, tuple):
        sig = (1, frozenset())
        for a in dim:
            sig = _mul(sig, _signature(a))
        return sig
    return (int(dim), frozenset())


def _mul(a, b):
    return a[0] * b[0], a[1] | b[1]


def reshape_view(view, target, allowzero: bool = False):
    """The view after Reshape(target): target entries are ints (0 copies an input axis
    unless allowzero, -1 infers) or dynamic Axis objects (sizes read with Shape()).
    Raises UnsupportedModelError when the reshape does not regroup whole axes in order.

    Exporters write the example input's sizes into reshape targets (torch's dynamo exporter
    does for the time axis of batch_first=False models). So a fixed size where the tensor
    has a batch or time axis declared with that size stands for the axis; and when the
    target fits no other way, a fixed size where it has an undeclared one does too."""
    def at_axis(declared_ok):
        out = list(target)
        for i, d in enumerate(out):
            if isinstance(d, int) and d > 1 and i < len(view) and len(view[i]) == 1 and \
                    view[i][0].dynamic and declared_ok(view[i][0].declared, d):
                out[i] = view[i][0]
        return out
    try:
        return _reshape(view, at_axis(lambda declared, d: declared == d), allowzero)
    except UnsupportedModelError:
        loose = at_axis(lambda declared, d: declared is None)
        if loose == list(target):
            raise
        return _reshape(view, loose, allowzero)


def _reshape(view, target, allowzero):
    sigs, infer = [], None
    for i, d in enumerate(target):
        if isinstance(d, Axis):
            sigs.append(_signature(d))
        elif d == 0 and not allowzero:
            if i >= len(view):
                raise UnsupportedModelError(f"Reshape copies axis {i} of a rank-{len(view)} "
                                            f"tensor")
            sigs.append(_signature(view[i]))
        elif d == -1:
            if infer is not None:
                raise UnsupportedModelError("Reshape with two -1 entries")
            infer = i
            sigs.append(None)
        elif d >= 0:
            sigs.append((int(d), frozenset()))
        else:
            raise UnsupportedModelError(f"Reshape to a negative size {d}")
    total = _signature(tuple(a for g in view for a in g))
    if infer is not None:
        known = (1, frozenset())
        for s in sigs:
            if s is not None:
                known = _mul(known, s)
        if not known[1] <= total[1] or known[0] == 0 or total[0] % known[0]:
            raise UnsupportedModelError(f"Reshape of {view} to {target}: sizes do not divide")
        sigs[infer] = (total[0] // known[0], total[1] - known[1])
    flat = [a for g in view for a in g]
    groups, pos = [], 0
    for sig in sigs:
        group, acc = [], (1, frozenset())
        while acc != sig:
            if pos >= len(flat):
                if sig == (1, frozenset()) or (acc == sig):
                    break
                raise UnsupportedModelError(f"Reshape of {view} to {target} does not regroup "
                                            f"whole axes in order")
            a = flat[pos]
            nxt = _mul(acc, _signature(a))
            if not nxt[1] <= sig[1] or sig[0] % nxt[0]:
                if sig == (1, frozenset()):
                    break    # a new axis of size 1
                raise UnsupportedModelError(f"Reshape of {view} to {target} does not regroup "
                                            f"whole axes in order")
            group.append(a)
            acc = nxt
            pos += 1
        if not group:
            group = [Axis("U", 1)]
        groups.append(tuple(group))
    # Trailing size-1 axes join the last group.
    while pos < len(flat) and flat[pos].size == 1 and groups:
        groups[-1] = groups[-1] + (flat[pos],)
        pos += 1
    if pos != len(flat):
        raise UnsupportedModelError(f"Reshape of {view} to {target}: sizes do not match")
    return tuple(groups)
