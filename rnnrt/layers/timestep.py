"""TimeStep: one time step of a sequence (src_c/layers.c)."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Unary
from .reading import BATCH, attr, features, sequence_time, time_index


@dataclass
class TimeStep(Unary):
    """out = x[:, index] (batch-major) or x[index] (time-major); negative index from the end."""
    name: str
    x: str
    out: str
    index: int = -1
    time_major: bool = False
    kind = "TimeStep"
    OP_CODE = 5
    ROLES = frozenset(())

    @staticmethod
    def plan_op(layer, tensors, read, define):
        tm = attr(layer, "time_major", (bool,))
        index = attr(layer, "index", (int,))
        x_i, xs = read(layer, attr(layer, "x", (str,)), 3)
        t = sequence_time(layer, xs.shape, tm)
        n = features(layer, xs)
        out = define(attr(layer, "out", (str,)), (BATCH, n), "float32")
        return {"in": [x_i], "out": [out], "tsym": time_index(t), "rows_mult": 1,
                "n_in": n, "n_out": n, "index": index, "time_major": int(tm)}
