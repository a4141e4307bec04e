"""ONNX importer: an .onnx file -> ir.Graph. Needs the `onnx` package (pip install
rnnrt[onnx]) at convert time only; loading and running a converted model never does.

The modules: values.py (what is known about each tensor), importer.py (the walk over the
graph), recurrent.py (RNN / LSTM / GRU), ops.py (glue and heads), shapes.py (shape
arithmetic)."""

from __future__ import annotations

import os

from ...errors import FormatError, InputError, UnsupportedModelError


def load_onnx(path, constants=None):
    """Read an ONNX model and return its IR graph. `constants` binds graph inputs that are
    really weights (as in the ONNX backend test models) to their values."""
    try:
        import onnx
    except ImportError:
        raise UnsupportedModelError("converting ONNX models needs the onnx package: "
                                    "pip install 'rnnrt[onnx]'") from None
    if constants is not None and not isinstance(constants, dict):
        raise InputError(f"constants must be a dict {{input name: array}}, got "
                         f"{type(constants).__name__}")
    try:
        model = onnx.load(os.fspath(path)) if not isinstance(path, onnx.ModelProto) else path
    except FileNotFoundError:
        raise
    except Exception as e:  # protobuf decode errors, external data problems
        raise FormatError(f"cannot read {os.fspath(path)!r} as an ONNX model: {e}") from None
    from .importer import Importer
    return Importer(model, constants).run()
