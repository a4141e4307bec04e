"""Node dispatch, constant folding, and the ops on run-time tensors: layout glue
(Transpose, Squeeze, Unsqueeze, Reshape, Flatten, Slice, Gather ...) and heads (Gemm,
MatMul + Add, activations, Softmax, LogSoftmax, Gather as an embedding)."""

from __future__ import annotations

import numpy as np

from ... import ir
from ...errors import FormatError, UnsupportedModelError
from . import recurrent, shapes
from .importer import Tensor, _node_name, claim
from .proto import attributes
from dataclasses import replace

from .values import (Axis, Const, Fill, Seq, axis_index, canon, float32, reshape_view,
                     single_axis)

_RUNTIME_DTYPES = {1: "float32", 6: "int32", 7: "int64"}


def dispatch(imp, node, index, ins):
    where = _node_name(node, index)
    if node.domain not in ("", "ai.onnx"):
        raise UnsupportedModelError(f"{where}: operator domain {node.domain!r} is not "
                                    f"supported; {_supported()}")
    attrs = attributes(node, where)
    op = node.op_type
    if op in recurrent.CELLS:
        return recurrent.convert(imp, node, where, ins, attrs)
    if op in ("Loop", "Scan", "If"):
        refuse_loop(node, index)
    present = [v for v in ins if v is not None]
    if all(isinstance(v, Const) for v in present):
        return fold(imp, node, where, ins)
    if op == "Shape":
        return shapes.shape(imp, node, where, ins, attrs)
    if op in IdsExpr.ELEMENTWISE and any(IdsExpr.reads(v) for v in present):
        return [IdsExpr.extend(imp, node, where, ins)]
    if any(isinstance(v, Seq) for v in present):
        handler = SEQ_OPS.get(op)
        if handler is not None and op not in _ANY_INPUT_SEQ and not isinstance(ins[0], Seq):
            raise UnsupportedModelError(f"{where}: {op} of {shapes._describe(ins[0])} with a "
                                        f"run-time tensor as another input")
    else:
        handler = shapes.HANDLERS.get(op)
    if handler is None:
        kinds = ", ".join(shapes._describe(v) for v in present)
        raise UnsupportedModelError(f"{where}: {op} on {kinds} is not supported; "
                                    f"{_supported()}")
    return handler(imp, node, where, ins, attrs)


# Ops on run-time tensors whose run-time input need not be the first: the others read a
# run-time tensor as their first (data) input.
_ANY_INPUT_SEQ = {"Gather", "Add", "Mul", "Concat"}


def refuse_loop(node, index):
    """Control flow is refused before anything else: its body is cell arithmetic rnnrt does not
    try to recognise, and running it another way could be silently wrong."""
    raise UnsupportedModelError(
        f"{_node_name(node, index)}: control flow ({node.op_type}) is not converted. tf2onnx "
        f"writes a Keras GRU, SimpleRNN, masked LSTM or LSTM with recurrent_dropout as a Loop "
        f"over the cell arithmetic; convert such a Keras model from its weights and config "
        f"instead: rnnrt.convert('weights.npz', dst, config='model.json'). {_supported()}")


def _supported() -> str:
    return ("supported: RNN, LSTM, GRU; on run-time tensors " + ", ".join(sorted(SEQ_OPS)) +
            "; any op whose inputs are all constants (folded at convert time); shape "
            "arithmetic " + ", ".join(sorted(shapes.HANDLERS)))


def fold(imp, node, where, ins):
    """Evaluate a node whose inputs are all known, with ONNX's reference evaluator."""
    from onnx.reference import ReferenceEvaluator
    feeds = {n: v.value for n, v in zip(node.input, ins) if n}
    try:
        ev = ReferenceEvaluator(node, opsets={"": imp.opset})
        outs = ev.run(None, feeds)
    except Exception as e:  # the evaluator raises many types for bad nodes
        raise UnsupportedModelError(f"{where}: could not evaluate it at convert time: "
                                    f"{type(e).__name__}: {e}") from None
    return [Const(np.asarray(o)) for o in outs]


# ----------------------------------------------------------------------------- glue


