"""FeatureSlice: a range of the last axis (src_c/layers.c)."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Unary, check
from .reading import attr, fail, row_op


@dataclass
class FeatureSlice(Unary):
    """out = x[..., start:stop] (last axis)."""
    name: str
    x: str
    out: str
    start: int
    stop: int
    kind = "FeatureSlice"
    OP_CODE = 6
    ROLES = frozenset(())

    def validate(self):
        check(0 <= self.start < self.stop, self, "need 0 <= start < stop")

    @staticmethod
    def plan_op(layer, tensors, read, define):
        start, stop = attr(layer, "start", (int,)), attr(layer, "stop", (int,))

        def width(n):
            if not 0 <= start < stop <= n:
                fail(layer, f"slice {start}:{stop} out of range for {n} features")
            return stop - start
        return row_op(layer, read, define, width, start=start, stop=stop)
