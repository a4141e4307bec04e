"""Activation: an elementwise or row-wise activation (src_c/activations.c)."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Act, Unary
from .reading import act_code, row_op


@dataclass
class Activation(Unary):
    """out = act(x): elementwise, or softmax / log_softmax over the last axis."""
    name: str
    x: str
    out: str
    activation: Act
    kind = "Activation"
    OP_CODE = 4
    ROLES = frozenset(())

    @staticmethod
    def plan_op(layer, tensors, read, define):
        act = act_code(layer, layer["attrs"].get("activation"), row_wise_ok=True)
        return row_op(layer, read, define, lambda n: n, act=act)
