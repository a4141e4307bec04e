"""Structure-aware mutations of an ONNX model (its protobuf, through the onnx package), and
raw byte mutations of the serialized file.

Each mutator takes (model, rng), edits the ModelProto in place (phase "proto") and returns a
short note, or raises Skip; a raw mutator takes (bytes, rng) and returns bytes (phase "raw").
"""

from __future__ import annotations

import random

import numpy as np
from onnx import AttributeProto, ModelProto, TensorProto, helper

from . import values
from .rnnrt_mutators import Skip

# Ops rnnrt converts, and some it does not: an op_type mutation lands on either.
OPS = ["RNN", "LSTM", "GRU", "Add", "Cast", "Concat", "Gather", "Gemm", "MatMul", "Mul",
       "Relu", "Reshape", "ReverseSequence", "Sigmoid", "Slice", "Softmax", "LogSoftmax",
       "Squeeze", "Tanh", "Transpose", "Unsqueeze", "Flatten", "Identity", "Shape",
       "ConstantOfShape", "Expand", "Where", "Div", "Sub", "Equal", "Max", "Dropout",
       "Loop", "Scan", "Conv", "If", "Constant", "NoSuchOp"]
ELEM_TYPES = [0, 1, 2, 3, 5, 6, 7, 9, 10, 11, 12, 16, 99]
ATTR_NAMES = ["hidden_size", "direction", "layout", "activations", "activation_alpha",
              "activation_beta", "clip", "input_forget", "linear_before_reset", "axis",
              "axes", "perm", "to", "value", "keepdims", "batch_axis", "time_axis", "alpha",
              "beta", "transA", "transB", "starts", "ends", "shape", "unknown_attr"]
MAX_ELEMENTS = 1 << 18     # a tensor of new dims larger than this keeps its old data


def _pick(rng, seq):
    if not len(seq):
        raise Skip
    return rng.choice(list(seq))


def _value_infos(model):
    g = model.graph
    return list(g.input) + list(g.output) + list(g.value_info)


def _names(model) -> list:
    g = model.graph
    out = [v.name for v in _value_infos(model)] + [t.name for t in g.initializer]
    for n in g.node:
        out += list(n.input) + list(n.output)
    return sorted({n for n in out if n})


def dims(model, rng):
    """A graph input's, output's or value_info's dimension: another size, a symbol, zero,
    huge or negative; added, dropped; or the shape cleared."""
    vi = _pick(rng, [v for v in _value_infos(model) if v.type.HasField("tensor_type")])
    shape = vi.type.tensor_type.shape
    op = rng.choice(["value", "value", "param", "add", "drop", "clear"])
    if op in ("value", "param") and len(shape.dim):
        d = shape.dim[rng.randrange(len(shape.dim))]
        if op == "value":
            d.dim_value = rng.choice([0, 1, 2, 3, 4, 5, 7, 2 ** 31, 2 ** 31 - 1, 2 ** 62, -1,
                                      -2 ** 63])
        else:
            d.dim_param = rng.choice(["batch", "time", "N", "", "unk__1", "x y"])
    elif op == "add":
        shape.dim.add().dim_value = rng.choice([1, 2, 3])
    elif op == "drop" and len(shape.dim):
        del shape.dim[rng.randrange(len(shape.dim))]
    else:
        vi.type.tensor_type.ClearField("shape")
    return f"dims of {vi.name!r}: {op}"


def elem_type(model, rng):
    """Another element type for a graph input, output, value_info or initializer."""
    g = model.graph
    targets = [("vi", v) for v in _value_infos(model) if v.type.HasField("tensor_type")] + \
        [("init", t) for t in g.initializer]
    kind, t = _pick(rng, targets)
    new = rng.choice(ELEM_TYPES)
    if kind == "vi":
        t.type.tensor_type.elem_type = new
    else:
        t.data_type = new
    return f"elem type of {t.name!r} -> {new}"


def _array(t):
    """An initializer's float32 / int values, or None."""
    from onnx import numpy_helper
    try:
        return numpy_helper.to_array(t)
    except Exception:
        return None