def passthrough(imp, node, where, ins, attrs):
    """Identity, Dropout (inference), Cast between types that keep the values."""
    x = ins[0]
    if node.op_type == "Cast":
        to = _RUNTIME_DTYPES.get(attrs.get("to"))
        if to is None or (to == "float32") != (_dtype(x) == "float32"):
            raise UnsupportedModelError(f"{where}: Cast of a {_dtype(x)} tensor to ONNX type "
                                        f"{attrs.get('to')} is not supported")
    return [x] + [None] * (len(node.output) - 1)


def _dtype(seq) -> str:
    return getattr(seq.source, "dtype", "float32")


def transpose(imp, node, where, ins, attrs):
    x = ins[0]
    perm = attrs.get("perm") or list(range(len(x.view)))[::-1]
    if sorted(perm) != list(range(len(x.view))):
        raise FormatError(f"{where}: perm {perm} is not a permutation of the axes of a "
                          f"rank-{len(x.view)} tensor")
    return [replace(x, view=tuple(x.view[p] for p in perm))]


def squeeze(imp, node, where, ins, attrs):
    x = ins[0]
    axes = shapes._axes(ins, attrs, where)
    rank = len(x.view)
    if axes is None:
        drop = {i for i, g in enumerate(x.view) if canon((g,)) == ((),)}
    else:
        drop = {axis_index(a, rank, where) for a in axes}
    for a in drop:
        if canon((x.view[a],)) != ((),):
            raise UnsupportedModelError(f"{where}: Squeeze of axis {a}, which is {x.view[a]} "
                                        f"(not of size 1)")
    return [replace(x, view=tuple(g for i, g in enumerate(x.view) if i not in drop))]


def unsqueeze(imp, node, where, ins, attrs):
    x = ins[0]
    axes = shapes._axes(ins, attrs, where)
    if axes is None:
        raise FormatError(f"{where}: Unsqueeze without axes")
    view = list(x.view)
    rank = len(view) + len(axes)
    for a in sorted(axis_index(a, rank, where) for a in axes):
        view.insert(a, (Axis("U", 1),))
    return [replace(x, view=tuple(view))]


def reshape(imp, node, where, ins, attrs):
    x, target = ins[0], shapes.items(ins[1], where)
    return [replace(x, view=reshape_view(x.view, target, bool(attrs.get("allowzero", 0))))]


def flatten(imp, node, where, ins, attrs):
    x = ins[0]
    axis, rank = attrs.get("axis", 1), len(x.view)
    if not -rank <= axis <= rank:
        raise FormatError(f"{where}: Flatten axis {axis} is out of range for a rank-{rank} "
                          f"tensor")
    axis %= rank + 1
    merged = lambda gs: tuple(a for g in gs for a in g) or (Axis("U", 1),)
    return [replace(x, view=(merged(x.view[:axis]), merged(x.view[axis:])))]


def slice_(imp, node, where, ins, attrs):
    x = ins[0]
    starts, ends, axes, steps = shapes._slice_args(ins, attrs, where)
    out = x
    for start, end, axis, step in zip(starts, ends, axes, steps):
        out = _slice_one(imp, node, where, out, axis_index(axis, len(out.view), where),
                         start, end, step)
    return [out]


def _slice_one(imp, node, where, x, axis, start, end, step):
    group = x.view[axis]
    a = single_axis(group, where)
    if step != 1:
        raise UnsupportedModelError(f"{where}: Slice with step {step}")
    if a is not None and a.kind == "T":
        index = _one_index(start, end, where)
        return _timestep(imp, node, where, x, axis, index, keep_axis=True)
    if a is not None and a.kind == "?" and a.declared is not None:
        _static_axis(x, axis, where)     # a graph input's fixed-size axis (stacked states)
    size = shapes.dims_of((group,))[0]
    if not isinstance(size, int):
        raise UnsupportedModelError(f"{where}: Slice along a run-time axis {group}")
    lo, hi, _ = slice(start, end).indices(size)
    if (lo, hi) == (0, size):
        return x
    if a is not None and a.kind == "D":
        if hi - lo != 1:
            raise UnsupportedModelError(f"{where}: Slice of several directions")
        return _direction(imp, node, where, x, axis, lo, keep_axis=True)
    if axis == len(x.view) - 1:
        return _feature_slice(imp, node, where, x, lo, hi)
    return _axis_slice(imp, node, where, x, axis, lo, hi)


