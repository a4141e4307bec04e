"""Embedding: token ids to rows of a table (src_c/layers.c)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Layer, check
from .reading import attr, fail, lookup, rows_of, sequence_time


@dataclass
class Embedding(Layer):
    """out[..., :] = table[ids[...]]; ids int64 in [0, V). mask (optional) = ids != 0."""
    name: str
    ids: str
    out: str
    table: np.ndarray                  # (V, E)
    mask: str | None = None            # Keras mask_zero
    kind = "Embedding"
    OP_CODE = 1
    ROLES = frozenset({"table"})
    PARAMS = ("table",)

    def inputs(self):
        return [self.ids]

    def outputs(self):
        return [n for n in (self.out, self.mask) if n]

    def validate(self):
        check(self.table.ndim == 2 and self.table.shape[0] >= 1, self, "table must be (V, E)")

    @staticmethod
    def plan_op(layer, tensors, read, define):
        table = lookup(layer, tensors, "table")
        if table is None or table.ndim != 2 or table.dtype != np.float32 or min(table.shape) < 1:
            got = "nothing" if table is None else f"{table.dtype} {table.shape}"
            fail(layer, f"table must be a float32 (V >= 1, E >= 1) tensor, got {got}")
        ids_i, ids = read(layer, attr(layer, "ids", (str,)))
        if ids.dtype != "int64":
            fail(layer, f"ids must be int64, got {ids.dtype}")
        tsym, mult = rows_of(layer, ids.shape + (1,))
        V, E = table.shape
        out = define(attr(layer, "out", (str,)), ids.shape + (E,), "float32")
        mname = attr(layer, "mask", (str,), optional=True)
        if mname is not None and len(ids.shape) != 2:
            fail(layer, f"a mask needs (batch, time) ids, got {ids.shape}")
        if mname is not None:
            sequence_time(layer, ids.shape, False, "ids")
        mask = -1 if mname is None else define(mname, ids.shape, "uint8")
        return {"in": [ids_i], "out": [out, mask], "tsym": tsym, "rows_mult": mult, "n_in": 1,
                "n_out": E, "table": table, "vocab": V}
