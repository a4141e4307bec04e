"""From ordered Keras layer calls to IR layers: tensors, names, weights, masks and the
dispatch to each layer class's emitter (layers_core.py, layers_recurrent.py)."""

from __future__ import annotations

import numpy as np

from ... import ir
from ...errors import FormatError, UnsupportedModelError
from .catalog import _ACTIVATION_LAYERS, _MASK_OPS, _NO_OPS, _RECURRENT
from .config import _class, _tensor_refs
from .layers_core import CoreLayers
from .layers_recurrent import RecurrentLayers
from .tensor import _Tensor


class Builder(CoreLayers, RecurrentLayers):
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
