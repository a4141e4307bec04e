"""Structure-aware mutations of a .rnnrt file (tests/fuzz/rnnrt_doc.py keeps it
checksum-valid), and raw byte mutations of its bytes.

Each mutator takes (doc, rng) and edits the Doc in place (phase "doc"), the laid-out tensor
table (phase "table", (table, rng)) or the file's bytes (phase "raw", (bytes, rng) -> bytes);
it returns a short note of what it did, or raises Skip when it does not apply.
"""

from __future__ import annotations

import copy
import random

import numpy as np

from . import rnnrt_doc, values
from .rnnrt_doc import Tensor

ROLES = ["Wp", "Rp", "b", "rbh", "P", "Projt", "h0_value", "c0_value", "seq_lens_value",
         "Wt", "Rt", "kernel", "bias", "table", "unknown_role"]
# Attributes that name tensors: what a rename has to follow.
TENSOR_ATTRS = ("x", "ids", "out", "mask", "seq_lens", "h0", "c0", "y", "h_n", "c_n",
                "h_last", "c_last")
MAX_TENSOR_BYTES = 1 << 20     # a reshaped tensor larger than this keeps its bytes (a lie)


# The widest constant state a mutation makes: a hidden_size past it is the mutation's own.
MAX_STATE_UNITS = 1 << 16


class Skip(Exception):
    """The mutation does not apply to this document."""


def _layers(doc):
    layers = doc.graph.get("layers")
    if not isinstance(layers, list) or not layers:
        raise Skip
    return layers


def _layer(doc, rng):
    layer = rng.choice(_layers(doc))
    if not isinstance(layer, dict):
        raise Skip
    return layer


def _dict_of(layer, key):
    d = layer.get(key)
    if not isinstance(d, dict):
        raise Skip
    return d


def tensor_names(doc) -> list:
    """Every tensor name the graph mentions or the table holds, sorted (a set's order
    changes from process to process, and a case must mean the same bytes everywhere)."""
    names = set(doc.tensors)
    for info in doc.graph.get("inputs") or []:
        if isinstance(info, dict) and isinstance(info.get("name"), str):
            names.add(info["name"])
    for layer in doc.graph.get("layers") or []:
        if not isinstance(layer, dict):
            continue
        for d in (layer.get("attrs"), layer.get("params")):
            if isinstance(d, dict):
                names.update(v for v in d.values() if isinstance(v, str))
    return sorted(names)


def defined_names(doc) -> list:
    """Graph inputs and layer outputs: what the graph's outputs may name."""
    out = [i["name"] for i in doc.graph.get("inputs") or []
           if isinstance(i, dict) and isinstance(i.get("name"), str)]
    for layer in doc.graph.get("layers") or []:
        attrs = layer.get("attrs") if isinstance(layer, dict) else None
        if isinstance(attrs, dict):
            out += [v for k, v in attrs.items() if k in TENSOR_ATTRS[2:] and isinstance(v, str)]
    return out


# ----------------------------------------------------------------------- graph document

def attr_set(doc, rng):
    layer = _layer(doc, rng)
    attrs = _dict_of(layer, "attrs")
    if not attrs:
        raise Skip
    key = rng.choice(sorted(attrs))
    old = attrs[key]
    attrs[key] = values.near(rng, old) if rng.random() < 0.4 else \
        values.value(rng, tensor_names(doc))
    return f"attr {layer.get('name')}.{key}: {old!r:.40} -> {attrs[key]!r:.60}"


def attr_delete(doc, rng):
    layer = _layer(doc, rng)
    attrs = _dict_of(layer, "attrs")
    if not attrs:
        raise Skip
    key = rng.choice(sorted(attrs))
    del attrs[key]
    return f"attr {layer.get('name')}.{key} deleted"


def attr_add(doc, rng):
    layer = _layer(doc, rng)
    attrs = _dict_of(layer, "attrs")
    others = sorted({k for l in _layers(doc) if isinstance(l, dict)
                     and isinstance(l.get("attrs"), dict) for k in l["attrs"]})
    key = rng.choice(others + ["unknown", "index", "start", "stop", "axis", "parts", "xs"])
    attrs[key] = values.value(rng, tensor_names(doc))
    return f"attr {layer.get('name')}.{key} = {attrs[key]!r:.60}"


