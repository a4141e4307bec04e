"""The walk over an ONNX graph: each node's inputs are looked up, its handler (ops.py,
shapes.py, recurrent.py) computes its outputs, and layers are appended to the IR graph.

Nodes whose inputs are all known at convert time are evaluated then and there with ONNX's
own reference evaluator, so weight preprocessing inside the graph (Slice, Concat, Reshape,
Transpose of initializers) folds away whatever ops it uses. Nodes that no graph output
depends on are skipped.
"""

from __future__ import annotations

import numpy as np

from ... import ir
from ...errors import InputError, UnsupportedModelError
from .proto import tensor_value
from .values import Axis, Const, Seq, canon, rows_match, same_shape

# ONNX element types rnnrt reads at run time.
_INPUT_DTYPES = {1: "float32", 7: "int64", 6: "int32"}


class Tensor:
    """An IR tensor that exists: its name and its layout (groups of axes)."""

    def __init__(self, name: str, layout: tuple):
        self.name = name
        self.layout = layout

    def materialize(self, imp, view, mode):
        if not _fits(view, self.layout, mode):
            raise UnsupportedModelError(
                f"tensor {self.name!r} is laid out as {_fmt(self.layout)}; the graph reads it "
                f"as {_fmt(view)}, which would need a data transpose rnnrt does not do")
        return self


def _fits(view, layout, mode) -> bool:
    if mode == "exact":
        return same_shape(view, layout)
    if mode == "seq":   # a (batch, time, features) / (time, batch, features) sequence
        return len(canon(layout)) == 3 and rows_match(view, layout)
    return rows_match(view, layout)


def _fmt(groups) -> str:
    return "(" + ", ".join("*".join(map(repr, g)) or "1" for g in groups) + ")"


class GraphInput(Tensor):
    """A graph input: its axes learn whether they are batch or time from their readers."""

    def __init__(self, name, layout, dtype):
        super().__init__(name, layout)
        self.dtype = self.onnx_dtype = dtype

    def info(self) -> ir.TensorInfo:
        """Its IR input: batch and time axes dynamic, with the sizes the model declares for
        them (onnxruntime runs a model only at its declared sizes)."""
        shape, declared = [], []
        for (a,) in self.layout:
            if a.kind == "?":
                raise UnsupportedModelError(
                    f"graph input {self.name!r}: axis {len(shape)} is dynamic but no layer "
                    f"reads it as the batch or the time axis")
            shape.append(None if a.dynamic else a.size)
            declared.append(a.declared if a.dynamic else None)
        return ir.TensorInfo(self.name, tuple(shape), self.dtype, tuple(declared))


def claim(axis: Axis, kind: str, size: int | None = None, what: str = "") -> None:
    """Say what an axis is: batch 'B', time 'T', directions 'D', features 'F', or another axis
    of fixed size 'S' (stacked layers' states)."""
    if axis.kind == "?":
        declared = axis.declared
        if kind in "DFS":
            if declared is not None and size is not None and declared != size:
                raise UnsupportedModelError(f"{what}: axis has size {declared}, expected {size}")
            axis.size = size if size is not None else declared
        axis.kind = kind
        return
    if axis.kind == "U" and kind in "DF" and size == 1:
        return
    if axis.kind == "S" and kind in "DF" and size in (None, axis.size):
        axis.kind = kind     # a fixed-size axis (a slice of stacked states) found its role
        return
    if axis.kind != kind or (size is not None and axis.size != size):
        expect = {"B": "the batch", "T": "the time", "D": "the directions",
                  "F": "the features", "S": "a fixed-size"}[kind]
        raise UnsupportedModelError(f"{what}: expected {expect} axis"
                                    f"{'' if size is None else f' of size {size}'}, got "
                                    f"{axis!r}")


