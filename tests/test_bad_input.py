"""Bad input to run() and step(): a typed InputError whose message names what was expected and
what came; NaN propagates without a crash; float64 is converted. Sizes are chosen distinct
(7 features, 11 given, 13 tokens) so that a number found in a message means what it should."""

import numpy as np
import pytest

import rnnrt
import rnnrt.packing
from rnnrt import ir
from reference import run_reference
from strategies import make_recurrent

I, H, V = 7, 4, 13


def save_and_load(graph, tmp_path, name="m.rnnrt"):
    return rnnrt.load(rnnrt.packing.save(graph, tmp_path / name), num_threads=1)


@pytest.fixture
def seq_graph():
    layer = make_recurrent("rec", "lstm", "forward", H, I, np.random.default_rng(0), x="x",
                           y="y")
    return ir.Graph([ir.TensorInfo("x", (None, None, I), "float32")], [layer], ["y"])


@pytest.fixture
def seq_model(seq_graph, tmp_path):
    return save_and_load(seq_graph, tmp_path)


@pytest.fixture
def lens_model(tmp_path):
    layer = make_recurrent("rec", "gru", "forward", H, I, np.random.default_rng(1), x="x",
                           y="y", seq_lens="lengths")
    graph = ir.Graph([ir.TensorInfo("x", (None, None, I), "float32"),
                      ir.TensorInfo("lengths", (None,), "int32")], [layer], ["y"])
    return save_and_load(graph, tmp_path, "lens.rnnrt")


@pytest.fixture
def token_model(tmp_path):
    rng = np.random.default_rng(2)
    emb = ir.Embedding("emb", "ids", "e", rng.uniform(-1, 1, (V, 3)).astype(np.float32))
    layer = make_recurrent("rec", "gru", "forward", H, 3, rng, x="e", y="y")
    graph = ir.Graph([ir.TensorInfo("ids", (None, None), "int64")], [emb, layer], ["y"])
    return save_and_load(graph, tmp_path, "tokens.rnnrt")


def x_of(*shape, seed=3):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def error_of(call, *args, **kwargs) -> str:
    with pytest.raises(rnnrt.InputError) as err:
        call(*args, **kwargs)
    assert isinstance(err.value, ValueError)       # InputError is also a ValueError
    return str(err.value)


# ----------------------------------------------------------------------------- run()

@pytest.mark.parametrize("shape", [(5, I), (2, 3, 4, I), (I,)])
def test_wrong_rank(seq_model, shape):
    msg = error_of(seq_model.run, np.zeros(shape, np.float32))
    assert "3" in msg and str(shape) in msg and "'x'" in msg


def test_wrong_feature_count(seq_model):
    msg = error_of(seq_model.run, x_of(2, 3, 11))
    assert str(I) in msg and "11" in msg and "feature" in msg


@pytest.mark.parametrize("value,named", [
    (np.array([[["a"] * I]]), "U1"),
    (np.zeros((1, 2, I), np.complex64), "complex"),
    (np.array([[[None] * I]]), "object"),
])
def test_unconvertible_dtype(seq_model, value, named):
    msg = error_of(seq_model.run, value)
    assert named in msg and "float32" in msg


def test_ragged_nested_list(seq_model):
    error_of(seq_model.run, [[[0.0] * I], [[0.0] * I, [1.0] * I]])


def test_unknown_input_name(seq_model):
    msg = error_of(seq_model.run, {"x": x_of(1, 2, I), "bogus": x_of(1, 2, I)})
    assert "bogus" in msg and "'x'" in msg


def test_missing_input(lens_model):
    msg = error_of(lens_model.run, {"x": x_of(2, 3, I)})
    assert "lengths" in msg
    msg = error_of(lens_model.run, x_of(2, 3, I))          # one array for a 2-input model
    assert "2" in msg and "lengths" in msg


def test_seq_lens_out_of_range(lens_model):
    for bad in ([4, 1], [-1, 2]):
        msg = error_of(lens_model.run, {"x": x_of(2, 3, I),
                                        "lengths": np.array(bad, np.int32)})
        assert "3" in msg and "lengths" in msg


def test_batch_mismatch_between_inputs(lens_model):
    msg = error_of(lens_model.run, {"x": x_of(2, 3, I), "lengths": np.array([1, 2, 3])})
    assert "2" in msg and "3" in msg


@pytest.mark.parametrize("bad", [-1, V, V + 100])
def test_token_id_out_of_range(token_model, bad):
    ids = np.array([[1, 2, bad], [0, 1, 2]], np.int64)
    msg = error_of(token_model.run, ids)
    assert str(bad) in msg and str(V) in msg


