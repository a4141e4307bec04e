"""The intermediate representation: a small, validated, source-free model description.

Importers (rnnrt/importers/) produce a Graph; the packer turns it into kernel-ready
buffers; the NumPy reference in tests/ executes it directly. Nothing in here knows about
ONNX, Keras or PyTorch.

A Graph has named inputs, a topologically ordered list of layers, and named outputs.
Each layer reads and writes tensors by name, so a graph is a DAG, not only a chain.

The layer kinds live in rnnrt/layers/, one module each (rnnrt/layers/recurrent.py holds
the canonical gate order, weight layouts and cell equations every importer maps its source
to); this module keeps the graph, its inputs and outputs, and names every layer kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .layers import *          # noqa: F401,F403  the layer kinds and their shared types
from .layers.base import check as _check


@dataclass
class TensorInfo:
    """A graph input or output: name, shape (ints, or None for a dynamic axis), dtype.

    Dynamic axes are the batch, and the time axis of a sequence input: (None, None, F), or
    (None, None) token ids, read as (batch, time, ...) or, for an input a time-major layer
    reads, (time, batch, ...). All inputs share the batch size; each sequence input has its
    own length (an encoder's and a decoder's inputs may differ).

    declared: per axis, the size the source model declares for a dynamic axis (an ONNX
    input declared (1, 10, 4) has batch 1 and time 10), or None; a call must give that size.
    """
    name: str
    shape: tuple
    dtype: str  # "float32", "int64" (token ids) or "int32" (sequence lengths)
    declared: tuple | None = None

    def to_dict(self) -> dict:
        d = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.declared is not None and any(s is not None for s in self.declared):
            d["declared"] = list(self.declared)
        return d

    @staticmethod
    def from_dict(d: dict) -> "TensorInfo":
        declared = d.get("declared")
        return TensorInfo(d["name"], tuple(d["shape"]), d["dtype"],
                          None if declared is None else tuple(declared))


@dataclass
class Graph:
    inputs: list            # list[TensorInfo]
    layers: list
    outputs: list           # list[str]
    metadata: dict = field(default_factory=dict)   # source, versions: informational only

    def validate(self) -> "Graph":
        """Check names are defined before use and written once; each layer checks itself."""
        defined = set()
        for t in self.inputs:
            _check(t.dtype in ("float32", "int64", "int32"), None,
                   f"input {t.name!r}: dtype must be float32, int64 or int32, got {t.dtype!r}")
            _check(t.name not in defined, None, f"input {t.name!r} declared twice")
            defined.add(t.name)
        names = set()
        for layer in self.layers:
            _check(layer.name not in names, layer, "layer name used twice")
            names.add(layer.name)
            layer.validate()
            for n in layer.inputs():
                _check(n in defined, layer, f"reads {n!r}, which is not defined before it")
            for n in layer.outputs():
                _check(n not in defined, layer, f"writes {n!r}, which is already defined")
                defined.add(n)
            for k, v in layer.params.items():
                _check(isinstance(v, np.ndarray) and np.all(np.isfinite(v)), layer,
                       f"parameter {k} must be a finite array")
        _check(len(self.outputs) >= 1, None, "graph has no outputs")
        for n in self.outputs:
            _check(n in defined, None, f"output {n!r} is not produced by any layer")
        return self

    @property
    def streamable(self) -> bool:
        """True when every recurrent layer runs forward only (so step() is defined)."""
        return all(l.direction == "forward" for l in self.layers if l.kind == "Recurrent")