def _static_axis(x, axis, where):
    """The one axis of fixed size behind view axis `axis` (claimed as such if still open)."""
    axes = list(x.view[axis])
    if len(axes) > 1:
        axes = [a for a in axes if a.size != 1 or a.kind == "?"]
    if len(axes) != 1 or (axes[0].kind == "?" and axes[0].declared is None) or \
            axes[0].kind in "BT":
        raise UnsupportedModelError(f"{where}: axis {axis} ({x.view[axis]}) is not one axis of "
                                    f"fixed size")
    a = axes[0]
    if a.kind == "?":
        claim(a, "S", a.declared, what=where)
    return a


def _layout_axis(t, a, where):
    for i, g in enumerate(t.layout):
        if a in g and all(o is a or o.size == 1 for o in g):
            return i
    raise UnsupportedModelError(f"{where}: the sliced axis is merged with others")


def _axis_slice(imp, node, where, x, axis, lo, hi):
    """A slice of a fixed-size axis that is not the last (a stacked state's layers)."""
    if isinstance(x.source, PendingConcat) and x.source.axis == axis:
        part = x.source.part(lo, hi)
        if part is not None:
            return part
    a = _static_axis(x, axis, where)
    t = imp.materialize(x, "exact")
    i = _layout_axis(t, a, where)
    out = imp.fresh(node.output[0])
    layer = ir.Slice(imp.fresh(node.name or "slice"), x=t.name, out=out, axis=i, start=lo,
                     stop=hi)
    imp.add(layer)
    new = Axis("S", hi - lo)
    swap = lambda groups, at: tuple((new,) if k == at else g for k, g in enumerate(groups))
    return Seq(_new(out, swap(t.layout, i), layer=layer), swap(x.view, axis))


def _one_index(start, end, where):
    """The time index a Slice [start:end] keeps, when it keeps exactly one step."""
    big = 2 ** 31
    if start == -1 and end >= big - 1:
        return -1
    if start >= 0 and end == start + 1:
        return start
    if start < 0 and end == start + 1:
        return start
    raise UnsupportedModelError(f"{where}: Slice [{start}:{end}] of the time axis; rnnrt takes "
                                f"one time step of a sequence")


class IdsExpr:
    """An elementwise function of integer token ids (a graph input), such as the arithmetic
    tf2onnx puts before an embedding's Gather to wrap negative ids. An embedding reading it
    checks, by evaluating it on every valid id, that it leaves valid ids unchanged."""
    ELEMENTWISE = {"Cast", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Equal",
                   "Not", "And", "Or", "Add", "Sub", "Mul", "Div", "Mod", "Where", "Clip",
                   "Min", "Max", "Neg", "Abs", "Identity"}

    def __init__(self, root: Seq, root_name: str, nodes: list):
        self.root, self.root_name, self.nodes = root, root_name, nodes

    @staticmethod
    def reads(v) -> bool:
        return isinstance(v, Seq) and (isinstance(v.source, IdsExpr) or (
            hasattr(v.source, "info") and v.source.dtype in ("int64", "int32")))

    @staticmethod
    def extend(imp, node, where, ins):
        roots, nodes = set(), []
        for name, v in zip(node.input, ins):
            if isinstance(v, Seq) and isinstance(v.source, IdsExpr):
                roots.add(v.source.root_name)
                nodes += [n for n in v.source.nodes if n not in nodes]
                root = v.source.root
            elif IdsExpr.reads(v):
                roots.add(name)
                root = v
            elif v is not None and not isinstance(v, Const):
                raise UnsupportedModelError(f"{where}: {node.op_type} of token ids with "
                                            f"{shapes._describe(v)}")
        if len(roots) != 1:
            raise UnsupportedModelError(f"{where}: arithmetic mixing several id inputs")
        return Seq(IdsExpr(root, roots.pop(), nodes + [node]), root.view)

    def identity_on(self, imp, vocab: int, where) -> bool:
        from onnx.reference import ReferenceEvaluator
        dtype = np.int32 if self.root.source.onnx_dtype == "int32" else np.int64
        values = {self.root_name: np.arange(vocab, dtype=dtype)}
        for node in self.nodes:
            feeds = {}
            for n in node.input:
                if n and n not in values:
                    feeds[n] = imp.values[n].value
            feeds.update({n: values[n] for n in node.input if n in values})
            try:
                outs = ReferenceEvaluator(node, opsets={"": imp.opset}).run(None, feeds)
            except Exception as e:  # the evaluator raises many types
                raise UnsupportedModelError(f"{where}: cannot evaluate the id arithmetic "
                                            f"{node.op_type}: {e}") from None
            values.update(zip(node.output, outs))
        result = values[self.nodes[-1].output[0]]
        return np.array_equal(np.asarray(result, np.int64).reshape(-1), np.arange(vocab))

    def materialize(self, imp, view, mode):
        raise UnsupportedModelError("arithmetic on token ids is read by something other than "
                                    "an embedding (Gather from a table)")


