"""The runtime defects of issue 16 (a fuzz campaign and API misuse on 9ef08bd), one test or
more each: memory safety of the step fast path and of out=, graphs the plan must refuse
(dynamic axes, dangling or unknown parameters, sizes no kernel takes), integer inputs that
would wrap, sizes beyond the machine, thread counts, the final state of a row of length 0
(as onnxruntime computes it) and the sigmoid / tanh limits."""

import os
import subprocess
import sys

import numpy as np
import pytest

import rnnrt
import rnnrt.generate
import rnnrt.pool
from rnnrt import fileformat, ir, packing
from strategies import make_recurrent

I, H = 3, 4


def save_and_load(graph, tmp_path, name="m.rnnrt", **options):
    return rnnrt.load(packing.save(graph, tmp_path / name), num_threads=1, **options)


def load_doc(tmp_path, doc, tensors, name="m.rnnrt"):
    """Load a graph document written as is, with valid checksums (what a tampering tool that
    recomputes them would write)."""
    return rnnrt.load(fileformat.write(str(tmp_path / name), doc, tensors, {}), num_threads=1)


def format_error(tmp_path, doc, tensors) -> str:
    with pytest.raises(rnnrt.FormatError) as err:
        load_doc(tmp_path, doc, tensors)
    return str(err.value)


def input_error(call, *args, **kwargs) -> str:
    with pytest.raises(rnnrt.InputError) as err:
        call(*args, **kwargs)
    return str(err.value)


def lstm_graph(rng=None, **options):
    rng = rng or np.random.default_rng(0)
    layer = make_recurrent("rec", "lstm", "forward", H, I, rng, x="x", y="y", **options)
    inputs = [ir.TensorInfo("x", (None, None, I), "float32")]
    if "seq_lens" in options:
        inputs.append(ir.TensorInfo("lens", (None,), "int32"))
    return ir.Graph(inputs, [layer], ["y"])


def token_graph():
    rng = np.random.default_rng(2)
    emb = ir.Embedding("emb", "ids", "e", rng.uniform(-1, 1, (11, I)).astype(np.float32))
    layer = make_recurrent("rec", "gru", "forward", H, I, rng, x="e", y="y")
    return ir.Graph([ir.TensorInfo("ids", (None, None), "int64")], [emb, layer], ["y"])


def x_of(*shape, seed=3):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


# ----------------------------------------------------------------- 1: a uint8 first output

def test_step_of_a_model_whose_first_output_is_a_mask_returns_the_mask(tmp_path):
    """The fast path copied 4 bytes per element of a uint8 output (heap over-read) and
    returned them as floats."""
    rng = np.random.default_rng(0)
    mask = ir.Masking("masking", "x", "xm", "mask", 0.0)
    layer = make_recurrent("rec", "lstm", "forward", H, I, rng, x="xm", y="y", mask="mask")
    graph = ir.Graph([ir.TensorInfo("x", (None, None, I), "float32")], [mask, layer],
                     ["mask", "y"])
    model = save_and_load(graph, tmp_path)
    x = x_of(2, 5, I)
    x[0, 1] = 0.0       # a masked step
    x[1, 3] = 0.0
    want = model.run(x)[0]
    assert want.dtype == np.uint8
    batch, single = model.stream(batch_size=2), model.stream()
    pool = model.stream_pool(2)
    ids = [pool.open(), pool.open()]
    for t in range(5):
        got = batch.step(x[:, t])
        assert got.dtype == np.uint8 and np.array_equal(got, want[:, t]), t
        got = single.step(x[0, t])
        assert got.dtype == np.uint8 and got.shape == () and got == want[0, t], t
        got = pool.step(ids, x[:, t])
        assert got.dtype == np.uint8 and np.array_equal(got, want[:, t]), t
    out = np.empty(2, np.uint8)
    assert batch.step(x[:, 0], out=out) is out
    assert "uint8" in input_error(batch.step, x[:, 0], out=np.empty(2, np.float32))


# ----------------------------------------------------------------- 2: out= must be writeable

@pytest.fixture
def float_model(tmp_path):
    return save_and_load(lstm_graph(), tmp_path)


