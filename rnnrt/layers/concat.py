"""Concat: tensors joined along an axis of fixed size (src_c/layers.c, rnnrt_axis_copy)."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Layer, check
from .reading import attr, axis_op, fail, fixed_axis


MAX_CONCAT_INPUTS = 5     # the C op's input slots (RNNRT_MAX_IO); importers chain more


@dataclass
class Concat(Layer):
    """out = xs joined along `axis` (of fixed size in each; the other axes equal): stacked
    layers' final states, as PyTorch returns them."""
    name: str
    xs: list
    out: str
    axis: int
    kind = "Concat"
    OP_CODE = 9
    ROLES = frozenset(())

    def inputs(self):
        return list(self.xs)

    def outputs(self):
        return [self.out]

    def validate(self):
        check(1 <= len(self.xs) <= MAX_CONCAT_INPUTS and self.axis >= 0, self,
              f"need 1..{MAX_CONCAT_INPUTS} inputs and axis >= 0")

    @staticmethod
    def plan_op(layer, tensors, read, define):
        axis = attr(layer, "axis", (int,))
        names = attr(layer, "xs", (list,))
        if not 1 <= len(names) <= MAX_CONCAT_INPUTS or not all(isinstance(n, str) for n in names):
            fail(layer, f"takes 1 to {MAX_CONCAT_INPUTS} input names, got {names!r:.100}")
        ins, shapes = [], []
        for name in names:
            i, xs = read(layer, name)
            if xs.dtype != "float32":
                fail(layer, f"input {name!r} must be float32, got {xs.dtype}")
            fixed_axis(layer, xs.shape, axis)
            ins.append(i)
            shapes.append(xs.shape)
        first = shapes[0]
        for shape in shapes[1:]:
            if len(shape) != len(first) or shape[:axis] + shape[axis + 1:] != \
                    first[:axis] + first[axis + 1:]:
                fail(layer, f"inputs of shapes {shapes} differ off axis {axis}")
        total = sum(s[axis] for s in shapes)
        out = define(attr(layer, "out", (str,)), first[:axis] + (total,) + first[axis + 1:],
                     "float32")
        return axis_op(layer, first, axis, ins, out, [s[axis] for s in shapes])
