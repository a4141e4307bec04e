"""Structure-aware mutations of ONNX models, for the importer's hardening test
(tests/test_onnx_hardening.py): each one edits one field a hostile or broken exporter could
get wrong (an initializer's dims, data or element type, an attribute's type or value, a
node's inputs, outputs or op type, a graph input's type or shape, the opset, names), so the
result still parses as ONNX and reaches rnnrt's checks instead of failing in protobuf.

Every mutated model must convert, or fail with FormatError / UnsupportedModelError.

    python tests/onnx_mutator.py [CASES] [SEED] [--no-checker]

runs a campaign over the committed fixtures and prints, by site, the untyped exceptions and
those only load_onnx's backstop typed. --no-checker skips onnx.checker, to reach the
importer's own checks with models the checker would refuse.
"""

from __future__ import annotations

import glob
import os
import random
import sys
import traceback
from collections import Counter

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper

ROOT = os.path.dirname(os.path.abspath(__file__))
FIXTURES = sorted(glob.glob(os.path.join(ROOT, "fixtures", "onnx", "*", "*.onnx")))

# Ops a mutated node may become: what the fixtures use, what the importer handles, and a few
# it does not.
OPS = ["LSTM", "GRU", "RNN", "Slice", "Concat", "Gather", "Reshape", "Transpose", "Squeeze",
       "Unsqueeze", "Shape", "ConstantOfShape", "Expand", "Cast", "Identity", "MatMul", "Gemm",
       "Add", "Mul", "Sub", "Div", "Softmax", "LogSoftmax", "Tanh", "Relu", "Sigmoid",
       "Flatten", "ReverseSequence", "Where", "Equal", "Constant", "Loop", "Scan", "If",
       "Split", "Sin", "NotAnOp", ""]
ELEM_TYPES = [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 16, 17, 99]
INTS = [0, 1, -1, 2, 3, -2, 7, 2 ** 31 - 1, 2 ** 31, -2 ** 31 - 1, 2 ** 40, 2 ** 62]
FLOATS = [0.0, -1.0, 1e30, float("nan"), float("inf"), -float("inf"), 1e-40]
STRINGS = [b"", b"forward", b"reverse", b"bidirectional", b"Tanh", b"nope", b"\xff\xfe",
           b"x" * 300]


def _pick(rng, seq):
    return seq[rng.randrange(len(seq))] if seq else None


def _names(model) -> list:
    g = model.graph
    out = [i.name for i in g.input] + [t.name for t in g.initializer]
    for n in g.node:
        out += list(n.output)
    return [n for n in out if n]


# ----------------------------------------------------------------------------- initializers

def init_dims(model, rng):
    t = _pick(rng, model.graph.initializer)
    if t is None:
        return "no initializer"
    dims = list(t.dims)
    how = rng.randrange(5)
    if how == 0 and dims:
        dims[rng.randrange(len(dims))] += _pick(rng, [1, -1, 2, 1000])
    elif how == 1:
        dims.append(_pick(rng, [1, 2, 3]))
    elif how == 2 and dims:
        dims.pop(rng.randrange(len(dims)))
    elif how == 3 and dims:
        dims[rng.randrange(len(dims))] = _pick(rng, [0, -1, -5, 2 ** 31, 2 ** 40])
    else:
        dims = dims[::-1]
    del t.dims[:]
    t.dims.extend(dims)
    return f"init {t.name!r} dims -> {dims}"


def init_data(model, rng):
    t = _pick(rng, model.graph.initializer)
    if t is None:
        return "no initializer"
    how = rng.randrange(4)
    if t.HasField("raw_data") or how == 0:
        raw = t.raw_data
        cut = rng.randrange(len(raw) + 1) if raw else 0
        t.raw_data = raw[:cut] if rng.random() < 0.7 else raw + bytes(rng.randrange(1, 9))
        return f"init {t.name!r} raw_data {len(raw)} -> {len(t.raw_data)} bytes"
    for field in ("float_data", "int64_data", "int32_data", "double_data"):
        data = getattr(t, field)
        if len(data):
            keep = rng.randrange(len(data) + 2)
            vals = list(data)[:keep] + [0] * max(0, keep - len(data))
            del data[:]
            data.extend(vals)
            return f"init {t.name!r} {field} -> {len(vals)} values"
    t.float_data.extend([1.0] * rng.randrange(1, 5))
    return f"init {t.name!r} float_data added"


def init_type(model, rng):
    t = _pick(rng, model.graph.initializer)
    if t is None:
        return "no initializer"
    t.data_type = _pick(rng, ELEM_TYPES)
    return f"init {t.name!r} data_type -> {t.data_type}"