def gather(imp, node, where, ins, attrs):
    data, idx = ins
    axis = attrs.get("axis", 0)
    if isinstance(data, Const):
        if isinstance(idx, Seq) and isinstance(idx.source, IdsExpr):
            if data.value.ndim == 2 and \
                    not idx.source.identity_on(imp, data.value.shape[0], where):
                raise UnsupportedModelError(f"{where}: the arithmetic on the token ids before "
                                            f"this embedding changes valid ids")
            idx = idx.source.root
        return [_embedding(imp, node, where, data, idx, axis)]
    if not isinstance(idx, Const) or np.asarray(idx.value).ndim != 0:
        raise UnsupportedModelError(f"{where}: Gather from a run-time tensor needs one constant "
                                    f"index")
    (index,) = shapes.const_ints(idx, where, "indices")
    axis = axis_index(axis, len(data.view), where)
    a = single_axis(data.view[axis], where)
    if a is not None and a.kind == "T":
        return [_timestep(imp, node, where, data, axis, index, keep_axis=False)]
    if a is not None and a.kind == "D":
        return [_direction(imp, node, where, data, axis, index % a.size, keep_axis=False)]
    if a is None and index in (0, -1):   # an axis of size 1
        return [replace(data, view=data.view[:axis] + data.view[axis + 1:])]
    if isinstance(data.source, PendingConcat) and data.source.axis == axis:
        size = sum(data.source.sizes)
        part = data.source.part(index % size, index % size + 1) if -size <= index < size \
            else None
        if part is not None:
            return [replace(part, view=part.view[:axis] + part.view[axis + 1:])]
    if a is not None and (a.kind == "S" or (a.kind == "?" and a.declared is not None)):
        size = _static_axis(data, axis, where).size
        if not -size <= index < size:
            raise UnsupportedModelError(f"{where}: index {index} out of range for {size}")
        one = _axis_slice(imp, node, where, data, axis, index % size, index % size + 1)
        return [replace(one, view=one.view[:axis] + one.view[axis + 1:])]
    raise UnsupportedModelError(f"{where}: Gather along axis {axis} ({data.view[axis]})")


def _timestep(imp, node, where, x, axis, index, keep_axis):
    final = _final_state(x, index)
    if final is not None:
        view = list(x.view)
        if keep_axis:
            view[axis] = (Axis("U", 1),)
        else:
            del view[axis]
        return replace(x, source=final, view=tuple(view))
    t = imp.materialize(x, "seq", reversed_ok=True)
    if x.reversed:
        index = -1 - index
    tgroup = x.view[axis]
    (T,) = canon((tgroup,))[0]
    time_major = canon(t.layout)[0] == (T,)
    F = Axis("F", shapes.dims_of((x.view[-1],))[0])
    out = node.output[0]
    imp.add(ir.TimeStep(imp.fresh(node.name or "timestep"), x=t.name, out=out, index=index,
                        time_major=time_major))
    b_group = [g for g in canon(t.layout) if g != (T,)][0]
    tensor = _new(out, (b_group, (F,)), layer=imp.layers[-1])
    view = list(x.view)
    if keep_axis:
        view[axis] = (Axis("U", 1),)
    else:
        del view[axis]
    view[-1] = (F,)
    return Seq(tensor, tuple(view))