def test_float_token_ids_are_refused(token_model):
    msg = error_of(token_model.run, np.array([[1.5, 2.0]]))
    assert "int" in msg and "float64" in msg


@pytest.mark.parametrize("shape,named", [((0, 3, I), "batch"), ((2, 0, I), "time")])
def test_empty_batch_or_time(seq_model, shape, named):
    msg = error_of(seq_model.run, np.zeros(shape, np.float32))
    assert named in msg and "0" in msg


def test_float64_and_integer_input_are_converted(seq_model, seq_graph):
    x = x_of(2, 5, I)
    want = seq_model.run(x)[0]
    np.testing.assert_array_equal(seq_model.run(x.astype(np.float64))[0], want)
    np.testing.assert_array_equal(seq_model.run(x.tolist())[0], want)
    ints = np.arange(2 * 5 * I).reshape(2, 5, I) % 3 - 1
    np.testing.assert_allclose(seq_model.run(ints)[0],
                               run_reference(seq_graph, {"x": ints})[0], atol=1e-5)


def test_non_contiguous_input(seq_model):
    x = x_of(5, 4, I)
    np.testing.assert_array_equal(seq_model.run(x[::2, :, :])[0],
                                  seq_model.run(np.ascontiguousarray(x[::2]))[0])
    xt = np.ascontiguousarray(x.transpose(1, 0, 2)).transpose(1, 0, 2)   # Fortran-ish view
    np.testing.assert_array_equal(seq_model.run(xt)[0], seq_model.run(x)[0])


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("threads", [1, 2])
def test_nan_propagates_within_its_row(cell, threads, tmp_path):
    layer = make_recurrent("rec", cell, "forward", H, I, np.random.default_rng(4), x="x",
                           y="y", h_n="h_n")
    graph = ir.Graph([ir.TensorInfo("x", (None, None, I), "float32")], [layer], ["y", "h_n"])
    model = rnnrt.load(rnnrt.packing.save(graph, tmp_path / "m.rnnrt"), num_threads=threads)
    x = x_of(4, 5, I)
    clean_y, clean_h = model.run(x)
    x[1, 2, 3] = np.nan
    y, h_n = model.run(x)
    assert np.isnan(y[1, 2:]).all() and np.isnan(h_n[0, 1]).all()
    assert np.isfinite(y[1, :2]).all()
    others = [0, 2, 3]
    np.testing.assert_allclose(y[others], clean_y[others], rtol=0, atol=1e-6)
    np.testing.assert_allclose(h_n[:, others], clean_h[:, others], rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------- step()

def test_step_wrong_rank_features_and_dtype(seq_model):
    s = seq_model.stream(batch_size=2)
    msg = error_of(s.step, np.zeros((2, 1, I), np.float32))
    assert "(2, 1, 7)" in msg
    msg = error_of(s.step, np.zeros((2, 11), np.float32))
    assert str(I) in msg and "11" in msg
    msg = error_of(s.step, np.zeros(I, np.float32))     # (features,) only for batch_size 1
    assert str((I,)) in msg
    msg = error_of(s.step, np.zeros((3, I), np.float32))
    assert "2" in msg and "3" in msg
    msg = error_of(s.step, np.array([["a"] * I] * 2))
    assert "U1" in msg
    msg = error_of(s.step, {"bogus": np.zeros((2, I), np.float32)})
    assert "bogus" in msg
    msg = error_of(s.step, np.zeros((2, I), np.float32), out=np.zeros((2, H + 1), np.float32))
    assert str((2, H)) in msg
    s.step(np.zeros((2, I)))                             # float64 is fine
    s.step(np.zeros((2, I), np.float32), out=np.zeros((2, H), np.float32))


@pytest.mark.parametrize("bad", [-1, V])
def test_step_token_id_out_of_range(token_model, bad):
    s = token_model.stream(batch_size=2)
    msg = error_of(s.step, np.array([3, bad], np.int64))
    assert str(bad) in msg and str(V) in msg
    s.step(np.array([3, 4]))                              # the stream is still usable


def test_step_nan_then_reset(seq_model):
    s = seq_model.stream(batch_size=2)
    x = np.ones((2, I), np.float32)
    x[0, 0] = np.nan
    out = s.step(x)
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()
    out = s.step(np.ones((2, I), np.float32))
    assert np.isnan(out[0]).all()                         # the state carries the NaN
    s.reset()
    assert np.isfinite(s.step(np.ones((2, I), np.float32))).all()