class Importer:
    def __init__(self, model, constants: dict):
        self.model = model
        self.graph = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                          None)
        if self.opset is None:
            raise UnsupportedModelError("the model imports no version of the default ONNX "
                                        "operator set")
        self.constants = dict(constants or {})
        self.where = "the graph"  # what is being imported: named by load_onnx's backstop
        self.values = {}
        self.layers = []
        self.inputs = []          # GraphInput, in graph order
        self._names = set()

    # ------------------------------------------------------------------ helpers for handlers
    def fresh(self, base: str) -> str:
        """A tensor or layer name not used yet."""
        name, k = base or "t", 1
        while name in self._names:
            name, k = f"{base}_{k}", k + 1
        self._names.add(name)
        return name

    def add(self, layer) -> None:
        self.layers.append(layer)

    def single_reader(self, name: str) -> bool:
        """Whether exactly one live node, and no graph output, reads tensor `name`."""
        return self._readers.get(name, 0) == 1

    def materialize(self, seq: Seq, mode: str = "exact", reversed_ok: bool = False) -> Tensor:
        """The IR tensor behind `seq`, laid out as `mode` needs: "exact" (the same shape),
        "rows" (a row-wise layer: same last axis) or "seq" (a sequence reader)."""
        if seq.reversed and not reversed_ok:
            raise UnsupportedModelError(
                "a time-reversed sequence (ReverseSequence) is read by something other than a "
                "recurrent layer, a row-wise layer or a time step: rnnrt does not reverse data")
        return seq.source.materialize(self, seq.view, mode)

    # ------------------------------------------------------------------ the walk
    def run(self) -> ir.Graph:
        g = self.graph
        for t in g.initializer:
            self.where = f"initializer {t.name!r}"
            self.values[t.name] = Const(tensor_value(t, self.where))
        for t in g.sparse_initializer:
            raise UnsupportedModelError(f"sparse initializer {t.values.name!r} is not supported")
        for vi in g.input:
            self.where = f"graph input {vi.name!r}"
            if vi.name in self.values:
                continue    # an initializer listed as an input (IR < 4): a constant
            if vi.name in self.constants:
                self.values[vi.name] = Const(_bound_constant(vi, self.constants.pop(vi.name)))
                continue
            self.values[vi.name] = Seq(self._graph_input(vi), None)
            self.values[vi.name].view = self.values[vi.name].source.layout
        if self.constants:
            raise UnsupportedModelError(f"constants= names {sorted(self.constants)}, which are "
                                        f"not graph inputs")
        for name in self.values:
            self._names.add(name)
        for node in g.node:
            self._names.update(node.output)

        live = self._live_nodes()
        for i in sorted(live):
            if g.node[i].op_type in ("Loop", "Scan"):
                from .ops import refuse_loop
                refuse_loop(g.node[i], i)
        if not any(g.node[i].op_type in ("RNN", "LSTM", "GRU") for i in live):
            raise UnsupportedModelError(
                "the graph has no RNN, LSTM or GRU operator. torch.onnx.export(dynamo=True) "
                "unrolls nn.RNN into per-step arithmetic for one fixed sequence length; export "
                "with dynamo=False (which writes an RNN operator), or convert the PyTorch "
                "weights with a spec (rnnrt.convert(state.npz, dst, spec=...))")
        self._readers = {}
        for i in live:
            for n in g.node[i].input:
                self._readers[n] = self._readers.get(n, 0) + 1
        for o in g.output:
            self._readers[o.name] = self._readers.get(o.name, 0) + 2
        from . import ops   # registers the handlers
        for index, node in enumerate(g.node):
            if index not in live:
                continue
            self.where = _node_name(node, index)
            ins = [self.values.get(n) if n else None for n in node.input]
            for n, v in zip(node.input, ins):
                if n and v is None:
                    raise UnsupportedModelError(f"node {_node_name(node, index)}: input {n!r} "
                                                f"is not defined")
            outs = ops.dispatch(self, node, index, ins)
            for name, value in zip(node.output, outs):
                if name:
                    self.values[name] = value

        outputs = []
        for vi in g.output:
            self.where = f"graph output {vi.name!r}"
            value = self.values.get(vi.name)
            if not isinstance(value, Seq):
                raise UnsupportedModelError(
                    f"graph output {vi.name!r} is {'undefined' if value is None else 'a constant'}"
                    f": rnnrt computes outputs from inputs only")
            outputs.append(self.materialize(value, "exact").name)
        self._rename_outputs(outputs, [vi.name for vi in g.output])
        from .recurrent import unique_state_keys
        unique_state_keys(self.layers)
        infos = [i.info() for i in self.inputs]
        return ir.Graph(infos, self.layers, [vi.name for vi in g.output],
                        metadata={"source_format": "onnx", "opset": int(self.opset),
                                  "ir_version": int(self.model.ir_version),
                                  "producer": f"{self.model.producer_name} "
                                              f"{self.model.producer_version}".strip()})

    def _graph_input(self, vi) -> GraphInput:
        t = vi.type.tensor_type
        if not vi.type.HasField("tensor_type") or t.elem_type not in _INPUT_DTYPES:
            raise UnsupportedModelError(
                f"graph input {vi.name!r}: rnnrt reads float32 sequences, int64 token ids and "
                f"int32 sequence lengths; this input's type is {_type_name(vi)}")
        dtype = _INPUT_DTYPES[t.elem_type]
        if not t.HasField("shape"):
            raise UnsupportedModelError(f"graph input {vi.name!r} has no declared rank")
        dims = list(t.shape.dim)
        layout = []
        for i, d in enumerate(dims):
            declared = d.dim_value if d.HasField("dim_value") else None
            if declared is not None and not 1 <= declared < 2 ** 31:
                raise UnsupportedModelError(f"graph input {vi.name!r}: axis {i} is declared of "
                                            f"size {declared}; rnnrt runs sizes 1 to 2**31-1")
            if dtype == "float32" and i == len(dims) - 1:
                if declared is None:
                    raise UnsupportedModelError(
                        f"graph input {vi.name!r}: the feature axis (last) must have a fixed "
                        f"size, got {d.dim_param or '?'}")
                layout.append((Axis("F", declared),))
                continue
            layout.append((Axis("?", declared=declared),))
        gi = GraphInput(vi.name, tuple(layout), dtype)
        self.inputs.append(gi)
        return gi

    def _live_nodes(self) -> set:
        """Indices of the nodes some graph output depends on."""
        g = self.graph
        producer = {}
        for i, node in enumerate(g.node):
            for o in node.output:
                if o:
                    producer[o] = i
        live, stack = set(), [o.name for o in g.output]
        while stack:
            i = producer.get(stack.pop())
            if i is None or i in live:
                continue
            live.add(i)
            stack.extend(n for n in g.node[i].input if n)
            stack.extend(_outer_names(g.node[i]))
        return live

    def _rename_outputs(self, ir_names, onnx_names) -> None:
        """Give each output IR tensor its ONNX name (views share one IR tensor)."""
        if len(set(ir_names)) != len(ir_names):
            raise UnsupportedModelError("two graph outputs are views of one tensor; rnnrt "
                                        "gives each output its own tensor")
        input_names = {i.name for i in self.inputs}
        mapping = {}
        for old, new in zip(ir_names, onnx_names):
            if old in input_names:
                raise UnsupportedModelError(f"graph output {new!r} is graph input {old!r} "
                                            f"unchanged")
            if old != new:
                mapping[old] = new
        if not mapping:
            return
        for layer in self.layers:
            for key in _TENSOR_FIELDS:
                v = getattr(layer, key, None)
                if isinstance(v, str) and v in mapping:
                    setattr(layer, key, mapping[v])


