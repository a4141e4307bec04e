"""Emitters of the plain Keras layers: Dense, TimeDistributed, the activation layers,
Embedding, Masking and the inference no-ops."""

from __future__ import annotations

from ... import ir
from ...errors import UnsupportedModelError
from .catalog import _NO_OPS, _activation
from .config import _Call, _class
from .tensor import _Tensor


class CoreLayers:
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