@pytest.fixture
def token_model(tmp_path):
    return save_and_load(token_graph(), tmp_path, "tokens.rnnrt")


def test_step_into_a_view_of_immutable_bytes_is_refused(float_model, token_model):
    frozen = bytes(4 * H)
    for model, x in ((float_model, x_of(1, I)), (token_model, np.array([3]))):  # fast, general
        out = np.frombuffer(frozen, np.float32).reshape(1, H)
        msg = input_error(model.stream().step, x, out=out)
        assert "read-only" in msg and "writeable" in msg and f"(1, {H})" in msg
        assert frozen == bytes(4 * H)
    pool = token_model.stream_pool(1)
    sid = pool.open()
    out = np.frombuffer(bytes(4 * H), np.float32).reshape(1, H)
    assert "read-only" in input_error(pool.step, [sid], np.array([3]), out=out)


@pytest.mark.parametrize("path", ["fast", "general"])
def test_step_out_of_another_dtype_order_or_shape_is_refused(float_model, token_model, path):
    model, x = (float_model, x_of(1, I)) if path == "fast" else (token_model, np.array([3]))
    s = model.stream()
    cases = {"non-contiguous": np.empty((1, 2 * H), np.float32)[:, ::2],
             ">f4": np.empty((1, H), ">f4"), "float64": np.empty((1, H), np.float64),
             f"shape ({H},)": np.empty(H, np.float32)}
    for what, out in cases.items():
        msg = input_error(s.step, x, out=out)
        assert what in msg and f"float32 array of shape (1, {H})" in msg, msg
    msg = input_error(s.step, x, out=[[0.0] * H])
    assert "list" in msg
    good = np.empty((1, H), np.float32)
    assert s.step(x, out=good) is good


def test_step_into_a_read_only_mmap_is_refused(float_model, tmp_path):
    """Was a segfault: the fast path wrote into the read-only page (run in a child, so that
    a crash fails this test instead of ending the run)."""
    backing = tmp_path / "out.bin"
    backing.write_bytes(bytes(4 * H))
    code = f"""
import mmap, numpy as np, rnnrt
model = rnnrt.load({float_model.path!r}, num_threads=1)
with open({str(backing)!r}, "rb") as f:
    out = np.frombuffer(mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ), np.float32)
try:
    model.stream().step(np.ones({I}, np.float32), out=out)
except rnnrt.InputError as e:
    print("refused:", e)
"""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, cwd=root)
    assert r.returncode == 0, f"child died ({r.returncode}): {r.stderr[-2000:]}"
    assert "refused:" in r.stdout and "read-only" in r.stdout, r.stdout
    assert backing.read_bytes() == bytes(4 * H)


# ----------------------------------------------------------------- 5: dynamic axes

def dense_doc(shape):
    """A Dense layer over a graph input of `shape`, as a document and its tensors."""
    rng = np.random.default_rng(0)
    dense = ir.Dense("dense", "x", "y", rng.uniform(-1, 1, (I, 2)).astype(np.float32))
    doc, tensors = packing.graph_document(
        ir.Graph([ir.TensorInfo("x", (None, None, I), "float32")], [dense], ["y"]))
    doc["inputs"][0]["shape"] = list(shape)
    return doc, tensors


@pytest.mark.parametrize("shape", [[None, None, None, I], [None, 2, None, I],
                                   ["n", "t", "k", I], [2, None, None, I],
                                   [None, None, 3, "time", I]])
def test_graph_input_with_a_second_batch_axis_is_refused(tmp_path, shape):
    """run() left most of the output unwritten: the third dynamic axis became a second batch
    axis that the row-wise kernels do not index (or, named "time", a second time axis: the
    fuzz campaign's poisoned-run mismatch)."""
    msg = format_error(tmp_path, *dense_doc(shape))
    assert "'x'" in msg and "dynamic" in msg and str(shape) in msg


