"""ONNX importer: an .onnx file -> ir.Graph. Needs the `onnx` package (pip install
rnnrt[onnx]) at convert time only; loading and running a converted model never does.

The modules: proto.py (the file, onnx.checker, initializers and attributes, checked),
values.py (what is known about each tensor), importer.py (the walk over the graph),
recurrent.py (RNN / LSTM / GRU), ops.py (glue and heads), shapes.py (shape arithmetic)."""

from __future__ import annotations

from ...errors import FormatError, InputError, RnnrtError, UnsupportedModelError


def load_onnx(path, constants=None):
    """Read an ONNX model (a path, or a ModelProto) and return its IR graph. `constants`
    binds graph inputs that are really weights (as in the ONNX backend test models) to
    their values.

    Every error is typed: what proto.py and the handlers check names itself; anything else
    the walk raises (a malformed model in a way no check foresaw) becomes FormatError naming
    the node being imported, the original exception as its __cause__."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise UnsupportedModelError("converting ONNX models needs the onnx package: "
                                    "pip install 'rnnrt[onnx]'") from None
    if constants is not None and not isinstance(constants, dict):
        raise InputError(f"constants must be a dict {{input name: array}}, got "
                         f"{type(constants).__name__}")
    from .importer import Importer
    from .proto import read_model
    model = read_model(path)
    imp = Importer(model, constants)
    try:
        return imp.run()
    except RnnrtError:
        raise
    except Exception as e:  # the backstop: see the docstring
        raise FormatError(f"{imp.where}: the ONNX importer cannot read it "
                          f"({type(e).__name__}: {e}); the model is malformed or "
                          f"inconsistent there") from e