def _bound_constant(vi, value) -> np.ndarray:
    """A constants= value for graph input `vi`, in the element type the input declares."""
    from onnx import helper
    try:
        dtype = helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
        return np.asarray(value, dtype)
    except Exception as e:  # an undeclared type, or a value NumPy cannot convert
        raise InputError(f"constants[{vi.name!r}]: cannot be taken as the graph input's "
                         f"{_type_name(vi)}: {type(e).__name__}: {e}") from None


_TENSOR_FIELDS = ("x", "ids", "out", "mask", "seq_lens", "h0", "c0", "y", "h_n", "c_n",
                  "h_last", "c_last")


def _outer_names(node):
    """Names a node's subgraphs (Loop, If, Scan bodies) read from the enclosing scope."""
    out = []
    for a in node.attribute:
        graphs = list(a.graphs) + ([a.g] if a.HasField("g") else [])
        for sub in graphs:
            local = {i.name for i in sub.input} | {t.name for t in sub.initializer}
            for n in sub.node:
                local.update(n.output)
                out.extend(x for x in n.input if x and x not in local)
                out.extend(_outer_names(n))
    return out


def _node_name(node, index) -> str:
    return f"{node.op_type} node {node.name or f'#{index}'!r}"


def _type_name(vi) -> str:
    from onnx import helper
    try:
        return helper.printable_type(vi.type)
    except Exception:
        return str(vi.type).strip()