def init_values(model, rng):
    """NaN, inf or huge values in an initializer (a float one keeps its size)."""
    t = _pick(rng, model.graph.initializer)
    if t is None or t.data_type not in (1, 7):
        return "no float/int64 initializer"
    try:
        arr = onnx.numpy_helper.to_array(t).copy()
    except Exception:  # noqa: BLE001 - an earlier mutation broke it already
        return "unreadable initializer"
    if arr.size == 0:
        return "empty initializer"
    flat = arr.reshape(-1)
    i = rng.randrange(flat.size)
    if arr.dtype.kind == "f":
        flat[i] = _pick(rng, FLOATS)
    else:
        flat[i] = _pick(rng, INTS[:10] + [-(2 ** 62)])
    t.CopyFrom(onnx.numpy_helper.from_array(arr, t.name))
    return f"init {t.name!r}[{i}] -> {flat[i]}"


def _replace_value(t, rng):
    """A new value for tensor t, self-consistent (its data fits its dims): another shape,
    element type or contents, so that it passes onnx.checker where the graph does not pin
    it down and reaches the importer."""
    try:
        arr = onnx.numpy_helper.to_array(t)
    except Exception:  # noqa: BLE001 - an earlier mutation broke it already
        arr = np.zeros(2, np.float32)
    how = rng.randrange(5)
    if how == 0 and arr.size:
        arr = arr.reshape(-1)[:rng.randrange(arr.size + 1)]           # shorter
    elif how == 1:
        arr = np.resize(arr, arr.shape[:-1] + (arr.shape[-1] + 1,)) if arr.ndim else arr[None]
    elif how == 2:
        arr = arr.reshape(tuple(reversed(arr.shape)))                  # transposed dims
    elif how == 3:
        kind = _pick(rng, [np.float64, np.float16, np.int64, np.int32, np.bool_, np.uint8])
        with np.errstate(all="ignore"):     # float -> int of inf / nan: whatever comes
            arr = arr.astype(kind) if arr.dtype.kind in "fiub" else arr
    else:
        shape = tuple(_pick(rng, [0, 1, 2, 3, 5]) for _ in range(rng.randrange(4)))
        arr = np.full(shape, _pick(rng, [0, 1, -1, 2, 7]), arr.dtype if arr.dtype.kind in
                      "fiub" else np.float32)
    t.CopyFrom(onnx.numpy_helper.from_array(np.ascontiguousarray(arr), t.name))


def init_replace(model, rng):
    t = _pick(rng, model.graph.initializer)
    if t is None:
        return "no initializer"
    _replace_value(t, rng)
    return f"init {t.name!r} -> {t.data_type} {list(t.dims)}"


def constant_replace(model, rng):
    """A Constant node's value (the shape vectors, indices and zeros exporters write)."""
    consts = [n for n in model.graph.node if n.op_type == "Constant"
              and any(a.name == "value" and a.type == AttributeProto.TENSOR
                      for a in n.attribute)]
    n = _pick(rng, consts)
    if n is None:
        return "no Constant"
    a = next(a for a in n.attribute if a.name == "value")
    _replace_value(a.t, rng)
    return f"Constant {n.name!r} -> {a.t.data_type} {list(a.t.dims)}"


def init_remove(model, rng):
    g = model.graph
    if not len(g.initializer):
        return "no initializer"
    i = rng.randrange(len(g.initializer))
    name = g.initializer[i].name
    del g.initializer[i]
    return f"init {name!r} removed"


def init_external(model, rng):
    t = _pick(rng, model.graph.initializer)
    if t is None:
        return "no initializer"
    t.data_location = TensorProto.EXTERNAL
    del t.external_data[:]
    e = t.external_data.add()
    e.key, e.value = "location", _pick(rng, ["nope.bin", "../../etc/passwd", "/dev/zero"])
    t.ClearField("raw_data")
    return f"init {t.name!r} external"


# ----------------------------------------------------------------------------- nodes

def node_op(model, rng):
    n = _pick(rng, model.graph.node)
    if n is None:
        return "no node"
    n.op_type = _pick(rng, OPS)
    return f"node {n.name!r} op -> {n.op_type!r}"


def node_inputs(model, rng):
    n = _pick(rng, model.graph.node)
    if n is None:
        return "no node"
    ins = list(n.input)
    how = rng.randrange(5)
    if how == 0 and ins:
        ins.pop(rng.randrange(len(ins)))
    elif how == 1:
        ins.append(_pick(rng, _names(model) + ["", "undefined_tensor"]))
    elif how == 2 and ins:
        ins[rng.randrange(len(ins))] = _pick(rng, _names(model) + ["", "undefined_tensor"])
    elif how == 3:
        rng.shuffle(ins)
    else:
        ins = ins[:rng.randrange(len(ins) + 1)]
    del n.input[:]
    n.input.extend(ins)
    return f"node {n.name!r} inputs -> {ins}"


