"""Masking: steps whose features all equal mask_value are masked out (src_c/layers.c)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .base import Layer, check
from .reading import BATCH, attr, features, sequence_time, time_index


@dataclass
class Masking(Layer):
    """mask[b, t] = any(x[b, t, :] != mask_value); out = x * mask (batch-major x)."""
    name: str
    x: str
    out: str
    mask: str
    mask_value: float = 0.0
    kind = "Masking"
    OP_CODE = 2
    ROLES = frozenset(())

    def inputs(self):
        return [self.x]

    def outputs(self):
        return [self.out, self.mask]

    def validate(self):
        check(math.isfinite(self.mask_value), self, "mask_value must be finite")

    @staticmethod
    def plan_op(layer, tensors, read, define):
        x_i, xs = read(layer, attr(layer, "x", (str,)), 3)
        t = sequence_time(layer, xs.shape, False)
        n = features(layer, xs)
        mv = attr(layer, "mask_value", (int, float))
        out = define(attr(layer, "out", (str,)), xs.shape, "float32")
        mask = define(attr(layer, "mask", (str,)), (BATCH, t), "uint8")
        return {"in": [x_i], "out": [out, mask], "tsym": time_index(t), "rows_mult": 1,
                "n_in": n, "n_out": n, "mask_value": float(mv)}
