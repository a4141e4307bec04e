"""convert(): any supported source -> IR -> .rnnrt file."""

from __future__ import annotations

import os

from . import packing
from .errors import InputError


def to_ir(src, *, config=None, spec=None, constants=None):
    """Import a source model into an IR graph (not yet validated)."""
    src = os.fspath(src)
    ext = os.path.splitext(src)[1].lower()
    if ext == ".onnx":
        if config is not None or spec is not None:
            raise InputError("an .onnx source takes no config= or spec=")
        from .importers.onnx import load_onnx
        return load_onnx(src, constants)
    if constants is not None:
        raise InputError("constants= applies to .onnx sources only")
    if ext != ".npz":
        raise InputError(f"{src!r}: expected a .onnx or .npz source, got {ext or 'no extension'!r}")
    if (config is None) == (spec is None):
        raise InputError("an .npz source needs exactly one of config= (Keras model.to_json()) "
                         "or spec= (PyTorch module chain)")
    if config is not None:
        from .importers.keras import load_keras
        return load_keras(src, config)
    from .importers.torch import load_torch
    return load_torch(src, spec)


def convert(src, dst, *, config=None, spec=None, constants=None) -> str:
    graph = to_ir(src, config=config, spec=spec, constants=constants)
    graph.metadata.setdefault("source", os.path.basename(os.fspath(src)))
    return packing.save(graph, os.fspath(dst))