def node_outputs(model, rng):
    n = _pick(rng, model.graph.node)
    if n is None:
        return "no node"
    outs = list(n.output)
    how = rng.randrange(4)
    if how == 0 and outs:
        outs.pop(rng.randrange(len(outs)))
    elif how == 1:
        outs.append(_pick(rng, _names(model) + ["extra_out"]))
    elif how == 2 and outs:
        outs[rng.randrange(len(outs))] = _pick(rng, _names(model) + [""])
    else:
        outs = outs[:1]
    del n.output[:]
    n.output.extend(outs)
    return f"node {n.name!r} outputs -> {outs}"


def node_misc(model, rng):
    g = model.graph
    if not len(g.node):
        return "no node"
    how = rng.randrange(4)
    i = rng.randrange(len(g.node))
    if how == 0:
        g.node[i].domain = _pick(rng, ["com.microsoft", "ai.onnx.ml", "x"])
        return f"node {i} domain"
    if how == 1:
        g.node.append(g.node[i])         # a duplicate: outputs defined twice
        return f"node {i} duplicated"
    if how == 2:
        del g.node[i]
        return f"node {i} removed"
    j = rng.randrange(len(g.node))
    a, b = onnx.NodeProto(), onnx.NodeProto()
    a.CopyFrom(g.node[i])
    b.CopyFrom(g.node[j])
    g.node[i].CopyFrom(b)
    g.node[j].CopyFrom(a)
    return f"nodes {i} and {j} swapped"


# ----------------------------------------------------------------------------- attributes

def _random_attribute(rng, name):
    kind = rng.randrange(8)
    if kind == 0:
        return helper.make_attribute(name, _pick(rng, INTS))
    if kind == 1:
        return helper.make_attribute(name, _pick(rng, FLOATS))
    if kind == 2:
        return helper.make_attribute(name, _pick(rng, STRINGS))
    if kind == 3:
        return helper.make_attribute(name, [_pick(rng, INTS) for _ in range(rng.randrange(4))],
                                     attr_type=AttributeProto.INTS)
    if kind == 4:
        return helper.make_attribute(name, [_pick(rng, FLOATS) for _ in range(rng.randrange(4))],
                                     attr_type=AttributeProto.FLOATS)
    if kind == 5:
        return helper.make_attribute(name, [_pick(rng, STRINGS) for _ in range(rng.randrange(4))],
                                     attr_type=AttributeProto.STRINGS)
    if kind == 6:
        arr = np.array([_pick(rng, [0.0, 1.0, 2.5])] * rng.randrange(3), np.float32)
        return helper.make_attribute(name, onnx.numpy_helper.from_array(arr))
    a = AttributeProto()       # a type-less attribute
    a.name = name
    return a


def attr_change(model, rng):
    nodes = [n for n in model.graph.node if len(n.attribute)]
    n = _pick(rng, nodes)
    if n is None:
        return "no attribute"
    i = rng.randrange(len(n.attribute))
    a = n.attribute[i]
    how = rng.randrange(3)
    if how == 0:         # same type, another value
        if a.type == AttributeProto.INT:
            a.i = _pick(rng, INTS)
        elif a.type == AttributeProto.FLOAT:
            a.f = _pick(rng, FLOATS)
        elif a.type == AttributeProto.STRING:
            a.s = _pick(rng, STRINGS)
        elif a.type == AttributeProto.INTS:
            vals = [_pick(rng, INTS) for _ in range(rng.randrange(4))]
            del a.ints[:]
            a.ints.extend(vals)
        elif a.type == AttributeProto.STRINGS:
            vals = [_pick(rng, STRINGS) for _ in range(rng.randrange(7))]
            del a.strings[:]
            a.strings.extend(vals)
        elif a.type == AttributeProto.FLOATS:
            vals = [_pick(rng, FLOATS) for _ in range(rng.randrange(4))]
            del a.floats[:]
            a.floats.extend(vals)
        elif a.type == AttributeProto.TENSOR:
            a.t.data_type = _pick(rng, ELEM_TYPES)
        return f"node {n.name!r} attr {a.name!r} value"
    if how == 1:         # another type
        n.attribute[i].CopyFrom(_random_attribute(rng, a.name))
        return f"node {n.name!r} attr {a.name!r} type -> {n.attribute[i].type}"
    del n.attribute[i]
    return f"node {n.name!r} attr {a.name!r} removed"


