"""The ONNX protobuf at the importer's boundary, trusted in nothing.

read_model() parses the file and runs onnx.checker (full check, with shape inference) on it,
so that what onnxruntime refuses as an invalid model rnnrt refuses too, with the checker's
message: undefined or duplicate tensor names, unknown or wrongly typed attributes, node input
and output counts, type and shape contradictions. tensor_value() reads an initializer or a
tensor attribute after checking its element type and that its data holds what its dims
say. attributes() reads a node's attributes by their declared types. Malformed input raises
FormatError naming what is wrong; valid ONNX outside what rnnrt reads raises
UnsupportedModelError.
"""

from __future__ import annotations

import math
import os

import numpy as np

from ...errors import FormatError, UnsupportedModelError

# Elements an initializer may hold: far beyond any recurrent model, well below what a
# corrupted dims field can claim (a product of huge dims is refused before anything is
# allocated).
MAX_ELEMENTS = 2 ** 31

# Element types stored two numbers to a value (COMPLEX64, COMPLEX128), and packed two
# values to a byte (UINT4, INT4, FLOAT4E2M1: their sizes are left to numpy_helper, whose
# errors are caught).
_PAIRED = {14: 2, 15: 2}
_PACKED = {21, 22, 23}


def read_model(path):
    """The ModelProto at `path` (or `path` itself when it is one), checked by onnx.checker."""
    import onnx
    if isinstance(path, onnx.ModelProto):
        model, shown = path, "the model"
    else:
        shown = repr(os.fspath(path))
        try:
            model = onnx.load(os.fspath(path))
        except FileNotFoundError:
            raise
        except Exception as e:  # protobuf DecodeError, external data problems, ...
            raise FormatError(f"cannot read {shown} as an ONNX model: "
                              f"{type(e).__name__}: {e}") from None
    refuse_negative_dims(model, shown)
    check_model(model if isinstance(path, onnx.ModelProto) else os.fspath(path), shown)
    return model


def _graphs(graph):
    """graph and every graph nested in its nodes' attributes (Loop, If, Scan bodies)."""
    yield graph
    for node in graph.node:
        for a in node.attribute:
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                yield from _graphs(g)


def refuse_negative_dims(model, shown) -> None:
    """A declared dimension below zero is invalid ONNX, and onnx's shape inference can abort
    the whole process on one (a libstdc++ assertion in Slice's, onnx 1.23): refused before
    the checker runs."""
    for g in _graphs(model.graph):
        for vi in list(g.input) + list(g.output) + list(g.value_info):
            shape = vi.type.tensor_type.shape if vi.type.HasField("tensor_type") else None
            for axis, d in enumerate(shape.dim if shape is not None else ()):
                if d.HasField("dim_value") and d.dim_value < 0:
                    raise FormatError(f"{shown}: tensor {vi.name!r} declares axis {axis} of "
                                      f"size {d.dim_value}; sizes are >= 0, or named for a "
                                      f"dynamic axis")


def check_model(model, shown="the model") -> None:
    """onnx.checker.check_model(full_check=True) of a ModelProto or a path (which it reads
    itself: a model over protobuf's 2 GiB, with external data, is checked only that way):
    FormatError with its message."""
    import onnx
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # ValidationError, InferenceError, and whatever else it raises
        msg = " ".join(str(e).split())    # one line: it spreads a node over several
        raise FormatError(f"{shown} is not a valid ONNX model (onnx.checker: {msg})") from None


def _type_name(data_type: int) -> str:
    from onnx import TensorProto
    try:
        return TensorProto.DataType.Name(data_type)
    except ValueError:
        return str(data_type)


def _attribute_type_name(code: int) -> str:
    from onnx import AttributeProto
    try:
        return AttributeProto.AttributeType.Name(code)
    except ValueError:
        return str(code)


def tensor_value(t, what: str) -> np.ndarray:
    """The value of TensorProto `t` ("initializer 'W'", "attribute 'value' of ..."), its
    element type, dims and data checked against each other before anything is decoded."""
    from onnx import TensorProto, helper, numpy_helper
    if t.data_type == TensorProto.UNDEFINED:
        raise FormatError(f"{what}: element type UNDEFINED")
    try:
        dtype = helper.tensor_dtype_to_np_dtype(t.data_type)
        field = helper.tensor_dtype_to_field(t.data_type)
    except (KeyError, ValueError, TypeError):
        raise FormatError(f"{what}: unknown element type {t.data_type}") from None
    dims = list(t.dims)
    if any(d < 0 for d in dims):
        raise FormatError(f"{what}: negative dims {dims}")
    count = math.prod(dims)
    if count > MAX_ELEMENTS:
        raise FormatError(f"{what}: dims {dims} make {count} elements, more than the "
                          f"{MAX_ELEMENTS} rnnrt reads")
    if t.data_location == TensorProto.EXTERNAL:
        raise FormatError(f"{what}: its data is external and was not loaded")
    type_name = _type_name(t.data_type)
    if t.data_type not in _PACKED and t.data_type != TensorProto.STRING:
        if t.HasField("raw_data"):
            want = count * np.dtype(dtype).itemsize
            if len(t.raw_data) != want:
                raise FormatError(f"{what}: {len(t.raw_data)} bytes of data, but dims {dims} "
                                  f"of {type_name} need {want}")
        else:
            want = count * _PAIRED.get(t.data_type, 1)
            got = len(getattr(t, field))
            if got != want:
                raise FormatError(f"{what}: {got} values in {field}, but dims {dims} of "
                                  f"{type_name} need {want}")
    try:
        value = numpy_helper.to_array(t)
    except Exception as e:  # numpy_helper's errors on data it cannot decode
        raise FormatError(f"{what}: cannot decode its data ({type_name}, dims {dims}): "
                          f"{type(e).__name__}: {e}") from None
    if value.shape != tuple(dims):
        raise FormatError(f"{what}: decoded to shape {value.shape}, its dims are {dims}")
    return value


def attributes(node, where: str) -> dict:
    """{name: value} of a node's attributes, each read by its declared type (onnx.checker
    has matched names and types against the operator's schema)."""
    from onnx import AttributeProto as A
    from onnx import helper
    out = {}
    for a in node.attribute:
        if a.name in out:
            raise FormatError(f"{where}: attribute {a.name!r} is given twice")
        if a.type == A.TENSOR:
            value = tensor_value(a.t, f"{where}: attribute {a.name!r}")
        elif a.type in (A.INT, A.FLOAT, A.INTS, A.FLOATS, A.GRAPH, A.GRAPHS):
            value = helper.get_attribute_value(a)
        elif a.type == A.STRING:
            value = a.s.decode("utf-8", "replace")
        elif a.type == A.STRINGS:
            value = [s.decode("utf-8", "replace") for s in a.strings]
        elif a.type == A.UNDEFINED:
            raise FormatError(f"{where}: attribute {a.name!r} has no type")
        else:     # SPARSE_TENSOR, TYPE_PROTO, TENSORS ...
            raise UnsupportedModelError(f"{where}: attribute {a.name!r} is of type "
                                        f"{_attribute_type_name(a.type)}, which rnnrt does "
                                        f"not read")
        out[a.name] = value
    return out