def activation(doc, rng):
    """Edit a cell or layer activation: its name, alpha, beta, or its form."""
    layer = _layer(doc, rng)
    attrs = _dict_of(layer, "attrs")
    slots = []
    if isinstance(attrs.get("activation"), dict):
        slots.append(attrs["activation"])
    for per in attrs.get("activations") or []:
        if isinstance(per, list):
            slots += [a for a in per if isinstance(a, dict)]
    if not slots:
        raise Skip
    act = rng.choice(slots)
    key = rng.choice(["name", "name", "alpha", "beta", "drop"])
    if key == "drop":
        act.pop(rng.choice(sorted(act) or ["name"]), None)
        return f"activation of {layer.get('name')}: a key dropped"
    act[key] = rng.choice(values.ENUM_STRINGS) if key == "name" and rng.random() < 0.8 \
        else values.value(rng) if rng.random() < 0.5 else rng.choice(values.EDGE_FLOATS)
    return f"activation of {layer.get('name')}: {key} = {act[key]!r:.40}"


def param_retarget(doc, rng):
    """Point a layer's parameter at another tensor, at none (dangling), or at a non-name."""
    layer = _layer(doc, rng)
    params = _dict_of(layer, "params")
    if not params:
        raise Skip
    role = rng.choice(sorted(params))
    r = rng.random()
    params[role] = rng.choice(sorted(doc.tensors)) if r < 0.4 and doc.tensors else \
        f"{params[role]}.missing" if r < 0.8 else values.value(rng)
    return f"param {layer.get('name')}.{role} -> {params[role]!r:.60}"


def param_delete(doc, rng):
    layer = _layer(doc, rng)
    params = _dict_of(layer, "params")
    if not params:
        raise Skip
    role = rng.choice(sorted(params))
    del params[role]
    return f"param {layer.get('name')}.{role} deleted"


def _state_like(doc, layer, role, rng):
    """A plausibly shaped constant for `role` of a recurrent layer (a constant initial state
    or lengths), so that the planner's shape checks pass and what follows is exercised."""
    a = layer.get("attrs") or {}
    D = 2 if a.get("direction") == "bidirectional" else 1
    H = a.get("hidden_size") if isinstance(a.get("hidden_size"), int) else 3
    B0 = rng.choice([1, 1, 2, 3])
    if role == "seq_lens_value":
        arr = np.array([rng.choice([0, 1, 2, 3, 4, 2 ** 31 - 1, -1]) for _ in range(B0)],
                       np.int32)
    else:
        shape = (D, B0, H) if a.get("state_layout") != "bdh" else (B0, D, H)
        if not 0 < H <= MAX_STATE_UNITS:
            raise Skip      # a mutated hidden_size (2**31) would ask for 96 GiB here
        arr = np.random.default_rng(rng.getrandbits(32)).standard_normal(shape)
        arr = arr.astype(np.float32)
    return Tensor(rnnrt_doc.fileformat._dtype_name(arr), list(arr.shape), arr.tobytes())


def param_add(doc, rng):
    """Give a layer a parameter it did not have: an existing tensor, a new plausibly shaped
    constant state, or a name that is not in the file."""
    layer = _layer(doc, rng)
    params = layer.setdefault("params", {})
    if not isinstance(params, dict):
        raise Skip
    role = rng.choice(ROLES)
    r = rng.random()
    if r < 0.45 and role in ("h0_value", "c0_value", "seq_lens_value"):
        name = f"{layer.get('name')}.{role}.new"
        doc.tensors[name] = _state_like(doc, layer, role, rng)
    elif r < 0.7 and doc.tensors:
        name = rng.choice(sorted(doc.tensors))
    else:
        name = f"{layer.get('name')}.{role}.dangling"
    params[role] = name
    return f"param {layer.get('name')}.{role} added -> {name!r}"


def layer_edit(doc, rng):
    """Swap, duplicate, delete, move a layer, or change its kind or name."""
    layers = _layers(doc)
    op = rng.choice(["swap", "duplicate", "delete", "move", "kind", "name", "junk"])
    i = rng.randrange(len(layers))
    if op == "swap" and len(layers) > 1:
        j = rng.randrange(len(layers))
        layers[i], layers[j] = layers[j], layers[i]
    elif op == "duplicate":
        layers.insert(rng.randrange(len(layers) + 1), copy.deepcopy(layers[i]))
    elif op == "delete":
        del layers[i]
    elif op == "move":
        layers.insert(rng.randrange(len(layers)), layers.pop(i))
    elif op == "kind" and isinstance(layers[i], dict):
        layers[i]["kind"] = rng.choice(values.ENUM_STRINGS[:10] + ["Conv", None, 3])
    elif op == "name" and isinstance(layers[i], dict):
        other = layers[rng.randrange(len(layers))]
        layers[i]["name"] = other.get("name") if isinstance(other, dict) else values.value(rng)
    else:
        layers[i] = values.value(rng)
    return f"layer {i}: {op}"