def test_convert_refuses_a_graph_with_a_second_batch_axis(tmp_path):
    """The writer runs the loader's checks: no file that cannot load is ever written."""
    rng = np.random.default_rng(0)
    dense = ir.Dense("dense", "x", "y", rng.uniform(-1, 1, (I, 2)).astype(np.float32))
    graph = ir.Graph([ir.TensorInfo("x", (None, None, None, I), "float32")], [dense], ["y"])
    with pytest.raises(rnnrt.FormatError, match="dynamic"):
        packing.save(graph, tmp_path / "m.rnnrt")
    assert not (tmp_path / "m.rnnrt").exists()


def test_onnx_input_with_a_third_dynamic_axis_is_refused_at_convert(tmp_path):
    """The ONNX importer names every dynamic axis batch or time, or refuses the model; what
    reaches the writer is checked again there (the test above)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    consts = {"W": np.ones((1, 4 * H, I), np.float32), "R": np.ones((1, 4 * H, H), np.float32),
              "start": np.array([0]), "stop": np.array([1]), "axis": np.array([2])}
    nodes = [helper.make_node("Slice", ["x", "start", "stop", "axis"], ["x1"]),
             helper.make_node("Squeeze", ["x1", "axis"], ["x2"]),
             helper.make_node("LSTM", ["x2", "W", "R"], ["y", "h"], hidden_size=H)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["t", "n", "k", I])],
        [helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, "n", H])],
        [numpy_helper.from_array(v, k) for k, v in consts.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]),
              str(tmp_path / "m.onnx"))
    with pytest.raises(rnnrt.UnsupportedModelError, match="run-time axis"):
        rnnrt.convert(tmp_path / "m.onnx", tmp_path / "m.rnnrt")
    assert not (tmp_path / "m.rnnrt").exists()


# ----------------------------------------------------------------- 6: every parameter read

def stacked_doc():
    """GRU with a constant initial state and lengths, and an LSTM with a constant c0."""
    rng = np.random.default_rng(1)
    u = lambda *shape: rng.uniform(-0.5, 0.5, shape).astype(np.float32)    # noqa: E731
    g = make_recurrent("g", "gru", "forward", H, I, rng, x="x", y="y0", h0_value=u(1, 2, H),
                       seq_lens_value=np.array([3, 1]))
    l = make_recurrent("l", "lstm", "forward", H, H, rng, x="y0", y="y", c0_value=u(1, 2, H))
    return packing.graph_document(ir.Graph([ir.TensorInfo("x", (None, None, I), "float32")],
                                           [g, l], ["y0", "y"]))


def test_stacked_doc_loads_and_uses_its_constants(tmp_path):
    doc, tensors = stacked_doc()
    y0 = load_doc(tmp_path, doc, tensors).run(x_of(2, 3, I))[0]
    assert np.all(y0[1, 1:] == 0) and np.all(y0[1, 0] != 0)    # row 1's constant length 1


@pytest.mark.parametrize("layer, role", [(0, "h0_value"), (0, "seq_lens_value"),
                                         (1, "c0_value"), (1, "Rt"), (1, "Wt"), (0, "P")])
def test_parameter_naming_a_missing_tensor_is_refused(tmp_path, layer, role):
    """h0_value, c0_value, seq_lens_value and a v1 Rt naming no tensor were ignored: the
    model ran from zeros or full lengths."""
    doc, tensors = stacked_doc()
    doc["layers"][layer]["params"][role] = "gone"
    msg = format_error(tmp_path, doc, tensors)
    assert repr(doc["layers"][layer]["name"]) in msg and repr(role) in msg and "'gone'" in msg


def test_parameter_naming_a_non_string_is_refused(tmp_path):
    doc, tensors = stacked_doc()
    doc["layers"][0]["params"]["h0_value"] = 7
    assert "'h0_value'" in format_error(tmp_path, doc, tensors)


def test_unknown_parameter_roles_are_refused(tmp_path):
    doc, tensors = stacked_doc()
    doc["layers"][1]["params"]["h0_valu"] = doc["layers"][0]["params"]["h0_value"]
    msg = format_error(tmp_path, doc, tensors)
    assert "'l'" in msg and "unknown parameter role" in msg and "h0_valu" in msg
    doc, tensors = dense_doc([None, None, I])
    doc["layers"][0]["params"]["table"] = doc["layers"][0]["params"]["kernel"]
    assert "'table'" in format_error(tmp_path, doc, tensors)


def test_v1_weights_beside_panels_are_refused(tmp_path):
    doc, tensors = stacked_doc()
    tensors["l.Rt"] = np.zeros((1, H, 4 * H), np.float32)
    doc["layers"][1]["params"]["Rt"] = "l.Rt"
    assert "Wt" in format_error(tmp_path, doc, tensors)


# ----------------------------------------------------------------- 7: integers that wrap

def test_sequence_lengths_beyond_int32_are_refused(tmp_path):
    """2**32 + 1 was cast to int32 and ran as length 1."""
    model = save_and_load(lstm_graph(seq_lens="lens"), tmp_path)
    x = x_of(2, 3, I)
    for lens in (np.array([2 ** 32 + 1, 2]), np.array([-2 ** 32 + 1, 2]),
                 np.array([2 ** 63, 2], np.uint64)):
        msg = input_error(model.run, {"x": x, "lens": lens})
        assert "'lens'" in msg and "int32" in msg and str(lens.max()) in msg
    model.run({"x": x, "lens": np.array([3, 2], np.int64)})     # values that fit are fine


def test_token_ids_beyond_int64_are_refused(token_model):
    ids = np.array([[2 ** 63 + 1, 1]], np.uint64)
    msg = input_error(token_model.run, ids)
    assert "'ids'" in msg and "int64" in msg and str(2 ** 63 + 1) in msg
    msg = input_error(token_model.stream_pool(1).step, [0], np.array([2 ** 63 + 1], np.uint64))
    assert "int64" in msg


# ----------------------------------------------------------------- 8: typed errors from files

@pytest.mark.parametrize("dim", [2 ** 31, 2 ** 40, True, -1, 2.0])
def test_graph_input_dimension_that_no_kernel_takes_is_refused(tmp_path, dim):
    """2**31 was an OverflowError at load; JSON true a TypeError."""
    doc, tensors = dense_doc([None, None, dim])
    msg = format_error(tmp_path, doc, tensors)
    assert "'x'" in msg and "2147483647" in msg


@pytest.mark.parametrize("kind", ["Masking", "TimeStep"])
def test_row_layer_over_a_dynamic_feature_axis_is_refused(tmp_path, kind):
    """A TypeError from the engine when the feature axis was symbolic."""
    layer = ir.Masking("m", "x", "y", "mask") if kind == "Masking" else \
        ir.TimeStep("m", "x", "y")
    doc, tensors = packing.graph_document(
        ir.Graph([ir.TensorInfo("x", (None, None, I), "float32")], [layer], ["y"]))
    doc["inputs"][0]["shape"] = [None, None, None]
    assert "'x'" in format_error(tmp_path, doc, tensors)


def test_graph_input_whose_sizes_overflow_beside_a_zero_axis_is_refused(tmp_path):
    """(2**31 - 1, 10**9, 0, 2) holds no element, but NumPy refuses to make it (its other
    axes overflow): stream() raised ValueError (fuzz campaign)."""
    rng = np.random.default_rng(1)
    g = make_recurrent("g", "gru", "forward", H, I, rng, x="x", y="y")
    doc, tensors = packing.graph_document(
        ir.Graph([ir.TensorInfo("x", (None, None, I), "float32"),
                  ir.TensorInfo("extra", (4, 5, 0, 2), "int64")], [g], ["y"]))
    doc["inputs"][1]["shape"] = [2 ** 31 - 1, 10 ** 9, 0, 2]
    msg = format_error(tmp_path, doc, tensors)
    assert "one sequence of one step" in msg and "memory" in msg


def test_graph_too_big_for_this_machine_is_refused_at_load(tmp_path):
    """Fixed axes of a stacked state input made stream() ask NumPy for 48 GiB."""
    rng = np.random.default_rng(1)
    first = ir.Slice("first", "h0", "h0_0", axis=0, start=0, stop=1)
    narrow = ir.Slice("narrow", "h0_0", "h0_1", axis=2, start=0, stop=H)
    g = make_recurrent("g", "gru", "forward", H, I, rng, x="x", h0="h0_1", y="y")
    doc, tensors = packing.graph_document(ir.Graph(
        [ir.TensorInfo("x", (None, None, I), "float32"),
         ir.TensorInfo("h0", (2, None, H), "float32")], [first, narrow, g], ["y"]))
    load_doc(tmp_path, doc, tensors)
    doc["inputs"][1]["shape"] = [2 ** 31 - 1, None, 2 ** 31 - 1]
    msg = format_error(tmp_path, doc, tensors)
    assert "one sequence of one step" in msg and "GiB" in msg and "memory" in msg


def test_pool_of_a_model_whose_first_output_has_no_batch_axis_is_refused(tmp_path):
    """A ValueError from list.index."""
    rng = np.random.default_rng(1)
    part = ir.Slice("part", "k", "k2", axis=0, start=0, stop=2)
    g = make_recurrent("g", "gru", "forward", H, I, rng, x="x", y="y")
    model = save_and_load(ir.Graph([ir.TensorInfo("x", (None, None, I), "float32"),
                                    ir.TensorInfo("k", (4,), "float32")], [part, g],
                                   ["k2", "y"]), tmp_path)
    msg = input_error(model.stream_pool)
    assert "'k2'" in msg and "batch axis" in msg


def test_unaligned_inputs_reach_the_engine_aligned(float_model):
    """A float32 view at an odd byte offset went to C as it was: a misaligned load there
    (UBSan under make test-asan, in the Dask tests whose workers get such views)."""
    x = x_of(2, 5, I)
    raw = bytearray(x.nbytes + 1)
    odd = np.frombuffer(raw, np.float32, count=x.size, offset=1).reshape(x.shape)
    odd[...] = x
    assert not odd.flags.aligned
    want = float_model.run(x)
    for got, w in zip(float_model.run(odd), want):
        np.testing.assert_array_equal(got, w)
    assert rnnrt.model._as_array("x", odd, "float32").flags.aligned


def test_two_layers_of_one_name_are_refused(tmp_path):
    """Two recurrent layers named alike shared one stream-state key: a resumed snapshot
    stepped differently, and stream() raised ValueError (fuzz corpus, 'duplicate layer
    names')."""
    rng = np.random.default_rng(2)
    a = make_recurrent("r", "gru", "forward", H, I, rng, x="x", y="y1")
    b = make_recurrent("s", "gru", "forward", H, H, rng, x="y1", y="y2")
    mf = fileformat.read(packing.save(ir.Graph([ir.TensorInfo("x", (None, None, I), "float32")],
                                               [a, b], ["y2"]), tmp_path / "ok.rnnrt"))
    doc = mf.graph
    doc["layers"][1]["name"] = "r"
    assert "two layers are named 'r'" in format_error(tmp_path, doc, dict(mf.tensors))


def test_pool_of_a_model_with_an_input_without_batch_axis_is_refused(tmp_path):
    """A ValueError from reshaping the (3, 7) input's buffer for two streams (fuzz corpus
    rnnrt-pool-valueerror-...-b09d15d8)."""
    rng = np.random.default_rng(1)
    g = make_recurrent("g", "gru", "forward", H, I, rng, x="x", y="y")
    model = save_and_load(ir.Graph([ir.TensorInfo("x", (None, None, I), "float32"),
                                    ir.TensorInfo("extra", (3, 7), "int64")], [g], ["y"]),
                          tmp_path)
    msg = input_error(model.stream_pool)
    assert "'extra'" in msg and "batch axis" in msg and "(3, 7)" in msg


# ----------------------------------------------------------------- 10: sizes and threads

def wide_graph(hidden=256):
    rng = np.random.default_rng(0)
    layer = make_recurrent("rec", "lstm", "forward", hidden, I, rng, x="x", y="y")
    return ir.Graph([ir.TensorInfo("x", (None, None, I), "float32")], [layer], ["y"])


def test_sizes_beyond_this_machine_are_refused_before_allocating(tmp_path):
    """stream(batch_size=10**9) asked NumPy for ~1 TiB; here each row needs ~4 KiB, so
    2**31 - 1 rows (the most a kernel takes) need ~8 TiB, more than any test machine has."""
    model = save_and_load(wide_graph(), tmp_path)
    msg = input_error(model.stream, batch_size=2 ** 31 - 1)
    assert "a stream of batch 2147483647" in msg and "GiB" in msg and "memory" in msg
    msg = input_error(model.stream, batch_size=10 ** 10)
    assert "2147483647" in msg and "batch" in msg
    msg = input_error(model.stream_pool, 2 ** 31 - 1)
    assert "pool of capacity 2147483647" in msg and "memory" in msg


def test_too_little_free_memory_now_is_an_input_error(tmp_path, monkeypatch):
    """Sizes that fit the machine can still find its memory taken (a 22 GiB stream on this
    24 GiB machine raised MemoryError in the fuzz campaign): InputError saying so, and a pool
    that could not grow or step is left as it was."""
    model = save_and_load(wide_graph(64), tmp_path)
    pool = model.stream_pool(1)
    ids = [pool.open()]
    x = x_of(1, 1, I)[:, 0]

    def no_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 22.4 GiB")
    for module in (rnnrt.model, rnnrt.pool, rnnrt.generate):
        monkeypatch.setattr(module, "_new_buffer", no_memory)
    for call, what in ((lambda: model.stream(), "a stream of batch 1"),
                       (lambda: model.run(x_of(1, 3, I)), "run() on a batch of 1"),
                       (lambda: pool.step(ids, x), "a pool step of 1 streams")):
        msg = input_error(call)
        assert msg.startswith(what) and "too little free memory now" in msg, msg
    monkeypatch.setattr(rnnrt.pool.np, "empty_like", no_memory)
    msg = input_error(pool._grow, 4)
    assert "a stream pool of capacity 4" in msg and "too little free memory" in msg
    monkeypatch.undo()
    assert pool.capacity == 1 and pool.step(ids, x).shape == (1, 64)


def test_pool_growth_beyond_this_machine_is_refused(tmp_path, monkeypatch):
    model = save_and_load(wide_graph(), tmp_path)
    pool = model.stream_pool(2)
    pool.open(), pool.open()
    from rnnrt import limits
    monkeypatch.setattr(limits, "memory_limit", lambda: 40_000)   # fits 2 streams, not 4
    msg = input_error(pool.open)
    assert "pool of capacity 4" in msg and "memory" in msg
    assert pool.capacity == 2 and len(pool) == 2


def test_run_output_beyond_this_machine_is_refused(tmp_path):
    """A 1 MiB table and 8 MiB of ids ask for a 4 TiB output."""
    E, T = 2 ** 18, 2 ** 20
    emb = ir.Embedding("emb", "ids", "e", np.zeros((1, E), np.float32))
    graph = ir.Graph([ir.TensorInfo("ids", (None, None), "int64")], [emb], ["e"])
    model = save_and_load(graph, tmp_path)
    msg = input_error(model.run, np.zeros((1, T), np.int64))
    assert "run() on a batch of 1 and time 1048576" in msg and "memory" in msg


def test_generate_steps_beyond_this_machine_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    layer = make_recurrent("rec", "gru", "forward", I, I, rng, x="x", y="y")
    model = save_and_load(ir.Graph([ir.TensorInfo("x", (None, None, I), "float32")], [layer],
                                   ["y"]), tmp_path)
    msg = input_error(model.generate, x_of(2, I), 2 ** 40)
    assert "generate() of 1099511627776 steps" in msg and "memory" in msg
    assert model.generate(x_of(2, I), 3).shape == (3, I)


@pytest.mark.parametrize("bad", [True, False, 0, -1, 2.0, "2", 10 ** 5])
def test_bad_thread_counts_are_refused(float_model, bad):
    msg = input_error(rnnrt.load, float_model.path, num_threads=bad)
    assert "num_threads" in msg and (repr(bad) in msg or str(bad) in msg)


def test_thread_counts_up_to_the_cap_are_taken(float_model):
    from rnnrt.model import max_threads
    cap = max_threads()
    assert rnnrt.load(float_model.path, num_threads=cap).num_threads == cap
    assert rnnrt.load(float_model.path, num_threads=np.int64(2)).num_threads == 2
    assert "num_threads must lie in 1.." + str(cap) in input_error(
        rnnrt.load, float_model.path, num_threads=cap + 1)
    assert 1 <= rnnrt.load(float_model.path).num_threads <= cap


# ----------------------------------------------------------------- 12: rows of length 0

ORT_OPS = [("LSTM", d) for d in ("forward", "reverse", "bidirectional")] + \
          [("GRU", "forward"), ("RNN", "bidirectional")]


@pytest.mark.parametrize("op, direction", ORT_OPS)
def test_row_of_length_zero_ends_as_onnxruntime_ends_it(tmp_path, op, direction):
    """Y_h / Y_c of a row of length 0 were its initial state; onnxruntime gives zeros. Batch
    9 with 2 threads also takes the step-wise input projection (8 rows or more)."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(5)
    G = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    D = 2 if direction == "bidirectional" else 1
    T, B = 4, 9
    weights = {"W": rng.standard_normal((D, G * H, I)), "R": rng.standard_normal((D, G * H, H)),
               "B": rng.standard_normal((D, 2 * G * H))}
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()]
    states = ["h0", "c0"] if op == "LSTM" else ["h0"]
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "N", I]),
              helper.make_tensor_value_info("lens", TensorProto.INT32, ["N"])]
    inputs += [helper.make_tensor_value_info(s, TensorProto.FLOAT, [D, "N", H]) for s in states]
    outputs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    node = helper.make_node(op, ["X", "W", "R", "B", "lens"] + states, outputs, hidden_size=H,
                            direction=direction)
    shapes = {"Y": ["T", D, "N", H], "Y_h": [D, "N", H], "Y_c": [D, "N", H]}
    graph = helper.make_graph([node], "g", inputs,
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, shapes[o])
                               for o in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "m.onnx"))
    feeds = {"X": x_of(T, B, I), "lens": np.array([0, 2, 4, 0, 1, 3, 4, 0, 2], np.int32)}
    feeds.update({s: rng.standard_normal((D, B, H)).astype(np.float32) for s in states})
    want = ort.InferenceSession(str(tmp_path / "m.onnx"),
                                providers=["CPUExecutionProvider"]).run(None, feeds)
    rnnrt.convert(tmp_path / "m.onnx", tmp_path / "m.rnnrt")
    got = rnnrt.load(tmp_path / "m.rnnrt", num_threads=2).run(feeds)
    for name, w, g in zip(outputs, want, got):
        assert np.abs(w - g).max() <= 1e-5, name
    assert np.all(got[1][:, [0, 3, 7]] == 0)


def test_empty_state_is_an_ir_option(tmp_path):
    """"initial" (Keras, PyTorch, and files written before the option) keeps a length-0
    row's initial state; "zero" (ONNX) ends it in zeros; other values are refused."""
    rng = np.random.default_rng(3)
    h0 = rng.uniform(-1, 1, (1, 2, H)).astype(np.float32)
    feeds = {"x": x_of(2, 3, I)}
    results = {}
    for empty in ir.EMPTY_STATES:
        layer = make_recurrent("rec", "gru", "forward", H, I, np.random.default_rng(0),
                               x="x", h_n="h", h0_value=h0, seq_lens_value=np.array([0, 3]),
                               empty_state=empty)
        graph = ir.Graph([ir.TensorInfo("x", (None, None, I), "float32")], [layer], ["h"])
        results[empty] = save_and_load(graph, tmp_path, f"{empty}.rnnrt").run(feeds)[0]
    assert np.array_equal(results["initial"][0, 0], h0[0, 0])
    assert np.all(results["zero"][0, 0] == 0)
    assert np.array_equal(results["zero"][0, 1], results["initial"][0, 1])
    doc, tensors = packing.graph_document(graph)
    del doc["layers"][0]["attrs"]["empty_state"]           # a file from before the option
    assert np.array_equal(load_doc(tmp_path, doc, tensors).run(feeds)[0], results["initial"])
    doc["layers"][0]["attrs"]["empty_state"] = "zeros"
    assert "empty_state" in format_error(tmp_path, doc, tensors)


# ----------------------------------------------------------------- 13: sigmoid, tanh limits

EXTREMES = np.array([-np.inf, -1e4, -100, -89, -88.8, -88.5, -88, -87, -20, -1, 0, 1, 20, 87,
                     88, 88.5, 88.8, 89, 100, 1e4, np.inf, np.nan], np.float32)


def at_extremes(values):
    """values[k] is f(EXTREMES[k]): the function x -> f(x) for x among them."""
    return lambda x: float(values[np.flatnonzero(EXTREMES == np.float32(x))[0]])


def f32(values):
    return np.asarray(values, np.float64).astype(np.float32).astype(np.float64)


def sigmoid64(x):
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x.astype(np.float64)))