def initializer(model, rng):
    """An initializer's dims (without its data: the size disagrees), its data (NaN, huge,
    truncated, another storage field), its name; removed or duplicated."""
    from onnx import numpy_helper
    g = model.graph
    t = _pick(rng, g.initializer)
    op = rng.choice(["dims", "dims_fit", "values", "truncate", "storage", "rename",
                     "remove", "duplicate", "external", "empty"])
    if op == "dims":
        if len(t.dims) and rng.random() < 0.7:
            t.dims[rng.randrange(len(t.dims))] = rng.choice([0, 1, 2, 3, 2 ** 31, -1, 5])
        else:
            t.dims.append(rng.choice([1, 2]))
    elif op == "dims_fit":
        arr = _array(t)
        if arr is None or not arr.size:
            raise Skip
        shape = list(arr.shape)
        if not shape:
            raise Skip
        shape[rng.randrange(len(shape))] = rng.choice([1, 2, 3, 4, 6, 8, 12])
        n = int(np.prod(shape))
        if n > MAX_ELEMENTS:
            raise Skip
        new = np.resize(arr.reshape(-1), n).reshape(shape)
        t.CopyFrom(numpy_helper.from_array(new, t.name))
    elif op == "values":
        arr = _array(t)
        if arr is None or not arr.size:
            raise Skip
        arr = arr.copy().reshape(-1)
        idx = rng.randrange(arr.size)
        if arr.dtype.kind == "f":
            arr[idx] = rng.choice([np.nan, np.inf, -np.inf, 3e38, 1e-41, 0.0])
        else:
            info = np.iinfo(arr.dtype)
            arr[idx] = np.array(rng.choice([-1, 0, info.max, info.min, 2 ** 31 - 1])
                                ).astype(arr.dtype)
        t.CopyFrom(numpy_helper.from_array(arr.reshape(_array(t).shape), t.name))
    elif op == "truncate":
        if t.raw_data:
            t.raw_data = t.raw_data[:rng.randrange(len(t.raw_data) + 1)]
        elif len(t.float_data):
            del t.float_data[rng.randrange(len(t.float_data)):]
        else:
            raise Skip
    elif op == "storage":
        arr = _array(t)
        if arr is None or arr.dtype != np.float32:
            raise Skip
        t.ClearField("raw_data")
        t.float_data[:] = arr.reshape(-1).tolist()
    elif op == "rename":
        t.name = rng.choice(_names(model) + ["", "renamed"])
    elif op == "remove":
        g.initializer.remove(t)
    elif op == "duplicate":
        g.initializer.add().CopyFrom(t)
    elif op == "external":
        t.data_location = TensorProto.EXTERNAL
        entry = t.external_data.add()
        entry.key, entry.value = "location", rng.choice(["w.bin", "../../etc/passwd",
                                                         "/dev/zero", ""])
    else:
        t.ClearField("raw_data")
        t.ClearField("float_data")
        t.ClearField("int64_data")
        t.ClearField("int32_data")
    return f"initializer {t.name!r}: {op}"


def _attr_value(rng, name):
    r = rng.random()
    if name == "direction" or r < 0.15:
        return rng.choice(["forward", "reverse", "bidirectional", "both", "", "FORWARD"])
    if name == "activations" or r < 0.3:
        return [rng.choice(["Sigmoid", "Tanh", "Relu", "HardSigmoid", "Affine", "LeakyRelu",
                            "ThresholdedRelu", "ScaledTanh", "Elu", "Softsign", "Softplus",
                            "Nope", ""]) for _ in range(rng.randint(0, 7))]
    if r < 0.65:
        return rng.choice(values.EDGE_INTS)
    if r < 0.8:
        return rng.choice(values.EDGE_FLOATS)
    if r < 0.9:
        return [rng.choice(values.EDGE_INTS[:12]) for _ in range(rng.randint(0, 4))]
    return [rng.choice(values.EDGE_FLOATS) for _ in range(rng.randint(0, 4))]


def attribute(model, rng):
    """A node attribute's value, its type (a field that disagrees with the declared type),
    deleted, duplicated, or one the op does not define."""
    node = _pick(rng, model.graph.node)
    op = rng.choice(["value", "value", "type", "delete", "duplicate", "add"])
    if op == "add" or not len(node.attribute):
        name = rng.choice(ATTR_NAMES)
        try:
            node.attribute.append(helper.make_attribute(name, _attr_value(rng, name)))
        except (ValueError, TypeError):
            raise Skip from None
        return f"node {node.name!r}: attribute {name} added"
    a = node.attribute[rng.randrange(len(node.attribute))]
    if op == "value":
        try:
            new = helper.make_attribute(a.name, _attr_value(rng, a.name))
        except (ValueError, TypeError):
            raise Skip from None
        a.CopyFrom(new)
    elif op == "type":
        a.type = rng.choice([AttributeProto.INT, AttributeProto.FLOAT, AttributeProto.STRING,
                             AttributeProto.INTS, AttributeProto.FLOATS,
                             AttributeProto.STRINGS, AttributeProto.TENSOR, 0, 99])
    elif op == "delete":
        node.attribute.remove(a)
    else:
        node.attribute.append(a)
    return f"node {node.name!r}: attribute {a.name} {op}"


def node_io(model, rng):
    """A node input or output renamed to another tensor, to none ('', an optional input
    left out), to a dangling name; one added or dropped."""
    node = _pick(rng, model.graph.node)
    field = node.input if rng.random() < 0.6 else node.output
    op = rng.choice(["other", "other", "empty", "dangling", "add", "drop"])
    if op == "add":
        field.append(rng.choice(_names(model) + [""]))
    elif not len(field):
        raise Skip
    elif op == "drop":
        del field[rng.randrange(len(field))]
    else:
        k = rng.randrange(len(field))
        field[k] = {"other": lambda: rng.choice(_names(model)), "empty": lambda: "",
                    "dangling": lambda: "no_such_tensor"}[op]()
    return f"node {node.name!r}: {op} in {'inputs' if field is node.input else 'outputs'}"