def _direction(imp, node, where, x, axis, d, keep_axis):
    """One direction of a bidirectional output (Gather or Slice on its directions axis)."""
    D = canon((x.view[axis],))[0][0]
    F = canon((x.view[-1],))[0]
    if axis == len(x.view) - 1 or len(F) != 1:
        raise UnsupportedModelError(f"{where}: a direction is taken from {x.view}")
    view = list(x.view)
    if keep_axis:
        view[axis] = (Axis("U", 1),)
    else:
        del view[axis]
    part = DirectionPart(x.source, D, F[0], d, node.name or "direction")
    return replace(x, source=part, view=tuple(view))


def _final_state(x, index):
    """When x is one direction of a recurrent output and y[index] is that direction's final
    state, the same direction of h (so that exports taking a bidirectional layer's last
    outputs per direction need no time step of y)."""
    part = x.source
    if x.reversed or not isinstance(part, DirectionPart):
        return None
    out = part.source
    if not isinstance(out, recurrent.RecurrentOutput) or out.which != "y":
        return None
    if not out.rec.final_state_at(part.d, index):
        return None
    return DirectionPart(out.rec.outputs["h"], part.D, part.F, part.d, part.base)


def merge_directions(imp, node, where, ins, attrs):
    """Add / Mul of the two directions of one tensor: the IR's MergeDirections."""
    if len(ins) != 2 or not all(isinstance(v, Seq) for v in ins):
        return None
    a, b = ins
    pa, pb = a.source, b.source
    ok = isinstance(pa, DirectionPart) and isinstance(pb, DirectionPart) and \
        pa.source is pb.source and {pa.d, pb.d} == {0, 1} and pa.D.size == 2 and \
        a.view == b.view and not a.reversed and not b.reversed
    if not ok:
        return None
    merged = a.view[:-1] + ((pa.D, pa.F),)
    t = imp.materialize(Seq(pa.source, merged), "rows")
    out = node.output[0]
    mode = {"Add": "sum", "Mul": "mul"}[node.op_type]
    layer = ir.MergeDirections(imp.fresh(node.name or "merge"), x=t.name, out=out, mode=mode)
    imp.add(layer)
    return [Seq(_new(out, t.layout[:-1] + ((pa.F,),), layer=layer), a.view)]


class DirectionPart:
    """Direction d of a (..., D, ..., F) tensor, pending: its IR form is a feature slice of
    the tensor laid out with D beside F, made only if something reads it other than a
    Concat that puts the directions back together."""

    def __init__(self, source, D, F, d, base):
        self.source, self.D, self.F, self.d, self.base = source, D, F, d, base
        self.tensors = {}

    def materialize(self, imp, view, mode):
        if canon((view[-1],))[0] != (self.F,):
            raise UnsupportedModelError(f"one direction of a tensor is read as {view}")
        merged = tuple(view[:-1]) + ((self.D,) + tuple(view[-1]),)
        t = self.source.materialize(imp, merged, mode)
        if id(t) not in self.tensors:
            H = self.F.size
            out = imp.fresh(f"{self.base}_{self.d}")
            layer = ir.FeatureSlice(imp.fresh(self.base), x=t.name, out=out,
                                    start=self.d * H, stop=(self.d + 1) * H)
            imp.add(layer)
            self.tensors[id(t)] = _new(out, t.layout[:-1] + ((self.F,),), layer=layer)
        return self.tensors[id(t)]


def concat(imp, node, where, ins, attrs):
    """Concat of the directions of one tensor, in order, on the feature axis: the tensor
    with its directions beside its features (what bidirectional exports do)."""
    other = next((v for v in ins if not isinstance(v, Seq)), ins[0])
    if not isinstance(other, Seq):
        raise UnsupportedModelError(f"{where}: Concat of run-time tensors with "
                                    f"{shapes._describe(other)}")
    parts = [v.source for v in ins]
    axis = axis_index(attrs.get("axis"), len(ins[0].view), where)
    if all(isinstance(p, DirectionPart) for p in parts) and axis == len(ins[0].view) - 1:
        first = parts[0]
        same = all(p.source is first.source and p.D is first.D for p in parts)
        if same and [p.d for p in parts] == list(range(first.D.size)) and \
                all(v.view[:-1] == ins[0].view[:-1] and v.reversed == ins[0].reversed
                    for v in ins):
            view = ins[0].view[:-1] + ((first.D, first.F),)
            return [replace(ins[0], source=first.source, view=view)]
    return _axis_concat(imp, node, where, ins, axis)