def attr_add(model, rng):
    n = _pick(rng, model.graph.node)
    if n is None:
        return "no node"
    name = _pick(rng, ["hidden_size", "direction", "layout", "clip", "activations",
                       "activation_alpha", "activation_beta", "axis", "axes", "perm",
                       "linear_before_reset", "input_forget", "to", "value", "starts", "ends",
                       "transB", "alpha", "beta", "allowzero", "keepdims", "unknown_attr",
                       "time_axis", "batch_axis", "approximate"])
    n.attribute.append(_random_attribute(rng, name))
    return f"node {n.name!r} attr {name!r} added"


# ----------------------------------------------------------------------------- graph I/O

def io_type(model, rng):
    g = model.graph
    vi = _pick(rng, list(g.input) + list(g.output))
    if vi is None:
        return "no input"
    how = rng.randrange(4)
    t = vi.type.tensor_type
    if how == 0:
        t.elem_type = _pick(rng, ELEM_TYPES)
        return f"{vi.name!r} elem_type -> {t.elem_type}"
    if how == 1:
        t.ClearField("shape")
        return f"{vi.name!r} shape removed"
    if how == 2:
        vi.type.ClearField("tensor_type")
        vi.type.sequence_type.elem_type.tensor_type.elem_type = 1
        return f"{vi.name!r} becomes a sequence"
    dims = t.shape.dim
    if len(dims):
        d = dims[rng.randrange(len(dims))]
        choice = rng.randrange(3)
        if choice == 0:
            d.dim_value = _pick(rng, [0, 1, 2, 3, 7, 2 ** 31, 2 ** 40])
        elif choice == 1:
            d.dim_param = _pick(rng, ["batch", "time", "x", ""])
        else:
            d.Clear()
    else:
        t.shape.dim.add().dim_value = 1
    return f"{vi.name!r} dims -> {[d.dim_value or d.dim_param for d in dims]}"


def io_rank(model, rng):
    g = model.graph
    vi = _pick(rng, list(g.input) + list(g.output))
    if vi is None or not vi.type.HasField("tensor_type"):
        return "no input"
    dims = vi.type.tensor_type.shape.dim
    if len(dims) and rng.random() < 0.5:
        del dims[rng.randrange(len(dims))]
    else:
        dims.add().dim_value = _pick(rng, [1, 2, 3])
    return f"{vi.name!r} rank -> {len(dims)}"


def io_list(model, rng):
    g = model.graph
    how = rng.randrange(5)
    if how == 0 and len(g.input):
        del g.input[rng.randrange(len(g.input))]
        return "input removed"
    if how == 1 and len(g.output):
        del g.output[rng.randrange(len(g.output))]
        return "output removed"
    if how == 2 and len(g.input):
        g.input.append(g.input[rng.randrange(len(g.input))])
        return "input duplicated"
    if how == 3 and len(g.output):
        g.output[rng.randrange(len(g.output))].name = _pick(rng, _names(model) + ["nowhere"])
        return "output renamed"
    g.input.append(helper.make_tensor_value_info(
        _pick(rng, _names(model) + ["fresh"]), _pick(rng, [1, 6, 7]), ["b", "t", 3]))
    return "input added"


# ----------------------------------------------------------------------------- model

def names(model, rng):
    """Duplicate a name: a node output or initializer takes another tensor's name."""
    g = model.graph
    all_names = _names(model)
    if not all_names:
        return "no names"
    target = _pick(rng, all_names)
    how = rng.randrange(3)
    if how == 0 and len(g.initializer):
        t = _pick(rng, g.initializer)
        t.name = target
        return f"init renamed {target!r}"
    if how == 1 and len(g.node):
        n = _pick(rng, g.node)
        if len(n.output):
            n.output[rng.randrange(len(n.output))] = target
            return f"node output renamed {target!r}"
    if len(g.node) >= 2:
        a, b = rng.sample(range(len(g.node)), 2)
        g.node[a].name = g.node[b].name
        return "node names duplicated"
    return "nothing renamed"


def opset(model, rng):
    how = rng.randrange(4)
    ops = model.opset_import
    if how == 0 and len(ops):
        ops[0].version = _pick(rng, [0, 1, 6, 7, 9, 13, 14, 21, 22, 23, 30, 1000])
        return f"opset -> {ops[0].version}"
    if how == 1:
        del ops[:]
        return "opsets removed"
    if how == 2:
        model.ir_version = _pick(rng, [0, 1, 3, 4, 7, 10, 11, 99])
        return f"ir_version -> {model.ir_version}"
    o = ops.add()
    o.domain, o.version = _pick(rng, ["", "com.microsoft", "ai.onnx"]), _pick(rng, [1, 17])
    return "opset added"