def node_edit(model, rng):
    """A node's op type or domain changed; the node removed, duplicated or moved."""
    nodes = model.graph.node
    node = _pick(rng, nodes)
    op = rng.choice(["op_type", "op_type", "domain", "remove", "duplicate", "move"])
    if op == "op_type":
        node.op_type = rng.choice(OPS)
    elif op == "domain":
        node.domain = rng.choice(["com.microsoft", "ai.onnx.ml", "x"])
    elif op == "remove":
        nodes.remove(node)
    elif op == "duplicate":
        nodes.add().CopyFrom(node)
    else:
        i = list(nodes).index(node)
        items = list(nodes)
        items.insert(rng.randrange(len(items)), items.pop(i))
        del nodes[:]
        nodes.extend(items)
    return f"node {node.name!r}: {op}"


def graph_io(model, rng):
    """A graph input or output removed, duplicated, renamed, or a dangling one added."""
    g = model.graph
    field = g.input if rng.random() < 0.5 else g.output
    op = rng.choice(["remove", "duplicate", "rename", "add"])
    if op == "add" or not len(field):
        field.add().CopyFrom(helper.make_tensor_value_info(
            rng.choice(["extra", *_names(model)]), rng.choice([1, 6, 7]),
            [rng.choice(["batch", "time", 2, None]) for _ in range(rng.randint(0, 3))]))
        return "graph io added"
    v = field[rng.randrange(len(field))]
    if op == "remove":
        field.remove(v)
    elif op == "duplicate":
        field.add().CopyFrom(v)
    else:
        v.name = rng.choice(_names(model) + ["renamed", ""])
    return f"graph io {v.name!r}: {op}"


def model_frame(model, rng):
    """The opset import, the IR version, metadata."""
    op = rng.choice(["opset", "opset", "no_opset", "ir_version", "metadata", "functions"])
    if op == "opset" and len(model.opset_import):
        model.opset_import[0].version = rng.choice([1, 6, 7, 13, 14, 21, 22, 23, 99, 0, -1])
    elif op == "no_opset":
        del model.opset_import[:]
    elif op == "ir_version":
        model.ir_version = rng.choice([0, 1, 3, 7, 10, 11, 99])
    elif op == "metadata":
        p = model.metadata_props.add()
        p.key, p.value = "k", "v" * rng.choice([1, 1000])
    else:
        f = model.functions.add()
        f.name, f.domain = "f", "custom"
    return f"model: {op}"


def raw_bytes(raw: bytes, rng) -> bytes:
    b = bytearray(raw)
    if not b:
        return raw
    n = rng.choice([1, 1, 2, 8])
    for _ in range(n):
        op = rng.choice(["flip", "set", "truncate"])
        if op == "truncate" and rng.random() < 0.3:
            del b[rng.randrange(len(b) + 1):]
        elif b:
            i = rng.randrange(len(b))
            b[i] = b[i] ^ (1 << rng.randrange(8)) if op == "flip" else rng.randrange(256)
    return bytes(b)


MUTATORS = {
    "dims": ("proto", dims, 4), "elem_type": ("proto", elem_type, 2),
    "initializer": ("proto", initializer, 6), "attribute": ("proto", attribute, 6),
    "node_io": ("proto", node_io, 4), "node_edit": ("proto", node_edit, 3),
    "graph_io": ("proto", graph_io, 2), "model_frame": ("proto", model_frame, 1),
    "raw_bytes": ("raw", raw_bytes, 1),
}


def pick(rng: random.Random) -> str:
    names = list(MUTATORS)
    return rng.choices(names, weights=[MUTATORS[n][2] for n in names])[0]


def apply(seed: bytes, steps) -> tuple[bytes, list]:
    """The bytes of the seed model after `steps` [(mutator name, rng seed)] (proto edits
    first, then raw byte edits), with notes of what each did."""
    model = ModelProto.FromString(seed)
    notes, raw_steps = [], []
    for name, s in steps:
        phase, fn, _ = MUTATORS[name]
        rng = random.Random(s)
        if phase == "raw":
            raw_steps.append((fn, rng))
            continue
        try:
            notes.append(fn(model, rng))
        except (Skip, TypeError, AttributeError, KeyError, IndexError, ValueError,
                OverflowError):
            pass     # as rnnrt_mutators._run: a mutation that does not apply does nothing
    raw = model.SerializeToString()
    for fn, rng in raw_steps:
        raw = fn(raw, rng)
        notes.append(fn.__name__)
    return raw, notes
