"""Dense: out = act(x @ kernel + bias) over the last axis (src_c/layers.c)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Act, Unary, check, check_shape
from .reading import act_code, attr, fail, lookup, rows_of, tensor


@dataclass
class Dense(Unary):
    """out = act(x @ kernel + bias) over the last axis. kernel (in, out), bias (out,)."""
    name: str
    x: str
    out: str
    kernel: np.ndarray
    bias: np.ndarray | None = None
    activation: Act = Act("linear")
    kind = "Dense"
    OP_CODE = 3
    ROLES = frozenset({"kernel", "bias"})
    PARAMS = ("kernel", "bias")

    def validate(self):
        check(self.kernel.ndim == 2, self, "kernel must be (in, out)")
        if self.bias is not None:
            check_shape(self, "bias", self.bias, (self.kernel.shape[1],))

    @staticmethod
    def plan_op(layer, tensors, read, define):
        x_i, xs = read(layer, attr(layer, "x", (str,)))
        k = lookup(layer, tensors, "kernel")
        n_in = xs.shape[-1] if xs is not None and xs.shape else None
        if k is None or k.ndim != 2 or k.dtype != np.float32 or k.shape[0] != n_in or \
                k.shape[1] < 1:
            got = "nothing" if k is None else f"{k.dtype} {k.shape}"
            fail(layer, f"kernel must be float32 ({n_in}, out >= 1), got {got}")
        bias = tensor(layer, tensors, "bias", (k.shape[1],), optional=True)
        if xs.dtype != "float32":
            fail(layer, "x must be float32")
        tsym, mult = rows_of(layer, xs.shape)
        out = define(attr(layer, "out", (str,)), xs.shape[:-1] + (k.shape[1],), "float32")
        return {"in": [x_i], "out": [out], "tsym": tsym, "rows_mult": mult, "n_in": n_in,
                "n_out": k.shape[1], "kernel": k, "bias": bias,
                "act": act_code(layer, layer["attrs"].get("activation"), row_wise_ok=True)}