def input_edit(doc, rng):
    """Edit a graph input: a dimension, its rank, dtype, name; duplicate or delete it."""
    inputs = doc.graph.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise Skip
    i = rng.randrange(len(inputs))
    info = inputs[i]
    if not isinstance(info, dict):
        raise Skip
    op = rng.choice(["dim", "dim", "dim", "insert", "drop", "dtype", "name", "duplicate",
                     "delete", "add"])
    shape = info.get("shape")
    if op in ("dim", "insert", "drop") and isinstance(shape, list):
        k = rng.randrange(len(shape) + (op == "insert")) if shape or op == "insert" else 0
        if op == "dim" and shape:
            shape[k] = values.dim(rng)
        elif op == "insert":
            shape.insert(k, values.dim(rng))
        elif shape:
            del shape[k]
        return f"input {info.get('name')!r}: shape -> {shape!r:.80}"
    if op == "dtype":
        info["dtype"] = rng.choice(["float32", "int64", "int32", "uint8", "float64", None, 1])
    elif op == "name":
        info["name"] = values.value(rng, tensor_names(doc))
    elif op == "duplicate":
        inputs.insert(rng.randrange(len(inputs) + 1), copy.deepcopy(info))
    elif op == "delete":
        del inputs[i]
    else:
        inputs.append({"name": rng.choice(["extra", "h0", "lens", *tensor_names(doc)]),
                       "shape": [values.dim(rng) for _ in range(rng.randint(0, 4))],
                       "dtype": rng.choice(["float32", "int64", "int32"])})
        return f"input added: {inputs[-1]!r:.80}"
    return f"input {i}: {op} -> {inputs[i] if i < len(inputs) else None!r:.80}"


def outputs_edit(doc, rng):
    """List other tensors as outputs (an intermediate, a mask, an input), reorder, repeat,
    drop or add a dangling one."""
    outs = doc.graph.get("outputs")
    if not isinstance(outs, list):
        raise Skip
    defined = defined_names(doc)
    op = rng.choice(["replace", "first", "shuffle", "duplicate", "drop", "dangling", "junk"])
    if op == "replace" and defined:
        outs[:] = rng.sample(defined, rng.randint(1, min(3, len(defined))))
    elif op == "first" and defined:
        outs.insert(0, rng.choice(defined))
    elif op == "shuffle":
        rng.shuffle(outs)
    elif op == "duplicate" and outs:
        outs.append(rng.choice(outs))
    elif op == "drop" and outs:
        del outs[rng.randrange(len(outs))]
    elif op == "dangling":
        outs.append("no_such_tensor")
    else:
        doc.graph["outputs"] = values.value(rng, defined)
    return f"outputs: {op} -> {doc.graph['outputs']!r:.80}"


def rename_tensor(doc, rng):
    """Rename a tensor everywhere (a consistent edit the file should survive) or in one place
    only (a dangling reference)."""
    names = sorted(tensor_names(doc))
    if not names:
        raise Skip
    old = rng.choice(names)
    new = rng.choice([old + "_r", "x", "y", "batch", "", old.upper()])
    everywhere = rng.random() < 0.5
    hits = 0

    def sub(d, keys=None):
        nonlocal hits
        for k, v in list(d.items()):
            if v == old and (keys is None or k in keys) and (everywhere or not hits):
                d[k] = new
                hits += 1
    for info in doc.graph.get("inputs") or []:
        if isinstance(info, dict):
            sub(info, ("name",))
    for layer in doc.graph.get("layers") or []:
        if isinstance(layer, dict):
            for key in ("attrs", "params"):
                if isinstance(layer.get(key), dict):
                    sub(layer[key])
            if isinstance(layer.get("attrs"), dict) and isinstance(layer["attrs"].get("xs"),
                                                                  list):
                layer["attrs"]["xs"] = [new if v == old else v for v in layer["attrs"]["xs"]]
    outs = doc.graph.get("outputs")
    if isinstance(outs, list) and (everywhere or not hits):
        doc.graph["outputs"] = [new if v == old else v for v in outs]
    if old in doc.tensors and (everywhere or not hits):
        doc.tensors = {new if k == old else k: t for k, t in doc.tensors.items()}
    return f"rename {old!r} -> {new!r} ({'everywhere' if everywhere else 'once'})"