# Each with its weight: the kinds of defect issue 16 found most often weigh more.
MUTATIONS, WEIGHTS = zip(*[
    (init_dims, 4), (init_data, 4), (init_type, 3), (init_values, 2), (init_replace, 4),
    (constant_replace, 4), (init_remove, 2), (init_external, 1), (node_op, 3),
    (node_inputs, 4), (node_outputs, 2), (node_misc, 2), (attr_change, 4), (attr_add, 2),
    (io_type, 3), (io_rank, 1), (io_list, 2), (names, 2), (opset, 1)])


def mutate(model: onnx.ModelProto, rng: random.Random, count: int = None) -> list:
    """Apply 1 to 3 mutations to `model` in place; returns what they did."""
    done = []
    for _ in range(count or rng.choice([1, 1, 1, 2, 3])):
        (fn,) = rng.choices(MUTATIONS, WEIGHTS)
        done.append(fn(model, rng))
    return done


def seeds() -> list:
    return [onnx.load(p, load_external_data=False) for p in FIXTURES]


def cases(n: int, seed: int = 0):
    """n mutated models, derandomized: (index, fixture name, mutations, model)."""
    base = seeds()
    for i in range(n):
        rng = random.Random(f"{seed}:{i}")
        k = i % len(base)
        model = onnx.ModelProto()
        model.CopyFrom(base[k])
        done = mutate(model, rng)
        yield i, os.path.basename(FIXTURES[k]), done, model


def site(exc: BaseException) -> str:
    """Where an exception was raised: its type and the innermost rnnrt frame, else the
    innermost frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if f"{os.sep}rnnrt{os.sep}" in f.filename]
    f = (ours or frames)[-1]
    where = f.filename.split(f"{os.sep}rnnrt{os.sep}")[-1]
    return f"{type(exc).__name__} at {where}:{f.lineno} ({f.name})"


def convert(model, dst) -> str:
    """rnnrt.convert of a model, from its bytes on disk as a user would."""
    import rnnrt
    src = dst + ".onnx"
    with open(src, "wb") as f:
        f.write(model.SerializeToString())
    return rnnrt.convert(src, dst + ".rnnrt")




def backstopped(exc) -> bool:
    """Whether a FormatError is load_onnx's backstop over an exception no check foresaw."""
    from rnnrt.errors import RnnrtError
    return exc.__cause__ is not None and not isinstance(exc.__cause__, RnnrtError)


def campaign(n: int, seed: int, workdir: str):
    """({site: count} of untyped exceptions and of those only the backstop typed,
    {site: an example}, {error type: count}, models converted)."""
    import rnnrt
    from rnnrt.errors import FormatError, UnsupportedModelError
    sites, examples, typed, ok = Counter(), {}, Counter(), 0
    for i, name, done, model in cases(n, seed):
        try:
            path = convert(model, os.path.join(workdir, "m"))
        except (FormatError, UnsupportedModelError) as e:
            typed[type(e).__name__] += 1
            if not backstopped(e):
                continue
            s, msg = "backstop: " + site(e.__cause__), str(e)
        except Exception as e:  # noqa: BLE001 - what the campaign counts
            s, msg = site(e), f"{type(e).__name__}: {e}"
        else:
            try:
                rnnrt.load(path)
                ok += 1
                continue
            except Exception as e:  # noqa: BLE001 - a converted file must load
                s, msg = "converted, but load fails: " + site(e), f"{type(e).__name__}: {e}"
        sites[s] += 1
        examples.setdefault(s, (i, name, done, msg[:300]))
    return sites, examples, typed, ok


if __name__ == "__main__":
    import tempfile
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 3000
    seed = int(args[1]) if len(args) > 1 else 0
    if "--no-checker" in sys.argv:
        from rnnrt.importers.onnx import proto
        proto.check_model = lambda model, shown="": None
    with tempfile.TemporaryDirectory() as tmp:
        sites, examples, typed, ok = campaign(n, seed, tmp)
    print(f"{n} cases: {ok} converted, {dict(typed)} typed; {sum(sites.values())} untyped "
          f"or typed by the backstop only, at {len(sites)} sites")
    for s, k in sites.most_common():
        i, name, done, msg = examples[s]
        print(f"{k:6d}  {s}\n        e.g. case {i} {name} {done}: {msg}")
