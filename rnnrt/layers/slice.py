"""Slice: a range of an axis of fixed size (src_c/layers.c, rnnrt_axis_copy)."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Unary, check
from .reading import attr, axis_op, fail, fixed_axis


@dataclass
class Slice(Unary):
    """out = x[start:stop] along `axis` of x (an axis of fixed size, not batch or time):
    one layer's states out of a stacked (layers*directions, batch, hidden) state input."""
    name: str
    x: str
    out: str
    axis: int
    start: int
    stop: int
    kind = "Slice"
    OP_CODE = 8
    ROLES = frozenset(())

    def validate(self):
        check(self.axis >= 0 and 0 <= self.start < self.stop, self,
              "need axis >= 0 and 0 <= start < stop")

    @staticmethod
    def plan_op(layer, tensors, read, define):
        axis = attr(layer, "axis", (int,))
        start, stop = attr(layer, "start", (int,)), attr(layer, "stop", (int,))
        x_i, xs = read(layer, attr(layer, "x", (str,)))
        if xs.dtype != "float32":
            fail(layer, f"x must be float32, got {xs.dtype}")
        fixed_axis(layer, xs.shape, axis)
        if not 0 <= start < stop <= xs.shape[axis]:
            fail(layer, f"slice {start}:{stop} out of range for an axis of {xs.shape[axis]}")
        shape = xs.shape[:axis] + (stop - start,) + xs.shape[axis + 1:]
        out = define(attr(layer, "out", (str,)), shape, "float32")
        return axis_op(layer, xs.shape, axis, [x_i], out, [xs.shape[axis]], start=start,
                        stop=stop)