def graph_junk(doc, rng):
    """The document's frame: a top-level key missing, of the wrong type, or extra; the
    versions, the metadata."""
    op = rng.choice(["graph_key", "graph_extra", "metadata", "header_extra", "version",
                     "header_version"])
    if op == "graph_key":
        key = rng.choice(["inputs", "layers", "outputs"])
        if rng.random() < 0.5:
            doc.graph.pop(key, None)
        else:
            doc.graph[key] = values.value(rng)
    elif op == "graph_extra":
        doc.graph[rng.choice(["extra", "streamable", "metadata"])] = values.value(rng)
    elif op == "metadata":
        doc.metadata = values.value(rng) if rng.random() < 0.3 else \
            {**doc.metadata, "x": values.value(rng)}
    elif op == "header_extra":
        doc.extra_header[rng.choice(["extra", "graph2"])] = values.value(rng)
    elif op == "version":
        doc.version = rng.choice([0, 1, 1, 2, 3, 2 ** 31])
    else:
        doc.header_version = rng.choice([0, 1, 2, 3, True, "2", None, 2.0])
    return f"frame: {op}"


def tree_edit(doc, rng):
    """Replace, delete or insert a value anywhere in the graph document."""
    path, node = [], doc.graph
    for _ in range(rng.randint(1, 6)):
        kids = list(node.items()) if isinstance(node, dict) else \
            list(enumerate(node)) if isinstance(node, list) else []
        if not kids:
            break
        k, child = rng.choice(kids)
        if not isinstance(child, (dict, list)) or rng.random() < 0.2:
            break
        path.append(k)
        node = child
    if isinstance(node, dict) and node:
        k = rng.choice(sorted(node, key=str))
        op = rng.choice(["set", "del"])
        if op == "del":
            del node[k]
        else:
            node[k] = values.value(rng, tensor_names(doc))
    elif isinstance(node, list) and node:
        k = rng.randrange(len(node))
        op = rng.choice(["set", "del", "insert"])
        if op == "del":
            del node[k]
        elif op == "insert":
            node.insert(k, copy.deepcopy(node[k]) if rng.random() < 0.5 else values.value(rng))
        else:
            node[k] = values.value(rng, tensor_names(doc))
    else:
        raise Skip
    return f"tree {'/'.join(map(str, path))}/{k}: {op}"


# ----------------------------------------------------------------------- tensors

def _tensor(doc, rng):
    if not doc.tensors:
        raise Skip
    name = rng.choice(sorted(doc.tensors))
    return name, doc.tensors[name]


def _resized(data: bytes, nbytes: int, rng) -> bytes:
    if nbytes <= len(data):
        return data[:nbytes]
    pad = rng.choice([b"\x00", b"\xff", b"\x7f", b"\x01"])
    return data + pad * (nbytes - len(data))


def _nbytes(t: Tensor):
    """Bytes of a tensor's shape and dtype, or None when it has no sensible size."""
    if not isinstance(t.shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in t.shape):
        return None
    n = rnnrt_doc.itemsize(t.dtype)
    for d in t.shape:
        n *= d
    return n