def assert_matches(got, want, what):
    got, want = np.asarray(got, np.float64), f32(want)
    assert np.array_equal(np.isnan(got), np.isnan(want)), what
    ok = ~np.isnan(want)
    err = np.abs(got[ok] - want[ok])
    assert err.max() <= 1e-6, (what, float(err.max()))


def run_activation(tmp_path, name, x):
    layer = ir.Activation("act", "x", "y", ir.Act.of(name))
    g = ir.Graph([ir.TensorInfo("x", (None, x.size), "float32")], [layer], ["y"])
    return save_and_load(g, tmp_path, f"{name}.rnnrt").run(x[None])[0][0]


def test_sigmoid_and_tanh_reach_their_limits(tmp_path):
    """The sigmoid stopped at 6.1e-39 for inputs under -88 (e^x clamped at e^88)."""
    sig = run_activation(tmp_path, "sigmoid", EXTREMES)
    assert_matches(sig, sigmoid64(EXTREMES), "sigmoid")
    at = at_extremes(sig)
    assert at(-np.inf) == 0.0 and at(np.inf) == 1.0 and at(-1e4) == 0.0 and at(1e4) == 1.0
    assert at(-100) <= 1e-43        # float32's own value is 3.8e-44 (a subnormal)
    assert at(-88.8) <= 3e-39 and at(-88) == pytest.approx(6.05e-39, rel=1e-3)
    th = run_activation(tmp_path, "tanh", EXTREMES)
    assert_matches(th, np.tanh(EXTREMES.astype(np.float64)), "tanh")
    assert th[0] == -1.0 and th[-2] == 1.0 and np.isnan(th[-1])


