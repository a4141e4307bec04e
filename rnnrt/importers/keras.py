"""Keras 3 importer: model.to_json() + np.savez(path, *model.get_weights()) -> ir.Graph.

The weights carry no names, only their order, which is the order of model.weights: layer by
layer in the order the config lists them, and inside a layer in creation order (Dense:
kernel, bias; Embedding: embeddings; SimpleRNN / LSTM / GRU: kernel (I, G*H),
recurrent_kernel (H, G*H), bias; Bidirectional: forward layer then backward layer;
TimeDistributed: the wrapped layer's). The config says how many arrays each layer owns,
their shapes follow from the shapes flowing through the graph, and every array is checked.

Keras semantics reproduced here (read from the Keras 3 sources):
  * gates: LSTM kernel columns are i, f, c, o (IR: i, o, f, c); GRU z, r, h (same as IR).
    GRU reset_after=True has bias (2, 3H) = input bias, recurrent bias and applies the
    reset gate after the recurrent matmul (IR linear_before_reset); reset_after=False has
    one bias (3H,) and applies it before.
  * masks (Masking, Embedding(mask_zero=True)) travel with tensors through every layer that
    supports masking; a Functional config instead records them as NotEqual / Any operations
    passed as mask=, which are resolved onto the same IR masks. A masked step carries the state; its output is the previous output
    (the carried h) or zero when zero_output_for_mask, which Bidirectional forces to
    return_sequences on both of its layers. A sequence-to-vector output is the output of
    the last processed step: the final state, or zero when that step is masked and
    zero_output_for_mask is set.
  * go_backwards: outputs are in processing order (IR output_order "step"); the mask passed
    on stays in input time order. Bidirectional flips the backward outputs back to time
    order and merges by concat / sum / mul / ave (or returns both when merge_mode is None).
  * return_state: LSTM states are [h, c], GRU / SimpleRNN [h]; Bidirectional returns the
    forward states then the backward ones.
  * initial_state (keyword, or the second positional argument: layer(x, states)) is a
    tensor or list of (batch, H) tensors: [h, c] for LSTM, [h] for GRU / SimpleRNN. Each
    becomes the layer's flat "bdh" h0 / c0, whatever computes it: another layer's final
    state (an encoder's h, c), a Dense, or a model input of shape (None, H). Keras fills in
    a layer's mask argument from its input only when the layer is called on one tensor, so
    with initial_state and no mask= the layer runs unmasked (its sequence output still
    carries the mask on). With mask= given, Keras's carried output starts from zero, not
    from the initial state; return_sequences=True then needs zero_output_for_mask=True, and
    a sequence-to-vector output differs only for rows with every step masked (noted in the
    graph's metadata). Bidirectional with initial_state is refused: the IR has no way to
    join the forward and backward halves into one (batch, 2H) state.
  * Dropout-like layers and the dropout / recurrent_dropout options do nothing at inference.
  * stateful=True is accepted: each run() starts from zero state, as Keras does after
    reset_states(); Model.stream() is rnnrt's way to carry state across calls. unroll
    changes nothing numerically.
  * graph inputs keep a dynamic time axis even when Keras fixed it, each its own (encoder
    and decoder inputs may differ in length); token-id inputs (those read by an Embedding)
    are int64 (batch, time), vector inputs (None, F) float32 (batch, F), the others float32
    (batch, time, F).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np

from .. import ir
from ..errors import FormatError, UnsupportedModelError
from .sources import read_json_object, read_npz

# Keras activation name -> (IR name, alpha, beta); None means the IR default parameters.
# Each entry reproduces the Keras 3 formula exactly (see keras/src/activations).
_ACTIVATIONS = {
    "linear": ("linear", None, None),
    "relu": ("relu", None, None),
    "sigmoid": ("sigmoid", None, None),
    "tanh": ("tanh", None, None),
    "softmax": ("softmax", None, None),
    "log_softmax": ("log_softmax", None, None),
    "elu": ("elu", 1.0, None),
    "celu": ("elu", 1.0, None),                   # celu(alpha=1) == elu(alpha=1)
    "selu": ("selu", None, None),                 # same constants as the IR default
    "softplus": ("softplus", None, None),
    "softsign": ("softsign", None, None),
    "silu": ("silu", None, None),
    "swish": ("silu", None, None),
    "gelu": ("gelu", None, None),                 # Keras default approximate=False: erf form
    "exponential": ("exponential", None, None),
    "hard_sigmoid": ("hard_sigmoid", 1.0 / 6.0, 0.5),   # relu6(x + 3) / 6
    "hard_silu": ("hard_silu", 1.0 / 6.0, 0.5),
    "hard_swish": ("hard_silu", 1.0 / 6.0, 0.5),
    "leaky_relu": ("leaky_relu", 0.2, None),      # Keras default negative_slope=0.2
    "relu6": ("relu6", None, None),
    "mish": ("mish", None, None),
    "log_sigmoid": ("log_sigmoid", None, None),
    "tanh_shrink": ("tanh_shrink", None, None),
}

_RECURRENT = ("SimpleRNN", "LSTM", "GRU")
_CELLS = {"SimpleRNNCell": "SimpleRNN", "LSTMCell": "LSTM", "GRUCell": "GRU"}
_IR_CELL = {"SimpleRNN": "rnn", "LSTM": "lstm", "GRU": "gru"}
_GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}
# Operations that Keras 3 records in a Functional graph to compute masks: Masking's
# any(x != value, axis=-1) and Embedding(mask_zero=True)'s ids != 0. They are followed
# symbolically and resolved onto the IR Masking / Embedding layer that computes the same mask.
_MASK_OPS = ("NotEqual", "Any")
# Layers that are the identity at inference and pass the mask on.
_NO_OPS = ("Dropout", "SpatialDropout1D", "GaussianDropout", "GaussianNoise", "AlphaDropout",
           "ActivityRegularization", "Identity")
_ACTIVATION_LAYERS = ("Activation", "ReLU", "LeakyReLU", "ELU", "Softmax")
SUPPORTED_LAYERS = tuple(sorted(
    ("InputLayer", "Dense", "Embedding", "Masking", "TimeDistributed", "Bidirectional", "RNN")
    + _RECURRENT + _NO_OPS + _ACTIVATION_LAYERS))


# ----------------------------------------------------------------------------- entry point

def load_keras(weights_npz_path, config) -> ir.Graph:
    """Build the IR of a Keras 3 Sequential or Functional model.

    weights_npz_path: file written by np.savez(path, *model.get_weights()).
    config: model.to_json() as a path to a file, a JSON string, or the parsed dict."""
    model = _read_config(config)
    arrays = _read_weights(weights_npz_path)
    calls, input_layers, output_refs, layer_order = _model_graph(model)
    for layer in layer_order:
        _check_supported(layer)
    offsets = _weight_offsets(layer_order, arrays)
    builder = _Builder(arrays, offsets)
    builder.declare_inputs(input_layers, calls)
    builder.run(calls)
    outputs = [builder.tensor(ref).name for ref in output_refs]
    metadata = {"source": "keras", "model": model.get("config", {}).get("name")}
    if builder.notes:
        metadata["notes"] = builder.notes
    return ir.Graph(builder.inputs, builder.layers, outputs, metadata).validate()


# ----------------------------------------------------------------------------- reading

def _read_config(config) -> dict:
    return read_json_object(config, "the Keras config (model.to_json())")


def _read_weights(path) -> list:
    """The arrays of np.savez(path, *weights), in order (arr_0, arr_1, ...)."""
    files = read_npz(path, "the weights file")
    index = {}
    for key in files:
        m = re.fullmatch(r"arr_(\d+)", key)
        if m is None:
            raise FormatError(
                f"weights file {str(path)!r} holds an array named {key!r}; expected the "
                "unnamed arrays of np.savez(path, *model.get_weights()) (arr_0, arr_1, ...)")
        index[int(m.group(1))] = files[key]
    if sorted(index) != list(range(len(index))):
        raise FormatError(f"weights file {str(path)!r} has gaps in arr_0..arr_{len(index) - 1}")
    return [index[i] for i in range(len(index))]


@dataclass
class _Call:
    """One application of a layer: config, inbound tensor refs, kwargs, and its key."""
    layer: dict            # {"class_name", "config", ...}
    name: str              # layer name
    node: int              # node index (a shared layer is called more than once)
    args: list             # refs (layer, node, index) of the positional tensor inputs
    kwargs: dict
    raw_args: tuple = ()   # the positional arguments as the config has them (op constants)


def _class(layer: dict) -> str:
    return layer.get("class_name", "?")


def _model_graph(model: dict):
    """Normalise a Sequential or Functional config into calls, inputs, outputs and the
    order of weight-owning layers."""
    kind = _class(model)
    cfg = model.get("config")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("layers"), list):
        raise FormatError(f"the Keras config has no layer list (class {kind!r}); expected "
                          "model.to_json() of a Sequential or Functional model")
    if kind == "Sequential":
        return _sequential_graph(cfg)
    if kind in ("Functional", "Model"):
        return _functional_graph(cfg)
    raise UnsupportedModelError(
        f"Keras model class {kind!r} is not supported; supported: Sequential, Functional")


def _sequential_graph(cfg):
    layers = list(cfg["layers"])
    if layers and _class(layers[0]) == "InputLayer":
        input_layer = layers.pop(0)
    else:
        shape = cfg.get("build_input_shape")
        if shape is None and layers:
            c = layers[0].get("config", {})
            shape = c.get("batch_shape") or c.get("batch_input_shape") or \
                (layers[0].get("build_config") or {}).get("input_shape")
        if shape is None:
            raise FormatError("Sequential config has no InputLayer and no input shape")
        input_layer = {"class_name": "InputLayer",
                       "config": {"name": "input", "batch_shape": shape}}
    in_name = input_layer["config"].get("name", "input")
    calls, prev = [], (in_name, 0, 0)
    for layer in layers:
        name = layer.get("config", {}).get("name") or f"layer_{len(calls)}"
        calls.append(_Call(layer, name, 0, [prev], {}))
        prev = (name, 0, 0)
    return calls, [input_layer], [prev], layers


def _functional_graph(cfg):
    calls, input_layers = [], {}
    for layer in cfg["layers"]:
        name = layer.get("name") or layer.get("config", {}).get("name")
        if _class(layer) == "InputLayer":
            input_layers[name] = layer
            continue
        for node, inbound in enumerate(layer.get("inbound_nodes") or []):
            args, kwargs = _parse_node(name, inbound)
            calls.append(_Call(layer, name, node, args, kwargs,
                               tuple(inbound.get("args", ()))))
    inputs = []
    for ref in _ref_list(cfg.get("input_layers")):
        if ref[0] not in input_layers:
            raise FormatError(f"model input {ref[0]!r} is not an InputLayer of the config")
        inputs.append(input_layers[ref[0]])
    outputs = _ref_list(cfg.get("output_layers"))
    order = [l for l in cfg["layers"] if _class(l) != "InputLayer"]
    return _topological(calls, set(input_layers)), inputs, outputs, order


def _ref_list(refs):
    """input_layers / output_layers: [name, node, index] or a list of those."""
    if not refs:
        raise FormatError("Functional config lacks input_layers or output_layers")
    if isinstance(refs[0], str):
        refs = [refs]
    return [tuple(r[:3]) for r in refs]


def _parse_node(layer_name, inbound):
    """Keras 3 node: {"args": [...], "kwargs": {...}} with __keras_tensor__ entries."""
    if not isinstance(inbound, dict):
        raise UnsupportedModelError(
            f"layer {layer_name!r}: this config uses the Keras 2 node format; re-export the "
            "model with Keras 3 (model.to_json())")
    args = _tensor_refs(inbound.get("args", []))
    kwargs = {}
    for k, v in (inbound.get("kwargs") or {}).items():
        refs = _tensor_refs(v)
        kwargs[k] = refs if refs else v
    return args, kwargs


def _tensor_refs(obj) -> list:
    """The (layer, node, index) refs of the __keras_tensor__ entries in obj, flattened."""
    if isinstance(obj, dict) and obj.get("class_name") == "__keras_tensor__":
        return [tuple(obj["config"]["keras_history"][:3])]
    if isinstance(obj, (list, tuple)):
        return [r for o in obj for r in _tensor_refs(o)]
    return []


def _topological(calls, ready_layers):
    """Order calls so that every call comes after the calls producing its inputs."""
    done = {(name, 0) for name in ready_layers}
    ordered, pending = [], list(calls)
    while pending:
        progress = False
        for c in list(pending):
            needs = list(c.args) + [r for v in c.kwargs.values() if isinstance(v, list)
                                    for r in v if isinstance(r, tuple)]
            if all((r[0], r[1]) in done for r in needs):
                ordered.append(c)
                done.add((c.name, c.node))
                pending.remove(c)
                progress = True
        if not progress:
            raise FormatError(f"Functional config has inputs that no layer produces: "
                              f"{sorted({c.name for c in pending})}")
    return ordered


# ----------------------------------------------------------------------------- weights

def _check_supported(layer):
    """Refuse an unknown layer (or wrapped layer / cell) by name, before counting weights."""
    cls = _class(layer)
    name = layer.get("name") or layer.get("config", {}).get("name")
    if cls in _MASK_OPS:
        return
    if cls not in SUPPORTED_LAYERS:
        raise UnsupportedModelError(
            f"Keras layer {cls!r} (layer {name!r}) is not supported; supported layers: "
            f"{', '.join(SUPPORTED_LAYERS)}")
    cfg = layer.get("config", {})
    if cls == "TimeDistributed":
        inner = _class(cfg.get("layer") or {})
        if inner not in ("Dense",) + _ACTIVATION_LAYERS + _NO_OPS:
            raise UnsupportedModelError(
                f"TimeDistributed layer {name!r} wraps {inner!r}; supported inside "
                f"TimeDistributed: Dense, {', '.join(_ACTIVATION_LAYERS + _NO_OPS)}")
    elif cls == "Bidirectional":
        for sub in _bidirectional_layers(layer):
            if _class(sub) not in _RECURRENT + ("RNN",):
                raise UnsupportedModelError(
                    f"Bidirectional layer {name!r} wraps {_class(sub)!r}; supported: "
                    "SimpleRNN, LSTM, GRU, RNN")
            _recurrent_config(sub)
    elif cls == "RNN":
        _recurrent_config(layer)


def _weight_count(layer: dict) -> int:
    """How many arrays of get_weights() a layer owns, from its config alone."""
    cls, cfg = _class(layer), layer.get("config", {})
    if cls == "Dense":
        return 1 + bool(cfg.get("use_bias", True))
    if cls == "Embedding":
        return 1
    if cls in _RECURRENT or cls == "RNN":
        cls, cfg = _recurrent_config(layer)
        return 2 + bool(cfg.get("use_bias", True))
    if cls == "Bidirectional":
        fwd, bwd = _bidirectional_layers(layer)
        return _weight_count(fwd) + _weight_count(bwd)
    if cls == "TimeDistributed":
        return _weight_count(cfg.get("layer", {}))
    return 0


def _weight_offsets(layers, arrays):
    offsets, n, owners = {}, 0, []
    for layer in layers:
        name = layer.get("name") or layer.get("config", {}).get("name")
        k = _weight_count(layer)
        offsets[name] = n
        n += k
        if k:
            owners.append(f"{name}: {k}")
    if n != len(arrays):
        raise FormatError(
            f"the weights file holds {len(arrays)} arrays but the config implies {n} "
            f"({', '.join(owners) or 'none'}); save them with "
            "np.savez(path, *model.get_weights())")
    return offsets


# ----------------------------------------------------------------------------- helpers

def _activation(value, where) -> ir.Act:
    if value is None:
        return ir.Act.of("linear")
    if isinstance(value, dict):   # a registered custom function or a layer used as one
        value = value["config"] if isinstance(value.get("config"), str) else _class(value)
    if not isinstance(value, str) or value not in _ACTIVATIONS:
        raise UnsupportedModelError(
            f"{where}: activation {value!r} has no exact rnnrt equivalent; supported: "
            f"{sorted(_ACTIVATIONS)}")
    name, alpha, beta = _ACTIVATIONS[value]
    return ir.Act.of(name, alpha, beta)


def _recurrent_config(layer):
    """(class, merged config) of SimpleRNN / LSTM / GRU, or RNN(SimpleRNNCell/LSTMCell/GRUCell)."""
    cls, cfg = _class(layer), dict(layer.get("config", {}))
    if cls == "RNN":
        cell = cfg.get("cell") or {}
        if _class(cell) not in _CELLS:
            raise UnsupportedModelError(
                f"RNN layer {cfg.get('name')!r}: cell {_class(cell)!r} is not supported; "
                f"supported cells: {sorted(_CELLS)}")
        merged = dict(cell.get("config", {}))
        merged.update({k: v for k, v in cfg.items() if k != "cell"})
        return _CELLS[_class(cell)], merged
    return cls, cfg


def _bidirectional_layers(layer):
    cfg = layer.get("config", {})
    fwd = cfg.get("layer")
    bwd = cfg.get("backward_layer")
    if bwd is None and isinstance(fwd, dict):
        bwd = json.loads(json.dumps(fwd))
        bwd.setdefault("config", {})["go_backwards"] = not fwd.get("config", {}).get(
            "go_backwards", False)
    if not isinstance(fwd, dict) or not isinstance(bwd, dict):
        raise FormatError(f"Bidirectional layer {cfg.get('name')!r} has no wrapped layer")
    return fwd, bwd


@dataclass
class _Tensor:
    name: str           # IR tensor name
    shape: tuple        # (None, T, F) or (None, F); None = dynamic
    mask: str | None    # IR name of the (B, T) mask travelling with it
    dtype: str = "float32"
    expr: tuple | None = None   # a mask computation not yet in the IR (see _MASK_OPS)


# ----------------------------------------------------------------------------- builder

class _Builder:
    def __init__(self, arrays, offsets):
        self.arrays = arrays
        self.offsets = offsets
        self.layers = []
        self.inputs = []
        self.notes = []
        self.tensors = {}        # (layer name, node, index) -> _Tensor
        self.tensor_names = set()
        self.layer_names = set()

    # ----- bookkeeping

    def tensor(self, ref) -> _Tensor:
        key = tuple(ref)
        if key not in self.tensors:
            raise FormatError(f"the config refers to tensor {list(key)}, which no layer "
                              "produces")
        return self.tensors[key]

    @staticmethod
    def _unique(base, used) -> str:
        name, k = base, 1
        while name in used:
            k += 1
            name = f"{base}_{k}"
        used.add(name)
        return name

    def out_name(self, call, suffix=""):
        """A fresh IR tensor name: the Keras layer name (":node" for a shared layer's later
        calls) plus a suffix for secondary outputs."""
        base = call.name if call.node == 0 else f"{call.name}:{call.node}"
        return self._unique(base + suffix, self.tensor_names)

    def layer_name(self, call, suffix=""):
        base = call.name if call.node == 0 else f"{call.name}:{call.node}"
        return self._unique(base + suffix, self.layer_names)

    def add(self, layer):
        self.layers.append(layer)
        return layer

    def weights(self, call, expected):
        """Take a layer's arrays in order and check each against (label, shape)."""
        start = self.offsets[call.name]
        got = self.arrays[start:start + len(expected)]
        for (label, shape), arr in zip(expected, got):
            if tuple(arr.shape) != tuple(shape):
                raise FormatError(
                    f"{_class(call.layer)} layer {call.name!r}: weight {label} should have "
                    f"shape {tuple(shape)}, the weights file has {tuple(arr.shape)} "
                    f"(array arr_{start + expected.index((label, shape))})")
        return [np.asarray(a, dtype=np.float32) for a in got]

    # ----- inputs

    def declare_inputs(self, input_layers, calls):
        feeds_embedding = {ref[0] for c in calls if _class(c.layer) == "Embedding"
                           for ref in c.args}
        for layer in input_layers:
            cfg = layer.get("config", {})
            name = cfg.get("name") or layer.get("name") or "input"
            shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
            if not shape or len(shape) not in (2, 3):
                raise UnsupportedModelError(
                    f"input {name!r}: shape {shape} is not supported; expected (batch, time, "
                    "features) or (batch, time) token ids for an Embedding")
            # Batch and time stay dynamic even when Keras fixed them (a fixed-T Keras model
            # runs any length in rnnrt); the feature size is fixed.
            if name in feeds_embedding:
                dims = (None,) * len(shape)                   # (batch, time) token ids
            else:
                dims = (None,) * (len(shape) - 1) + (shape[-1],)
            dtype = "int64" if name in feeds_embedding else "float32"
            self.tensor_names.add(name)
            self.inputs.append(ir.TensorInfo(name, dims, dtype))
            self.tensors[(name, 0, 0)] = _Tensor(name, dims, None, dtype)

    # ----- mask computations

    def mask_op(self, call):
        cls = _class(call.layer)
        if len(call.args) != 1:
            raise UnsupportedModelError(f"{cls} operation {call.name!r} on {len(call.args)} "
                                        "tensors is not supported")
        src = self.tensor(call.args[0])
        if cls == "NotEqual":
            consts = [a for a in call.raw_args if isinstance(a, (int, float))
                      and not isinstance(a, bool)]
            if len(call.raw_args) != 2 or len(consts) != 1 or src.expr is not None:
                raise UnsupportedModelError(
                    f"NotEqual operation {call.name!r}: only tensor != constant (a Keras mask) "
                    "is supported")
            return _Tensor(src.name, src.shape, None, src.dtype,
                           ("not_equal", src, float(consts[0])))
        cfg = call.layer.get("config", {})
        if src.expr is None or src.expr[0] != "not_equal" or cfg.get("keepdims") or \
                cfg.get("axis") not in (-1, len(src.shape) - 1):
            raise UnsupportedModelError(
                f"Any operation {call.name!r}: only any(x != value, axis=-1) (the mask of a "
                "Masking layer) is supported")
        return _Tensor(src.name, src.shape[:-1], None, "bool", ("any",) + src.expr[1:])

    def resolve_mask(self, call, m: _Tensor) -> str:
        """The IR mask tensor equal to a recorded Keras mask computation."""
        if m.expr is None:
            raise UnsupportedModelError(
                f"layer {call.name!r}: its mask is not a Masking or Embedding mask")
        kind, src, value = m.expr
        if kind == "not_equal" and src.dtype == "int64" and len(src.shape) == 2 and value == 0:
            # ids != 0: the mask of an Embedding reading these ids.
            for layer in self.layers:
                if layer.kind == "Embedding" and layer.ids == src.name:
                    if layer.mask is None:
                        layer.mask = self._unique(layer.out + "/mask", self.tensor_names)
                    return layer.mask
        if kind == "any" and src.dtype == "float32" and len(src.shape) == 3:
            for layer in self.layers:
                if layer.kind == "Masking" and layer.x == src.name and \
                        layer.mask_value == value:
                    return layer.mask
            masking = ir.Masking(name=self._unique(call.name + "/mask", self.layer_names),
                                 x=src.name,
                                 out=self._unique(src.name + "/masked", self.tensor_names),
                                 mask=self._unique(src.name + "/mask", self.tensor_names),
                                 mask_value=value)
            self.add(masking)
            return masking.mask
        raise UnsupportedModelError(
            f"layer {call.name!r}: mask computation {kind}(..., {value}) on {src.name!r} is "
            "not supported; supported: a Masking layer's mask, an Embedding's ids != 0")

    # ----- layers

    def run(self, calls):
        for call in calls:
            cls = _class(call.layer)
            if cls in _MASK_OPS:
                self.tensors[(call.name, call.node, 0)] = self.mask_op(call)
                continue
            recurrent = cls in _RECURRENT + ("RNN", "Bidirectional")
            args, state_refs = self._split_state_args(call) if recurrent else (call.args, [])
            if len(args) != 1:
                raise UnsupportedModelError(
                    f"{cls} layer {call.name!r} takes {len(args)} tensor inputs; rnnrt "
                    "supports layers called on one tensor")
            x = self.tensor(args[0])
            explicit_mask = None
            for k, v in call.kwargs.items():
                if not (isinstance(v, list) and v and isinstance(v[0], tuple)):
                    continue
                if k == "mask" and len(v) == 1:
                    explicit_mask = self.tensor(v[0])
                elif k == "initial_state" and recurrent and not state_refs:
                    state_refs = v
                else:
                    raise UnsupportedModelError(
                        f"{cls} layer {call.name!r}: passing {k}= as a tensor is not "
                        "supported")
            states = [self.tensor(r) for r in state_refs]
            passed_on = x.mask
            if explicit_mask is not None:
                # An explicit mask replaces the one travelling with the input.
                passed_on = self.resolve_mask(call, explicit_mask)
                x = _Tensor(x.name, x.shape, passed_on, x.dtype)
            elif states:
                # Keras 3 fills in a layer's mask argument from its input only when the
                # layer is called on one tensor: with initial_state it runs unmasked, though
                # its sequence output still carries the input's mask.
                x = _Tensor(x.name, x.shape, None, x.dtype)
            for t in [x] + states:
                if t.expr is not None:
                    raise UnsupportedModelError(f"{cls} layer {call.name!r} reads a mask "
                                                "computation as data; not supported")
            if x.dtype != "float32" and cls != "Embedding":
                raise UnsupportedModelError(
                    f"{cls} layer {call.name!r} reads integer token ids; only an Embedding "
                    "may read them")
            if recurrent:
                outs = self.handler(cls)(call, x, states)
                outs = [_Tensor(t.name, t.shape, passed_on if len(t.shape) == 3 else None)
                        for t in outs]
            else:
                outs = self.handler(cls)(call, x)
            for i, t in enumerate(outs):
                self.tensors[(call.name, call.node, i)] = t

    @staticmethod
    def _split_state_args(call):
        """(sequence refs, initial state refs) of a recurrent layer's positional arguments:
        Keras 3 RNN layers are called as layer(sequences, initial_state=None, mask=None)."""
        raw = call.raw_args
        if len(raw) <= 1:
            return call.args, []
        if len(raw) > 2 or len(_tensor_refs(raw[0])) != 1:
            raise UnsupportedModelError(
                f"{_class(call.layer)} layer {call.name!r}: only (sequences, initial_state) "
                "may be passed positionally; pass mask= by keyword")
        return _tensor_refs(raw[0]), _tensor_refs(raw[1])

    def handler(self, cls):
        """The method emitting a layer class (unsupported ones were refused up front)."""
        if cls in _RECURRENT or cls == "RNN":
            return self.layer_recurrent
        if cls in _NO_OPS:
            return self.layer_no_op
        if cls in _ACTIVATION_LAYERS:
            return self.layer_activation
        return getattr(self, "layer_" + cls)

    def layer_no_op(self, call, x):
        return [x]

    def layer_Dense(self, call, x):
        cfg = call.layer.get("config", {})
        self._check_plain(call, cfg)
        units = int(cfg["units"])
        F = x.shape[-1]
        if F is None:
            raise UnsupportedModelError(f"Dense layer {call.name!r}: input features unknown")
        use_bias = bool(cfg.get("use_bias", True))
        expected = [("kernel", (F, units))] + ([("bias", (units,))] if use_bias else [])
        w = self.weights(call, expected)
        act = _activation(cfg.get("activation", "linear"), f"Dense layer {call.name!r}")
        out = self.out_name(call)
        self.add(ir.Dense(name=self.layer_name(call), x=x.name, out=out,
                          kernel=w[0], bias=w[1] if use_bias else None, activation=act))
        return [_Tensor(out, x.shape[:-1] + (units,), x.mask)]

    def layer_TimeDistributed(self, call, x):
        inner = call.layer.get("config", {}).get("layer") or {}
        cls = _class(inner)
        if len(x.shape) != 3:
            raise UnsupportedModelError(
                f"TimeDistributed layer {call.name!r} needs a (batch, time, features) input")
        # Dense, activations and no-ops act on the last axis, so wrapping changes nothing.
        wrapped = _Call(inner, call.name, call.node, call.args, call.kwargs)
        if cls == "Dense":
            return self.layer_Dense(wrapped, x)
        if cls in _NO_OPS:
            return [x]
        return self.layer_activation(wrapped, x)     # checked by _check_supported

    def layer_activation(self, call, x):
        cls, cfg = _class(call.layer), call.layer.get("config", {})
        where = f"{cls} layer {call.name!r}"
        if cls == "Activation":
            act = _activation(cfg.get("activation"), where)
        elif cls == "ReLU":
            act = self._relu(cfg, where)
        elif cls == "LeakyReLU":
            act = ir.Act.of("leaky_relu", float(cfg.get("negative_slope",
                                                        cfg.get("alpha", 0.3))))
        elif cls == "ELU":
            act = ir.Act.of("elu", float(cfg.get("alpha", 1.0)))
        else:  # Softmax
            axis = cfg.get("axis", -1)
            axes = axis if isinstance(axis, list) else [axis]
            if axes not in ([-1], [len(x.shape) - 1]):
                raise UnsupportedModelError(f"{where}: softmax over axis {axis} is not "
                                            "supported; only the last axis")
            if x.mask is not None:
                raise UnsupportedModelError(f"{where}: a masked softmax is not supported")
            act = ir.Act.of("softmax")
        out = self.out_name(call)
        self.add(ir.Activation(name=self.layer_name(call), x=x.name, out=out,
                               activation=act))
        return [_Tensor(out, x.shape, x.mask)]

    @staticmethod
    def _relu(cfg, where):
        slope = float(cfg.get("negative_slope") or 0.0)
        max_value = cfg.get("max_value")
        threshold = float(cfg.get("threshold") or 0.0)
        if max_value is None and threshold == 0.0:
            return ir.Act.of("leaky_relu", slope) if slope else ir.Act.of("relu")
        if slope == 0.0 and threshold == 0.0 and float(max_value) == 6.0:
            return ir.Act.of("relu6")
        if slope == 0.0 and max_value is None:
            return ir.Act.of("thresholded_relu", threshold)
        raise UnsupportedModelError(
            f"{where}: ReLU(negative_slope={slope}, max_value={max_value}, "
            f"threshold={threshold}) has no exact rnnrt equivalent; supported: plain, "
            "max_value=6, negative_slope alone, threshold alone")

    def layer_Embedding(self, call, x):
        cfg = call.layer.get("config", {})
        self._check_plain(call, cfg)
        if x.dtype != "int64" or len(x.shape) != 2:
            raise UnsupportedModelError(
                f"Embedding layer {call.name!r} must read a (batch, time) model input of "
                "token ids directly")
        V, E = int(cfg["input_dim"]), int(cfg["output_dim"])
        (table,) = self.weights(call, [("embeddings", (V, E))])
        out = self.out_name(call)
        mask = self.out_name(call, "/mask") if cfg.get("mask_zero") else None
        self.add(ir.Embedding(name=self.layer_name(call), ids=x.name, out=out,
                              table=table, mask=mask))
        return [_Tensor(out, x.shape + (E,), mask)]

    def layer_Masking(self, call, x):
        cfg = call.layer.get("config", {})
        if len(x.shape) != 3:
            raise UnsupportedModelError(
                f"Masking layer {call.name!r} needs a (batch, time, features) input")
        out = self.out_name(call)
        mask = self.out_name(call, "/mask")
        self.add(ir.Masking(name=self.layer_name(call), x=x.name, out=out,
                            mask=mask, mask_value=float(cfg.get("mask_value", 0.0))))
        return [_Tensor(out, x.shape, mask)]

    @staticmethod
    def _check_plain(call, cfg):
        for key in ("lora_rank", "quantization_config"):
            if cfg.get(key):
                raise UnsupportedModelError(
                    f"{_class(call.layer)} layer {call.name!r}: {key}={cfg[key]!r} is not "
                    "supported")

    # ----- recurrent layers

    def _cell(self, layer, weights, where):
        """IR parameters of one direction: W, R, Wb, Rb (each without the D axis), the
        activations and linear_before_reset."""
        cls, cfg = _recurrent_config(layer)
        H, G = int(cfg["units"]), _GATES[cls]
        kernel, recurrent = weights[0], weights[1]
        bias = weights[2] if len(weights) > 2 else None
        W, R = kernel.T, recurrent.T                        # (G*H, I), (G*H, H)
        Wb, Rb = np.zeros(G * H, np.float32), np.zeros(G * H, np.float32)
        lbr = False
        if cls == "LSTM":
            # Keras columns i, f, c, o -> IR rows i, o, f, c.
            order = [0, 3, 1, 2]
            W = np.concatenate([W[k * H:(k + 1) * H] for k in order])
            R = np.concatenate([R[k * H:(k + 1) * H] for k in order])
            if bias is not None:
                Wb = np.concatenate([bias[k * H:(k + 1) * H] for k in order])
        elif cls == "GRU":
            lbr = bool(cfg.get("reset_after", True))
            if bias is not None:
                if lbr:
                    Wb, Rb = bias[0], bias[1]
                else:
                    Wb = bias
        elif bias is not None:
            Wb = bias
        act = _activation(cfg.get("activation", "tanh"), where)
        if act.name in ir.ROW_WISE:
            raise UnsupportedModelError(f"{where}: {act.name} cannot be a cell activation")
        if cls == "SimpleRNN":
            acts = [act]
        else:
            ract = _activation(cfg.get("recurrent_activation", "sigmoid"), where)
            if ract.name in ir.ROW_WISE:
                raise UnsupportedModelError(f"{where}: {ract.name} cannot be a cell activation")
            acts = [ract, act] + ([act] if cls == "LSTM" else [])
        return W, R, Wb, Rb, acts, lbr

    @staticmethod
    def _expected(layer, I):
        cls, cfg = _recurrent_config(layer)
        H, G = int(cfg["units"]), _GATES[cls]
        exp = [("kernel", (I, G * H)), ("recurrent_kernel", (H, G * H))]
        if cfg.get("use_bias", True):
            if cls == "GRU" and cfg.get("reset_after", True):
                exp.append(("bias", (2, G * H)))
            else:
                exp.append(("bias", (G * H,)))
        return exp

    def _sequence_input(self, call, x):
        if len(x.shape) != 3 or x.shape[-1] is None:
            raise UnsupportedModelError(
                f"{_class(call.layer)} layer {call.name!r} needs a (batch, time, features) "
                f"input with known features, got shape {x.shape}")
        return x.shape[-1]

    def layer_recurrent(self, call, x, initial_state=()):
        cls, cfg = _recurrent_config(call.layer)
        where = f"{_class(call.layer)} layer {call.name!r}"
        I, H = self._sequence_input(call, x), int(cfg["units"])
        self._flags(call, cfg)
        W, R, Wb, Rb, acts, lbr = self._cell(
            call.layer, self.weights(call, self._expected(call.layer, I)), where)
        backwards = bool(cfg.get("go_backwards", False))
        seqs, state = bool(cfg.get("return_sequences", False)), bool(cfg.get("return_state"))
        zero_out = bool(cfg.get("zero_output_for_mask", False))
        rec = ir.Recurrent(
            name=self.layer_name(call), cell=_IR_CELL[cls],
            direction="reverse" if backwards else "forward", hidden_size=H, input_size=I,
            x=x.name, W=W[None], R=R[None], Wb=Wb[None], Rb=Rb[None], activations=[acts],
            linear_before_reset=lbr, output_order="step" if backwards else "time",
            masked_output="zero" if zero_out else "carry", mask=x.mask)
        if initial_state:
            self._initial_state(call, rec, cls, initial_state, seqs)
        self.add(rec)
        if seqs:
            rec.y = self.out_name(call)
            outs = [_Tensor(rec.y, (None, x.shape[1], H), x.mask)]
        elif zero_out and x.mask is not None:
            # Keras returns the output of the last processed step, zero if it is masked.
            rec.y = self.out_name(call, "/y")
            out = self.out_name(call)
            self.add(ir.TimeStep(name=self.layer_name(call, "/last"), x=rec.y, out=out,
                                 index=-1))
            outs = [_Tensor(out, (None, H), None)]
        else:
            # The output of the last processed step is the final state (carried over
            # masked steps, and zero-initialised).
            rec.h_last = self.out_name(call)
            outs = [_Tensor(rec.h_last, (None, H), None)]
        if state:
            if rec.h_last is None:
                rec.h_last = self.out_name(call, "/h")
            outs.append(_Tensor(rec.h_last, (None, H), None))
            if cls == "LSTM":
                rec.c_last = self.out_name(call, "/c")
                outs.append(_Tensor(rec.c_last, (None, H), None))
        return outs

    def _initial_state(self, call, rec, cls, states, seqs):
        """Wire Keras's initial_state list ([h, c] for LSTM, [h] otherwise; each (batch, H))
        as the layer's flat "bdh" h0 / c0."""
        where = f"{_class(call.layer)} layer {call.name!r}"
        names = ["h", "c"] if cls == "LSTM" else ["h"]
        if len(states) != len(names):
            raise FormatError(
                f"{where}: initial_state has {len(states)} tensor(s); {cls} takes "
                f"{len(names)}: [{', '.join(names)}]")
        for label, t in zip(names, states):
            if len(t.shape) != 2 or t.shape[-1] != rec.hidden_size or t.dtype != "float32":
                raise FormatError(
                    f"{where}: initial state {label} {t.name!r} has shape {t.shape} "
                    f"({t.dtype}); expected (batch, {rec.hidden_size}) float32")
        if rec.mask is not None and rec.masked_output == "carry":
            # Keras's carried output starts from zero, not from the initial state: it is
            # zero at masked steps before the first unmasked one, where the IR carries h0.
            if seqs:
                raise UnsupportedModelError(
                    f"{where}: mask= with initial_state and return_sequences=True is "
                    "supported only with zero_output_for_mask=True (Keras outputs zeros, not "
                    "the initial state, at masked steps before the first unmasked one)")
            self.notes.append(
                f"layer {call.name!r}: for a row whose steps are all masked, Keras outputs "
                "zeros and rnnrt the initial state (the returned states agree)")
        rec.state_layout = "bdh"
        rec.h0 = states[0].name
        if cls == "LSTM":
            rec.c0 = states[1].name

    def _flags(self, call, cfg):
        if cfg.get("stateful"):
            self.notes.append(f"layer {call.name!r} is stateful in Keras; rnnrt starts every "
                              "run() from zero state (use Model.stream() to carry state)")

    def layer_Bidirectional(self, call, x, initial_state=()):
        cfg = call.layer.get("config", {})
        where = f"Bidirectional layer {call.name!r}"
        if initial_state:
            # Keras gives the first half of the list to the forward layer, the second to the
            # backward one; the IR's flat h0 of a bidirectional layer is one (B, 2H) tensor,
            # and there is no IR layer to concatenate two (B, H) states into it.
            raise UnsupportedModelError(
                f"{where}: initial_state on a Bidirectional layer is not supported; give the "
                "initial state to single-direction layers (SimpleRNN, LSTM, GRU, RNN)")
        fwd, bwd = _bidirectional_layers(call.layer)
        (fcls, fcfg), (bcls, bcfg) = _recurrent_config(fwd), _recurrent_config(bwd)
        if fcfg.get("go_backwards") or not bcfg.get("go_backwards"):
            raise UnsupportedModelError(
                f"{where}: only a forward layer with a go_backwards backward layer is supported")
        if fcls != bcls or fcfg["units"] != bcfg["units"] or (
                fcls == "GRU" and fcfg.get("reset_after", True) != bcfg.get("reset_after", True)):
            raise UnsupportedModelError(
                f"{where}: forward and backward layers differ in type, units or reset_after")
        merge = cfg.get("merge_mode", "concat")
        if merge not in ir.MERGE_MODES + (None,):
            raise UnsupportedModelError(f"{where}: merge_mode {merge!r} is not supported")
        I, H = self._sequence_input(call, x), int(fcfg["units"])
        self._flags(call, fcfg)
        fexp, bexp = self._expected(fwd, I), self._expected(bwd, I)
        w = self.weights(call, [("forward " + l, s) for l, s in fexp]
                         + [("backward " + l, s) for l, s in bexp])
        fp = self._cell(fwd, w[:len(fexp)], where)
        bp = self._cell(bwd, w[len(fexp):], where)
        seqs, state = bool(fcfg.get("return_sequences")), bool(fcfg.get("return_state"))
        rec = ir.Recurrent(
            name=self.layer_name(call), cell=_IR_CELL[fcls], direction="bidirectional",
            hidden_size=H, input_size=I, x=x.name,
            W=np.stack([fp[0], bp[0]]), R=np.stack([fp[1], bp[1]]),
            Wb=np.stack([fp[2], bp[2]]), Rb=np.stack([fp[3], bp[3]]),
            activations=[fp[4], bp[4]], linear_before_reset=fp[5],
            # Bidirectional sets zero_output_for_mask = return_sequences on both layers,
            # and flips the backward outputs back into time order.
            masked_output="zero" if seqs else "carry", mask=x.mask)
        self.add(rec)
        # Both directions side by side: y (B, T, 2H) or, sequence-to-vector, the final
        # states h_last (B, 2H), which are the outputs of the last processed steps.
        shape, mask = ((None, x.shape[1]), x.mask) if seqs else ((None,), None)
        both = self.out_name(call) if merge == "concat" else self.out_name(call, "/both")
        if seqs:
            rec.y = both
        else:
            rec.h_last = both
        if merge == "concat":
            outs = [_Tensor(both, shape + (2 * H,), mask)]
        elif merge is None:
            outs = [self._slice(call, both, 0, H, shape, mask, "/forward"),
                    self._slice(call, both, H, 2 * H, shape, mask, "/backward")]
        else:
            out = self.out_name(call)
            self.add(ir.MergeDirections(name=self.layer_name(call, "/merge"), x=both,
                                        out=out, mode=merge))
            outs = [_Tensor(out, shape + (H,), mask)]
        if state:
            if rec.h_last is None:
                rec.h_last = self.out_name(call, "/h")
            if fcls == "LSTM":
                rec.c_last = self.out_name(call, "/c")
            for d, (start, stop) in enumerate(((0, H), (H, 2 * H))):
                side = ("/forward", "/backward")[d]
                outs.append(self._slice(call, rec.h_last, start, stop, (None,), None,
                                        side + "_h"))
                if rec.c_last:
                    outs.append(self._slice(call, rec.c_last, start, stop, (None,), None,
                                            side + "_c"))
        return outs

    def _slice(self, call, src, start, stop, shape, mask, suffix):
        out = self.out_name(call, suffix)
        self.add(ir.FeatureSlice(name=self.layer_name(call, suffix), x=src, out=out,
                                 start=start, stop=stop))
        return _Tensor(out, shape + (stop - start,), mask)