def _axis_concat(imp, node, where, ins, axis):
    """Concat along a fixed-size axis (the final states of stacked layers), pending: a
    reader taking one part back (h_n[-1]) gets that part itself."""
    if any(v.reversed for v in ins) or len({len(v.view) for v in ins}) != 1:
        raise UnsupportedModelError(f"{where}: Concat of tensors of different ranks")
    sizes = [_static_axis(v, axis, where).size for v in ins]
    pending = PendingConcat(ins, axis, sizes, node.output[0], node.name)
    view = tuple(pending.joined if k == axis else g for k, g in enumerate(ins[0].view))
    return [Seq(pending, view)]


class PendingConcat:
    """Parts joined along one axis; the IR Concat is made when the whole is read."""

    def __init__(self, parts, axis, sizes, out, base):
        self.parts, self.axis, self.sizes, self.out, self.base = parts, axis, sizes, out, base
        self.joined = (Axis("S", sum(sizes)),)
        self.tensor = None

    def part(self, lo, hi):
        """The part that is exactly [lo, hi) of the joined axis, or None."""
        at = 0
        for p, n in zip(self.parts, self.sizes):
            if (at, at + n) == (lo, hi):
                return p
            at += n
        return None

    def materialize(self, imp, view, mode):
        if self.tensor is None:
            names = []
            for v in self.parts:
                t = imp.materialize(v, "exact")
                if _layout_axis(t, _static_axis(v, self.axis, self.base), self.base) != \
                        self.axis:
                    raise UnsupportedModelError(f"{self.base}: Concat of tensors laid out "
                                                f"differently")
                names.append(t.name)
            while len(names) > ir.MAX_CONCAT_INPUTS:   # the engine joins a few at a time
                head = imp.fresh(f"{self.out}_part")
                k = ir.MAX_CONCAT_INPUTS
                imp.add(ir.Concat(imp.fresh(self.base or "concat"), xs=names[:k], out=head,
                                  axis=self.axis))
                names = [head] + names[k:]
            layer = ir.Concat(imp.fresh(self.base or "concat"), xs=names, out=self.out,
                              axis=self.axis)
            imp.add(layer)
            first = imp.materialize(self.parts[0], "exact")
            layout = tuple(self.joined if k == self.axis else g
                           for k, g in enumerate(first.layout))
            self.tensor = _new(self.out, layout, layer=layer)
        return self.tensor.materialize(imp, view, mode)


def reverse_sequence(imp, node, where, ins, attrs):
    """ReverseSequence of whole sequences (lengths = the time axis' size everywhere)."""
    x, lens = ins
    t_axis, b_axis = attrs.get("time_axis", 0), attrs.get("batch_axis", 1)
    if {t_axis, b_axis} != {0, 1} or len(x.view) < 2:
        raise FormatError(f"{where}: ReverseSequence's time_axis and batch_axis must be 0 and 1 "
                          f"(either way round) of a tensor of rank >= 2, got {t_axis} and "
                          f"{b_axis} for rank {len(x.view)}")
    T = single_axis(x.view[t_axis], where)
    if not (isinstance(lens, Fill) and T is not None and lens.value is T):
        raise UnsupportedModelError(f"{where}: ReverseSequence is supported for whole "
                                    f"sequences (every length equal to the time axis)")
    claim(T, "T", what=where)
    return [replace(x, reversed=not x.reversed)]


def _feature_slice(imp, node, where, x, lo, hi):
    t = imp.materialize(x, "rows", reversed_ok=True)
    out = imp.fresh(node.output[0])
    imp.add(ir.FeatureSlice(imp.fresh(node.name or "slice"), x=t.name, out=out, start=lo,
                            stop=hi))
    F = Axis("F", hi - lo)
    return replace(x, source=_new(out, t.layout[:-1] + ((F,),), layer=imp.layers[-1]),
                   view=x.view[:-1] + ((F,),))