def test_fused_lstm_cell_reaches_the_limits(tmp_path):
    """The fused cell pass (cells.c) at the same inputs: one unit whose input gate sees x,
    output and candidate gates -x (weights +-1, so an infinite x makes no 0 * inf), one step
    from a zero state: c = sigmoid(x) tanh(-x), h = sigmoid(-x) tanh(c)."""
    n = EXTREMES.size
    W = np.zeros((1, 4, 1), np.float32)
    W[0, :, 0] = [1, -1, 1, -1]                          # gates i, o, f, c
    layer = ir.Recurrent("rec", "lstm", "forward", 1, 1, "x", W, np.zeros((1, 4, 1), np.float32),
                         np.zeros((1, 4), np.float32), np.zeros((1, 4), np.float32),
                         activations=[[ir.Act.of(a) for a in ir.DEFAULT_ACTIVATIONS["lstm"]]],
                         h_n="h", c_n="c")
    graph = ir.Graph([ir.TensorInfo("x", (None, None, 1), "float32")], [layer], ["h", "c"])
    h, c = save_and_load(graph, tmp_path).run(EXTREMES.reshape(n, 1, 1))
    x = EXTREMES.astype(np.float64)
    want_c = f32(sigmoid64(x)) * f32(np.tanh(-x))
    assert_matches(c[0, :, 0], want_c, "c")
    assert_matches(h[0, :, 0], f32(sigmoid64(-x)) * np.tanh(f32(want_c)), "h")
    at = at_extremes(c[0, :, 0])
    assert at(-np.inf) == 0.0 and at(-100) <= 1e-43 and at(np.inf) == -1.0