def tensor_values(doc, rng):
    """Edit a tensor's values: NaN, infinities, huge or denormal floats; negative or huge
    integers (sequence lengths); random bytes; all zeros."""
    name, t = _tensor(doc, rng)
    arr = rnnrt_doc.array(t)
    if arr is None or arr.size == 0:
        raise Skip
    arr = arr.copy().reshape(-1)
    op = rng.choice(["special", "special", "bytes", "zeros", "scale"])
    gen = np.random.default_rng(rng.getrandbits(32))
    idx = gen.integers(0, arr.size, size=rng.randint(1, max(1, min(8, arr.size))))
    if op == "special":
        if arr.dtype.kind == "f":
            arr[idx] = rng.choice([np.nan, np.inf, -np.inf, 3e38, -3e38, 1e-41, 0.0, 1e6])
        else:
            info = np.iinfo(arr.dtype)
            v = rng.choice([-1, 0, info.max, info.min, 2 ** 31 - 1, 5])
            arr[idx] = np.array(v).astype(arr.dtype)     # wraps, as C would
    elif op == "bytes":
        raw = bytearray(arr.tobytes())
        for _ in range(rng.randint(1, 8)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        arr = np.frombuffer(bytes(raw), arr.dtype)
    elif op == "zeros":
        arr[:] = 0
    elif arr.dtype.kind == "f":
        arr *= rng.choice([1e3, 1e10, -1.0, 1e-20])
    t.data = arr.tobytes()
    return f"tensor {name!r}: values {op}"


def tensor_dtype(doc, rng):
    """Another dtype for a tensor, its bytes resized to fit (or kept: a table lie)."""
    name, t = _tensor(doc, rng)
    old = t.dtype
    t.dtype = rng.choice(["float32", "int32", "int64", "uint8", "float64", "float16", "",
                          "<f4", None, 4])
    n = _nbytes(t)
    if n is not None and n <= MAX_TENSOR_BYTES and rng.random() < 0.8:
        t.data = _resized(t.data, n, rng)
    return f"tensor {name!r}: dtype {old} -> {t.dtype!r}"


def tensor_shape(doc, rng):
    """Another shape for a tensor (a dimension changed, added or dropped), its bytes resized
    to fit when small enough (else kept: the table lies about the size)."""
    name, t = _tensor(doc, rng)
    old = list(t.shape) if isinstance(t.shape, list) else t.shape
    shape = list(t.shape) if isinstance(t.shape, list) else []
    op = rng.choice(["dim", "dim", "insert", "drop", "hostile"])
    if op == "dim" and shape:
        k = rng.randrange(len(shape))
        shape[k] = rng.choice([0, 1, 2, shape[k] + 1, shape[k] - 1 if shape[k] else 0,
                               shape[k] * 2, 32, 33])
    elif op == "insert":
        shape.insert(rng.randrange(len(shape) + 1), rng.choice([1, 1, 2, 3]))
    elif op == "drop" and shape:
        del shape[rng.randrange(len(shape))]
    else:
        shape = [values.dim(rng) if rng.random() < 0.5 else d for d in shape] or \
            [values.dim(rng)]
    t.shape = shape
    n = _nbytes(t)
    if n is not None and n <= MAX_TENSOR_BYTES:
        t.data = _resized(t.data, n, rng)
    return f"tensor {name!r}: shape {old} -> {shape!r:.60}"


def tensor_table(doc, rng):
    """Delete, duplicate, rename or add a tensor (the graph's references unchanged)."""
    op = rng.choice(["delete", "duplicate", "rename", "add", "reorder"])
    if op == "add" or not doc.tensors:
        doc.tensors[f"extra{len(doc.tensors)}"] = Tensor("float32", [2], bytes(8))
        return "tensor added"
    name, t = _tensor(doc, rng)
    if op == "delete":
        del doc.tensors[name]
    elif op == "duplicate":
        doc.tensors[name + ".copy"] = Tensor(t.dtype, list(t.shape), t.data)
    elif op == "rename":
        doc.tensors = {(name + ".renamed" if k == name else k): v
                       for k, v in doc.tensors.items()}
    else:
        items = list(doc.tensors.items())
        rng.shuffle(items)
        doc.tensors = dict(items)
    return f"tensor {name!r}: {op}"


# ----------------------------------------------------------------------- table lies

def table_lie(table, rng):
    """After layout: an entry's offset, nbytes, crc32, shape or dtype says something else
    than its bytes, or the entry is malformed."""
    if not table:
        raise Skip
    name = rng.choice(sorted(table))
    e = table[name]
    key = rng.choice(["offset", "nbytes", "crc32", "shape", "dtype", "drop", "extra",
                      "entry", "overlap"])
    if key == "offset":
        e["offset"] = rng.choice([e["offset"] + 64, e["offset"] - 64, e["offset"] + 1, -64,
                                  2 ** 63, 2 ** 64, 0, 1.0, True])
    elif key == "nbytes":
        e["nbytes"] = rng.choice([e["nbytes"] + 4, e["nbytes"] - 4, 0, 2 ** 62, -1, True])
    elif key == "crc32":
        e["crc32"] = rng.choice([e["crc32"] ^ 1, 2 ** 32, -1, 0, "0"])
    elif key == "shape":
        e["shape"] = [values.dim(rng) for _ in range(rng.randint(0, 3))]
    elif key == "dtype":
        e["dtype"] = rng.choice(["int32", "uint8", "int64", "float64", None])
    elif key == "drop":
        del e[rng.choice(sorted(e))]
    elif key == "extra":
        e["extra"] = 1
    elif key == "entry":
        table[name] = values.value(rng)
    else:
        other = table[rng.choice(sorted(table))]
        e["offset"] = other["offset"]
    return f"table {name!r}: {key} lie"


# ----------------------------------------------------------------------- raw bytes

def raw_bytes(raw: bytes, rng) -> bytes:
    """Flip, set, insert, delete or copy bytes, or truncate or extend the file."""
    b = bytearray(raw)
    op = rng.choice(["flip", "set", "truncate", "extend", "insert", "delete", "copy"])
    # Most edits land in the preamble and header, where most decisions are made.
    head = min(len(b), 24 + int.from_bytes(bytes(b[16:24]), "little")) if len(b) >= 24 \
        else len(b)
    pos = rng.randrange(max(1, head if rng.random() < 0.7 else len(b)))
    if op == "flip" and b:
        b[pos] ^= 1 << rng.randrange(8)
    elif op == "set" and b:
        b[pos] = rng.choice([0, 0xFF, 0x7F, 0x80, ord('"'), ord("{"), ord("9"),
                             rng.randrange(256)])
    elif op == "truncate":
        del b[rng.randrange(len(b) + 1):]
    elif op == "extend":
        b += bytes(rng.choice([1, 63, 64, 4096]))
    elif op == "insert":
        b[pos:pos] = bytes([rng.randrange(256)]) * rng.choice([1, 4, 64])
    elif op == "delete":
        del b[pos:pos + rng.choice([1, 4, 64])]
    elif b:
        src = rng.randrange(len(b))
        n = rng.choice([4, 8, 64])
        b[pos:pos + n] = b[src:src + n]
    fix = rng.random() < 0.6
    out = rnnrt_doc.fix_header_crc(bytes(b)) if fix else bytes(b)
    return out


MUTATORS = {
    "attr_set": ("doc", attr_set, 8), "attr_delete": ("doc", attr_delete, 2),
    "attr_add": ("doc", attr_add, 2), "activation": ("doc", activation, 2),
    "param_retarget": ("doc", param_retarget, 3), "param_delete": ("doc", param_delete, 2),
    "param_add": ("doc", param_add, 3), "layer_edit": ("doc", layer_edit, 3),
    "input_edit": ("doc", input_edit, 5), "outputs_edit": ("doc", outputs_edit, 4),
    "rename_tensor": ("doc", rename_tensor, 2), "graph_junk": ("doc", graph_junk, 1),
    "tree_edit": ("doc", tree_edit, 3), "tensor_values": ("doc", tensor_values, 4),
    "tensor_dtype": ("doc", tensor_dtype, 2), "tensor_shape": ("doc", tensor_shape, 3),
    "tensor_table": ("doc", tensor_table, 2), "table_lie": ("table", table_lie, 2),
    "raw_bytes": ("raw", raw_bytes, 5),
}


def pick(rng: random.Random) -> str:
    names = list(MUTATORS)
    return rng.choices(names, weights=[MUTATORS[n][2] for n in names])[0]


def apply(seed_doc: rnnrt_doc.Doc, steps) -> tuple[bytes, list]:
    """The bytes of seed_doc after `steps` [(mutator name, rng seed)], with notes of what
    each did (doc edits first, then table lies at layout, then raw byte edits)."""
    doc = seed_doc.copy()
    notes, table_steps, raw_steps = [], [], []
    for name, seed in steps:
        phase, fn, _ = MUTATORS[name]
        rng = random.Random(seed)
        if phase == "doc":
            notes.append(run(fn, doc, rng))
        elif phase == "table":
            table_steps.append((fn, rng))
        else:
            raw_steps.append((fn, rng))

    def edit(table):
        for fn, rng in table_steps:
            notes.append(run(fn, table, rng))
    raw = rnnrt_doc.encode(doc, edit)
    for fn, rng in raw_steps:
        raw = fn(raw, rng)
        notes.append(f"{fn.__name__}")
    return raw, [n for n in notes if n]


def run(fn, target, rng):
    # An earlier mutation may have left a shape no mutator expects (layers an int): then
    # this one does nothing, as if it did not apply.
    try:
        return fn(target, rng)
    except (Skip, TypeError, AttributeError, KeyError, IndexError, ValueError,
            OverflowError):
        return None