def _embedding(imp, node, where, table, ids, axis):
    if axis not in (0, -2) or table.value.ndim != 2 or not isinstance(ids, Seq):
        raise UnsupportedModelError(f"{where}: Gather from a constant is an embedding only "
                                    f"with a 2-D table, axis 0 and run-time ids")
    float32(table.value, where, "the embedding table")
    t = imp.materialize(ids, "exact")
    if _dtype(ids) not in ("int64", "int32") or not hasattr(t, "info"):
        raise UnsupportedModelError(f"{where}: embedding ids must be an integer graph input")
    t.dtype = "int64"   # the IR reads token ids as int64; int32 feeds are widened
    V, E = table.value.shape
    out = node.output[0]
    imp.add(ir.Embedding(imp.fresh(node.name or "embedding"), ids=t.name, out=out,
                         table=np.ascontiguousarray(table.value, np.float32)))
    F = Axis("F", E)
    return Seq(_new(out, t.layout + ((F,),), layer=imp.layers[-1]), ids.view + ((F,),))


def _new(name, layout, layer=None) -> Tensor:
    t = Tensor(name, layout)
    t.producer = layer
    return t


# ----------------------------------------------------------------------------- heads


def mul(imp, node, where, ins, attrs):
    merged = merge_directions(imp, node, where, ins, attrs)
    if merged is None:
        raise UnsupportedModelError(f"{where}: Mul of run-time tensors is supported for the "
                                    f"two directions of one recurrent output")
    return merged


def matmul(imp, node, where, ins, attrs):
    x, w = ins
    if not isinstance(x, Seq) or not isinstance(w, Const) or w.value.ndim != 2:
        raise UnsupportedModelError(f"{where}: MatMul is supported as run-time tensor @ "
                                    f"constant 2-D matrix")
    return [_dense(imp, node, where, x, float32(w.value, where, "the matrix"), None)]


def gemm(imp, node, where, ins, attrs):
    x, b = ins[0], ins[1]
    c = ins[2] if len(ins) > 2 else None
    if attrs.get("transA", 0) or not isinstance(b, Const) or (c is not None
                                                              and not isinstance(c, Const)):
        raise UnsupportedModelError(f"{where}: Gemm is supported as run-time A (not transposed) "
                                    f"@ constant B + constant C")
    kernel = float32(b.value, where, "B")
    if kernel.ndim != 2:
        raise FormatError(f"{where}: Gemm's B must be 2-D, got shape {kernel.shape}")
    if attrs.get("transB", 0):
        kernel = kernel.T
    kernel = kernel * np.float32(attrs.get("alpha", 1.0))
    bias = None
    if c is not None:
        N, cv = kernel.shape[1], float32(c.value, where, "C")
        if cv.shape not in ((), (1,), (N,), (1, 1), (1, N)):
            raise UnsupportedModelError(f"{where}: Gemm's C must broadcast over the rows: "
                                        f"shape (N,) or (1, N) with N = {N}, got {cv.shape}")
        bias = np.broadcast_to(cv.reshape(-1), (N,)) * np.float32(attrs.get("beta", 1.0))
    if len(x.view) != 2:
        raise UnsupportedModelError(f"{where}: Gemm's A must be 2-D")
    return [_dense(imp, node, where, x, kernel, bias)]


def _dense(imp, node, where, x, kernel, bias):
    t = imp.materialize(x, "rows", reversed_ok=True)
    K = shapes.dims_of((x.view[-1],))[0]
    if kernel.shape[0] != K:
        raise UnsupportedModelError(f"{where}: the matrix has {kernel.shape[0]} rows for "
                                    f"{K} features")
    out = node.output[0]
    layer = ir.Dense(imp.fresh(node.name or "dense"), x=t.name, out=out,
                     kernel=np.ascontiguousarray(kernel, np.float32),
                     bias=None if bias is None else np.ascontiguousarray(bias, np.float32))
    imp.add(layer)
    F = Axis("F", kernel.shape[1])
    return replace(x, source=_new(out, t.layout[:-1] + ((F,),), layer=layer),
                   view=x.view[:-1] + ((F,),))


def _fusable_dense(imp, x, name):
    """The Dense that wrote x (ONNX tensor `name`), when one node alone reads it."""
    layer = getattr(x.source, "producer", None)
    if not isinstance(layer, ir.Dense) or layer.out != x.source.name:
        return None
    return layer if imp.single_reader(name) else None


