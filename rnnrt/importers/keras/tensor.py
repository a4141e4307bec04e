"""A tensor as the Keras importer tracks it: its IR name, Keras shape and travelling mask."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Tensor:
    name: str           # IR tensor name
    shape: tuple        # (None, T, F) or (None, F); None = dynamic
    mask: str | None    # IR name of the (B, T) mask travelling with it
    dtype: str = "float32"
    expr: tuple | None = None   # a mask computation not yet in the IR (see _MASK_OPS)
