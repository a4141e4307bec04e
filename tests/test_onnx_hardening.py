"""The ONNX importer on malformed and invalid models (issue 16, defects 9 and 11).

Every mutated model converts, or fails with FormatError / UnsupportedModelError naming the
problem: never another exception, and never one that only load_onnx's backstop typed (each
site is checked where the model is read). What onnxruntime refuses as an invalid model,
rnnrt refuses at convert time (onnx.checker, full check). Declared input sizes are honoured.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import rnnrt
from rnnrt.errors import FormatError, InputError, UnsupportedModelError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import onnx_mutator  # noqa: E402

# A few seconds: the fixed seed makes every run (and CI) try the same cases;
# RNNRT_MUTATION_SEED / RNNRT_MUTATION_CASES explore further (tests/onnx_mutator.py runs a
# campaign and prints the sites).
CASES = int(os.environ.get("RNNRT_MUTATION_CASES", 2000))
SEED = int(os.environ.get("RNNRT_MUTATION_SEED", 0))


def test_mutated_fixtures_get_typed_errors(tmp_path):
    sites, examples, typed, converted = onnx_mutator.campaign(CASES, SEED, str(tmp_path))
    report = "\n".join(f"{n} x {site}: e.g. case {examples[site][0]} of {examples[site][1]} "
                       f"{examples[site][2]}: {examples[site][3]}"
                       for site, n in sites.most_common())
    assert not sites, f"untyped (or only backstop-typed) exceptions:\n{report}"
    # The cases reach the importer and beyond, not only the checker.
    assert converted > CASES // 20 and typed["UnsupportedModelError"] > CASES // 20


# ----------------------------------------------------------------------------- the sites

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "onnx")


def _fixture(name):
    sub = "torch" if name.endswith((".legacy.onnx", ".dynamo.onnx")) else "tf2onnx"
    return onnx.load(os.path.join(FIXTURES, sub, name))


def _init(model, name):
    return next(t for t in model.graph.initializer if t.name == name)


def _node(model, name):
    return next(n for n in model.graph.node if n.name == name)


def _attr(node, name):
    return next(a for a in node.attribute if a.name == name)


def _set_value(tensor, value):
    tensor.CopyFrom(numpy_helper.from_array(np.asarray(value), tensor.name))


def _raw_grown(m):
    _init(m, "R0__1871").raw_data += b"\0" * 5


def _raw_cut(m):
    t = _init(m, "W0__1870")
    t.raw_data = t.raw_data[:-4]


def _typed_field_short(m):
    t = _init(m, "W0__1870")
    values = numpy_helper.to_array(t).reshape(-1)[:-1]
    t.ClearField("raw_data")
    t.float_data.extend(values.tolist())


def _unknown_type(m):
    _init(m, "B0__1872").data_type = 99


def _constant_cut(m):
    t = _attr(_node(m, "/rnn/Constant"), "value").t
    t.raw_data = t.raw_data[:3]


def _gemm_bias_column(m):
    t = _init(m, "head.bias")
    _set_value(t, numpy_helper.to_array(t).reshape(3, 1))


def _concat_missing_part(m):
    node = _node(m, "node_gru__1")
    node.input.append("")


def _reverse_sequence_axis(m):
    node = _node(m, "sequential_10_1/lstm_6_1/ReverseV2_ReverseSequence__1915")
    _attr(node, "time_axis").i = 2


def _mul_by_constant(m):
    _node(m, "node_linear").op_type = "Mul"


def _shape_index_out_of_range(m):
    _set_value(_attr(_node(m, "/rnn/Constant"), "value").t, np.array(7, np.int64))


def _empty_fill_value(m):
    _set_value(_attr(_node(m, "/rnn/ConstantOfShape"), "value").t, np.zeros(0, np.float32))


# (fixture, edit, error, what the message says): one of each kind of site the mutator found
# raising ValueError / TypeError / IndexError / AttributeError on 9ef08bd.
SITES = {
    "initializer data longer than its dims": (
        "lstm_go_backwards.onnx", _raw_grown, FormatError,
        r"initializer 'R0__1871': 261 bytes of data, but dims \[1, 16, 4\] of FLOAT need 256"),
    # Data too short, or of an unknown type: onnx.checker refuses it (too long it lets by).
    "initializer data shorter than its dims": (
        "lstm_go_backwards.onnx", _raw_cut, FormatError,
        r"W0__1870\) raw_data size \(188 bytes\) is too small for the declared shape"),
    "too few values in float_data": (
        "lstm_go_backwards.onnx", _typed_field_short, FormatError,
        r"W0__1870\) float_data size \(47\) is too small for the declared shape"),
    "unknown element type": (
        "lstm_go_backwards.onnx", _unknown_type, FormatError, r"Invalid tensor data type 99"),
    "tensor attribute data cut": (
        "lstm_last_softmax.legacy.onnx", _constant_cut, FormatError,
        r"raw_data size \(3 bytes\) is too small.* Name: /rnn/Constant OpType: Constant"),
    "Gemm bias as a column": (
        "lstm_last_tanh.legacy.onnx", _gemm_bias_column, UnsupportedModelError,
        r"Gemm node '/head/Gemm': Gemm's C must broadcast over the rows.*got \(3, 1\)"),
    "Concat with a missing part": (
        "gru_bi_2layer_state.dynamo.onnx", _concat_missing_part, UnsupportedModelError,
        r"Concat node 'node_gru__1': Concat of run-time tensors with a missing input"),
    "ReverseSequence time_axis out of range": (
        "lstm_go_backwards.onnx", _reverse_sequence_axis, FormatError,
        r"ReverseSequence's time_axis and batch_axis must be 0 and 1.*got 2 and 1"),
    "Mul of a run-time tensor by a constant": (
        "emb_gru_linear.dynamo.onnx", _mul_by_constant, UnsupportedModelError,
        r"Mul node 'node_linear': Mul of run-time tensors is supported for the two directions"),
    "Gather index beyond a shape": (
        "lstm_last_softmax.legacy.onnx", _shape_index_out_of_range, FormatError,
        r"Gather node '/rnn/Gather': indices \[7\] out of range for 3 entries"),
    "ConstantOfShape with an empty value": (
        "lstm_last_softmax.legacy.onnx", _empty_fill_value, FormatError,
        r"ConstantOfShape node '/rnn/ConstantOfShape': ConstantOfShape's value must be one "
        r"number, got float32 of shape \(0,\)"),
}


@pytest.mark.parametrize("case", sorted(SITES))
def test_malformed_model_gets_a_typed_error_naming_it(case, tmp_path):
    fixture, edit, error, message = SITES[case]
    model = _fixture(fixture)
    edit(model)
    src = tmp_path / "m.onnx"
    src.write_bytes(model.SerializeToString())
    with pytest.raises(error, match=message) as e:
        rnnrt.convert(src, tmp_path / "m.rnnrt")
    assert not onnx_mutator.backstopped(e.value)


def _tensor(edit):
    t = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "T")
    edit(t)
    return t


def _dims(t, dims):
    del t.dims[:]
    t.dims.extend(dims)


def _as_float_data(t, values):
    t.ClearField("raw_data")
    t.float_data.extend(values)


def _external(t):
    t.data_location = TensorProto.EXTERNAL
    t.ClearField("raw_data")


TENSORS = {
    "data too long": (lambda t: setattr(t, "raw_data", t.raw_data + b"\0" * 4),
                      r"T: 28 bytes of data, but dims \[2, 3\] of FLOAT need 24"),
    "data too short": (lambda t: setattr(t, "raw_data", t.raw_data[:5]),
                       r"T: 5 bytes of data, but dims \[2, 3\] of FLOAT need 24"),
    "values too few": (lambda t: _as_float_data(t, [1.0] * 5),
                       r"T: 5 values in float_data, but dims \[2, 3\] of FLOAT need 6"),
    "unknown type": (lambda t: setattr(t, "data_type", 99), r"T: unknown element type 99"),
    "no type": (lambda t: setattr(t, "data_type", 0), r"T: element type UNDEFINED"),
    "negative dims": (lambda t: _dims(t, [-2, -3]), r"T: negative dims \[-2, -3\]"),
    "dims beyond any model": (lambda t: _dims(t, [2 ** 40, 2 ** 20]),
                              r"T: dims \[1099511627776, 1048576\] make \d+ elements, more"),
    "external data not loaded": (_external, r"T: its data is external and was not loaded"),
}


@pytest.mark.parametrize("case", sorted(TENSORS))
def test_tensor_data_is_checked_against_its_dims_and_type(case):
    """What load_onnx reads of every initializer and tensor attribute before NumPy decodes
    it (issue 16's largest site: a ValueError from numpy_helper for data not fitting dims)."""
    from rnnrt.importers.onnx.proto import tensor_value
    edit, message = TENSORS[case]
    with pytest.raises(FormatError, match=message):
        tensor_value(_tensor(edit), "T")
    assert tensor_value(_tensor(lambda t: None), "T").shape == (2, 3)


def test_backstop_types_what_no_check_foresaw(tmp_path, monkeypatch):
    """An exception no check foresaw becomes FormatError naming the node being imported,
    the original as its cause."""
    from rnnrt.importers.onnx import recurrent

    def broken(*args):
        raise IndexError("a site nobody found yet")

    monkeypatch.setattr(recurrent, "convert", broken)
    with pytest.raises(FormatError, match=r"LSTM node 'LSTM__1873': .*IndexError: a site "
                                          r"nobody found yet") as e:
        rnnrt.convert(os.path.join(FIXTURES, "tf2onnx", "lstm_go_backwards.onnx"),
                      tmp_path / "m.rnnrt")
    assert isinstance(e.value.__cause__, IndexError)


# ----------------------------------------------------------------------------- validity

def _lstm_model(x_dims=("time", "batch", 2), *, H=3):
    """X (time, batch, 2) -> LSTM(H) -> Y, weights as initializers, valid for onnx.checker."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((1, 4 * H, x_dims[-1])).astype(np.float32)
    R = rng.standard_normal((1, 4 * H, H)).astype(np.float32)
    B = rng.standard_normal((1, 8 * H)).astype(np.float32)
    node = helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y"], name="the_lstm",
                            hidden_size=H)
    T, Bt = x_dims[:2]
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x_dims))],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [T, 1, Bt, H])],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R"),
         numpy_helper.from_array(B, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _duplicate_output_name(m):
    m.graph.node.append(helper.make_node("Identity", ["X"], ["Y"], name="also_y"))


def _duplicate_initializer(m):
    m.graph.initializer[1].name = "W"      # two initializers named W, none R


def _unknown_attribute(m):
    m.graph.node[0].attribute.append(helper.make_attribute("bogus", 1))


def _float_hidden_size(m):
    _attr(m.graph.node[0], "hidden_size").CopyFrom(helper.make_attribute("hidden_size", 3.0))


def _int_direction(m):
    m.graph.node[0].attribute.append(helper.make_attribute("direction", 1))


def _float64_weights(m):
    _set_value(m.graph.initializer[0], numpy_helper.to_array(m.graph.initializer[0])
               .astype(np.float64))


def _float16_bias(m):
    _set_value(m.graph.initializer[2], numpy_helper.to_array(m.graph.initializer[2])
               .astype(np.float16))


# edit -> what the FormatError (the checker's message) names
INVALID = {
    "duplicate tensor name": (_duplicate_output_name, r"\(SSA\) form, however 'Y' has been "
                                                      r"used as output names multiple times"),
    "duplicate initializer": (_duplicate_initializer, r"W initializer name is not unique"),
    "unknown attribute": (_unknown_attribute, r"Unrecognized attribute: bogus for operator "
                                              r"LSTM"),
    "float hidden_size": (_float_hidden_size, r"Mismatched attribute type in 'the_lstm : "
                                              r"hidden_size'. Expected: 'INT', actual: 'FLOAT'"),
    "int direction": (_int_direction, r"Mismatched attribute type in 'the_lstm : direction'"),
    "float64 weights": (_float64_weights, r"the_lstm.*W has inconsistent type tensor\(double\)"),
    "float16 bias": (_float16_bias, r"the_lstm.*B has inconsistent type tensor\(float16\)"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_what_onnxruntime_refuses_as_invalid_is_refused(case, tmp_path):
    edit, message = INVALID[case]
    model = _lstm_model()
    edit(model)
    if case != "duplicate initializer":
        with pytest.raises(Exception, match="(?i)invalid|duplicate|type"):
            _session(model)
    # (onnxruntime loads two initializers of one name, warning that it keeps the last; the
    # checker refuses them, and so does rnnrt.)
    src = tmp_path / "m.onnx"
    src.write_bytes(model.SerializeToString())
    with pytest.raises(FormatError, match=r"not a valid ONNX model \(onnx.checker: .*" + message):
        rnnrt.convert(src, tmp_path / "m.rnnrt")


@pytest.mark.parametrize("where", ["input", "output", "value_info"])
def test_a_negative_declared_size_is_refused_before_the_checker_runs(where):
    """onnx's shape inference aborts the process (SIGABRT) on a Slice of an input declared
    with size -1 (fuzz corpus onnx-crash-sigabrt-...): the importer refuses negative sizes
    first. Only the pre-check runs here, so that a regression cannot kill the suite; the
    corpus replays the whole case in a child process."""
    from rnnrt.importers.onnx import proto
    model = _lstm_model()
    if where == "value_info":
        model.graph.value_info.append(helper.make_tensor_value_info("v", TensorProto.FLOAT,
                                                                    [2, -1]))
    else:
        getattr(model.graph, where)[0].type.tensor_type.shape.dim[1].dim_value = -1
    with pytest.raises(FormatError, match="declares axis 1 of size -1"):
        proto.refuse_negative_dims(model, "m.onnx")


def test_importer_itself_refuses_non_float32_weights():
    """Where the checker cannot see a type mismatch, the importer reads weights as float32
    only: it neither rounds float64 nor reads integers as weights."""
    from rnnrt.importers.onnx.importer import Importer
    model = _lstm_model()
    _float64_weights(model)          # what onnx.checker refuses: here it is skipped
    with pytest.raises(FormatError, match="the_lstm.*W must be float32.*got float64"):
        Importer(model, None).run()


@pytest.mark.parametrize("path", sorted(
    os.path.join(d, f) for d in ("tf2onnx", "torch")
    for f in os.listdir(os.path.join(FIXTURES, d)) if f.endswith(".onnx")))
def test_exported_fixtures_pass_the_checker(path):
    """What torch.onnx.export and tf2onnx really write passes the full check."""
    from rnnrt.importers.onnx.proto import check_model
    check_model(os.path.join(FIXTURES, path))


def test_declared_input_sizes_are_honoured(tmp_path):
    """X declared (5, 2, 2): rnnrt runs it at (5, 2, 2) only, as onnxruntime does; a model
    with symbolic axes still runs any batch and time."""
    model = _lstm_model((5, 2, 2))
    src = tmp_path / "fixed.onnx"
    src.write_bytes(model.SerializeToString())
    m = rnnrt.load(rnnrt.convert(src, tmp_path / "fixed.rnnrt"))
    assert m.inputs[0].shape == (5, 2, 2)
    x = np.random.default_rng(1).standard_normal((5, 2, 2)).astype(np.float32)
    np.testing.assert_allclose(m.run(x)[0], _session(model).run(None, {"X": x})[0],
                               rtol=1e-5, atol=1e-6)
    for shape, axis in (((6, 2, 2), "axis 0 \\(time\\) must be 5"),
                        ((5, 3, 2), "axis 1 \\(batch\\) must be 2")):
        bad = np.zeros(shape, np.float32)
        with pytest.raises(Exception, match="Got invalid dimensions for input: X"):
            _session(model).run(None, {"X": bad})
        with pytest.raises(InputError, match=f"input 'X': {axis}, the size the model declares"):
            m.run(bad)
    assert m.stream(batch_size=2).step(x[0]).shape == (1, 2, 3)
    with pytest.raises(InputError, match="'X' is declared with batch size 2; a stream of 3"):
        m.stream(batch_size=3)

    free = rnnrt.load(rnnrt.convert(_save(_lstm_model(), tmp_path), tmp_path / "free.rnnrt"))
    assert free.inputs[0].shape == (None, None, 2)
    assert free.run(np.zeros((7, 3, 2), np.float32))[0].shape == (7, 1, 3, 3)


def _save(model, tmp_path, name="m"):
    src = tmp_path / f"{name}.onnx"
    src.write_bytes(model.SerializeToString())
    return src


@pytest.mark.parametrize("declared", [[5, 2], [0, None, None], [None, None, 3],
                                      [True, None, None], [2 ** 31, None, None], "5,2,None"])
def test_declared_sizes_in_a_file_are_checked(declared):
    """A .rnnrt file's declared sizes (TensorInfo.declared): one per axis, positive ints on
    the batch and time axes only; anything else is FormatError at load."""
    from rnnrt import ir, packing, plan
    from rnnrt.importers.onnx import load_onnx
    doc, tensors = packing.graph_document(load_onnx(_lstm_model((5, 2, 2))))
    assert doc["inputs"][0]["declared"] == [5, 2, None]
    assert plan.build(doc, tensors).inputs[0].fixed == (5, 2, None)
    doc["inputs"][0]["declared"] = declared
    with pytest.raises(FormatError, match="graph input 'X': bad declared sizes"):
        plan.build(doc, tensors)
    assert ir.TensorInfo.from_dict({"name": "X", "shape": [None, 2], "dtype": "float32"}) \
        .declared is None