def add(imp, node, where, ins, attrs):
    if all(isinstance(v, Seq) for v in ins):
        merged = merge_directions(imp, node, where, ins, attrs)
        if merged is not None:
            return merged
    seqs = [(n, v) for n, v in zip(node.input, ins) if isinstance(v, Seq)]
    consts = [v for v in ins if isinstance(v, Const)]
    if len(seqs) == 1 and len(consts) == 1:     # either order: legacy torch writes bias first
        (name, x), c = seqs[0], float32(consts[0].value, where, "the constant added")
        dense = _fusable_dense(imp, x, name)
        width = shapes.dims_of((x.view[-1],))[0]
        if dense is not None and dense.activation.name == "linear" and c.size in (1, width) \
                and all(d == 1 for d in c.shape[:-1]):
            bias = np.broadcast_to(c.reshape(-1), (width,)).astype(np.float32)
            dense.bias = bias if dense.bias is None else dense.bias + bias
            return [x]
    raise UnsupportedModelError(f"{where}: Add is supported as the bias of a MatMul")


# ONNX activation op -> (IR name, alpha attribute and default, beta attribute and default)
_ACTIVATIONS = {
    "Relu": ("relu", None, None), "Sigmoid": ("sigmoid", None, None),
    "Tanh": ("tanh", None, None), "Softsign": ("softsign", None, None),
    "Softplus": ("softplus", None, None), "Exp": ("exponential", None, None),
    "LeakyRelu": ("leaky_relu", ("alpha", 0.01), None),
    "Elu": ("elu", ("alpha", 1.0), None),
    "ThresholdedRelu": ("thresholded_relu", ("alpha", 1.0), None),
    "HardSigmoid": ("hard_sigmoid", ("alpha", 0.2), ("beta", 0.5)),
    "Selu": ("selu", ("alpha", 1.67326319217681884765625), ("gamma", 1.05070102214813232421875)),
    "HardSwish": ("hard_silu", None, None), "Mish": ("mish", None, None),
    "Gelu": ("gelu", None, None),      # or gelu_tanh, by its approximate attribute
    "Softmax": ("softmax", None, None), "LogSoftmax": ("log_softmax", None, None),
}


def activation(imp, node, where, ins, attrs):
    x = ins[0]
    op = node.op_type
    name, a, b = _ACTIVATIONS[op]
    if op == "Gelu":
        name = "gelu_tanh" if attrs.get("approximate", "none") == "tanh" else "gelu"
    if name in ir.ROW_WISE:
        rank = len(x.view)
        default = -1 if imp.opset >= 13 else 1
        axis = axis_index(attrs.get("axis", default), rank, where)
        if axis != rank - 1:
            raise UnsupportedModelError(f"{where}: {op} over axis {axis} of a rank-{rank} "
                                        f"tensor; rnnrt applies it over the last axis")
        act = ir.Act.of(name)
    else:
        alpha = float(attrs.get(a[0], a[1])) if a else None
        beta = float(attrs.get(b[0], b[1])) if b else None
        if not np.isfinite([v for v in (alpha, beta) if v is not None]).all():
            raise UnsupportedModelError(f"{where}: {op}'s parameters must be finite, got "
                                        f"{alpha}, {beta}")
        act = ir.Act.of(name, alpha, beta)
    dense = _fusable_dense(imp, x, node.input[0])
    if dense is not None and dense.activation.name == "linear":
        dense.activation = act
        return [x]
    t = imp.materialize(x, "rows", reversed_ok=True)
    out = node.output[0]
    layer = ir.Activation(imp.fresh(node.name or name), x=t.name, out=out, activation=act)
    imp.add(layer)
    return [replace(x, source=_new(out, t.layout, layer=layer))]


SEQ_OPS = {
    "Identity": passthrough, "Dropout": passthrough, "Cast": passthrough,
    "Transpose": transpose, "Squeeze": squeeze, "Unsqueeze": unsqueeze, "Reshape": reshape,
    "Flatten": flatten, "Slice": slice_, "Gather": gather, "Concat": concat,
    "ReverseSequence": reverse_sequence, "Mul": mul,
    "MatMul": matmul, "Gemm": gemm, "Add": add,
    **{op: activation for op in _ACTIVATIONS},
}
