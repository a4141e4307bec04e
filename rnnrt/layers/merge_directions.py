"""MergeDirections: the directions of a bidirectional output merged (src_c/layers.c)."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Unary, check
from .reading import attr, fail, row_op


MERGE_MODES = ("concat", "sum", "mul", "ave")     # Keras merge_mode values
MERGE_CODES = {"sum": 0, "mul": 1, "ave": 2}        # MERGE_* in src_c/rnnrt.h


@dataclass
class MergeDirections(Unary):
    """x's last axis holds `parts` equal halves [p0 | p1 ...]; out = their sum / product /
    mean (mode sum, mul, ave) over the last axis."""
    name: str
    x: str
    out: str
    mode: str
    parts: int = 2
    kind = "MergeDirections"
    OP_CODE = 7
    ROLES = frozenset(())

    def validate(self):
        check(self.mode in ("sum", "mul", "ave"), self, "mode must be sum, mul or ave")
        check(self.parts >= 2, self, "parts must be >= 2")

    @staticmethod
    def plan_op(layer, tensors, read, define):
        mode, parts = attr(layer, "mode", (str,)), attr(layer, "parts", (int,))
        if mode not in MERGE_CODES or parts < 2:
            fail(layer, f"bad merge mode {mode!r} / parts {parts}")

        def width(n):
            if n % parts:
                fail(layer, f"{n} features do not split into {parts} parts")
            return n // parts
        return row_op(layer, read, define, width, mode=MERGE_CODES[mode], parts=parts)
