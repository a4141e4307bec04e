"""Which Keras layers rnnrt takes, how many weight arrays each owns, and the Keras
activations with their exact IR equivalents."""

from __future__ import annotations

import json

from ... import ir
from ...errors import FormatError, UnsupportedModelError
from .config import _class

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
