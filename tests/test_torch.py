"""PyTorch import (rnnrt/importers/torch.py): golden fixtures, streaming, errors.

The fixtures in tests/fixtures/torch/ were made by tools/make_torch_fixtures.py from real
torch modules (eval(), no_grad): the expected outputs are torch's own, so these tests need
no torch. The last test builds random modules live and skips when torch is absent.
"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import rnnrt
from rnnrt.errors import FormatError, InputError, UnsupportedModelError
from rnnrt.importers.torch import load_torch
from reference import run_reference

FIX = Path(__file__).resolve().parent / "fixtures" / "torch"
MANIFEST = json.loads((FIX / "manifest.json").read_text())["fixtures"]
BY_NAME = {f["name"]: f for f in MANIFEST}
NAMES = sorted(BY_NAME)
FORWARD_ONLY = [n for n in NAMES if not BY_NAME[n]["bidirectional"]]
BIDIRECTIONAL = [n for n in NAMES if BY_NAME[n]["bidirectional"]]
TOL = 1e-5


def weights_path(name):
    return FIX / f"{name}.weights.npz"


def spec_path(name):
    return FIX / f"{name}.spec.json"


def io(name):
    with np.load(FIX / f"{name}.io.npz") as z:
        return {k: z[k] for k in z.files}


def weights(name):
    with np.load(weights_path(name)) as z:
        return {k: z[k] for k in z.files}


def spec(name):
    return json.loads(spec_path(name).read_text())


def save_weights(tmp_path, arrays, stem="w"):
    path = tmp_path / f"{stem}.npz"
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Convert each fixture once through the public API; name -> loaded Model."""
    out = tmp_path_factory.mktemp("torch_models")
    cache = {}

    def get(name):
        if name not in cache:
            dst = rnnrt.convert(str(weights_path(name)), str(out / f"{name}.rnnrt"),
                                spec=str(spec_path(name)))
            cache[name] = rnnrt.load(dst)
        return cache[name]
    return get


def time_slice(fixture, a, t):
    """Step t of a (batch, time, ...) or (time, batch, ...) array, per the fixture's layout."""
    return a[:, t] if fixture["batch_first"] else a[t]


def expected_step(fixture, data, t):
    """What step() must return after step t: the full run's row t for a sequence output,
    the torch model run on the first t+1 steps for a one-vector output."""
    if fixture["select"] == "all_steps":
        return time_slice(fixture, data["y"], t)
    return data["y_prefix"][t]


# ----------------------------------------------------------------------------- fixtures

def test_fixtures_are_small_and_complete():
    total = sum(p.stat().st_size for p in FIX.iterdir())
    assert total < 1_000_000
    for name in NAMES:
        for suffix in (".weights.npz", ".spec.json", ".io.npz"):
            assert (FIX / f"{name}{suffix}").is_file(), name + suffix
    # Every item the importer must cover appears in at least one fixture.
    specs = [spec(n) for n in NAMES]
    modules = [m for s in specs for m in s["modules"]]
    assert {m.get("type") for m in modules} >= {"RNN", "LSTM", "GRU", "Embedding", "Linear"}
    assert {f["select"] for f in MANIFEST} == {"all_steps", "last_step", "h_n"}
    assert any(m.get("nonlinearity") == "relu" for m in modules)
    assert {f["batch_first"] for f in MANIFEST} == {True, False}
    assert {f["bidirectional"] for f in MANIFEST} == {True, False}
    all_keys = [k for n in NAMES for k in weights(n)]
    assert any("weight_hr_l0" in k for k in all_keys)       # proj_size
    assert any(k.endswith("_l1") for k in all_keys)          # num_layers 2
    assert any(k.endswith("_reverse") for k in all_keys)     # bidirectional
    assert any(k.endswith("weight_ih_l0") and k.replace("weight", "bias") not in weights(n)
               for n in NAMES for k in weights(n))                   # bias=False


@pytest.mark.parametrize("name", NAMES)
def test_importer_graph_matches_torch_on_reference(name):
    """The IR alone, run by the NumPy reference, reproduces torch (engine-independent)."""
    data = io(name)
    graph = load_torch(weights_path(name), spec_path(name))
    got = run_reference(graph, {"input": data["x"]})
    assert len(got) == 1
    assert got[0].shape == data["y"].shape
    np.testing.assert_allclose(got[0], data["y"], rtol=0, atol=TOL)


@pytest.mark.parametrize("name", NAMES)
def test_graph_structure(name):
    f = BY_NAME[name]
    graph = load_torch(weights_path(name), spec_path(name))
    (inp,) = graph.inputs
    assert inp.name == "input"
    if f["input"] == "vocab":
        assert (inp.shape, inp.dtype) == ((None, None), "int64")
    else:
        assert (inp.shape, inp.dtype) == ((None, None, f["input_size"]), "float32")
    recurrent = [l for l in graph.layers if l.kind == "Recurrent"]
    assert len(recurrent) == f["recurrent_layers"]
    for layer in recurrent:
        assert layer.time_major == (not f["batch_first"])
        assert layer.y_layout == ("btf" if f["batch_first"] else "tbf")
        assert layer.num_directions == (2 if f["bidirectional"] else 1)
    assert graph.outputs == ["output"]
    assert graph.streamable == (not f["bidirectional"])


@pytest.mark.parametrize("name", NAMES)
def test_run_matches_torch(name, models):
    data = io(name)
    model = models(name)
    got = model.run(data["x"])
    assert len(got) == 1 and got[0].shape == data["y"].shape
    np.testing.assert_allclose(got[0], data["y"], rtol=0, atol=TOL)
    np.testing.assert_allclose(model(data["x"]), data["y"], rtol=0, atol=TOL)


@pytest.mark.parametrize("name", FORWARD_ONLY)
def test_stream_matches_full_run_or_prefix(name, models):
    f, data = BY_NAME[name], io(name)
    stream = models(name).stream(batch_size=f["B"])
    for t in range(f["T"]):
        got = stream.step(time_slice(f, data["x"], t))
        np.testing.assert_allclose(got, expected_step(f, data, t), rtol=0, atol=TOL,
                                   err_msg=f"step {t}")


@pytest.mark.parametrize("name", ["lstm_last_relu", "emb_gru_last"])
def test_stream_out_buffer_and_reset(name, models):
    f, data = BY_NAME[name], io(name)
    stream = models(name).stream(batch_size=f["B"])
    buf = np.empty_like(expected_step(f, data, 0))
    for _ in range(2):                     # the second pass checks reset() forgot the first
        for t in range(f["T"]):
            got = stream.step(time_slice(f, data["x"], t), out=buf)
            assert got is buf
            np.testing.assert_allclose(buf, expected_step(f, data, t), rtol=0, atol=TOL)
        stream.reset()


@pytest.mark.parametrize("name", BIDIRECTIONAL)
def test_bidirectional_refuses_to_stream(name, models):
    with pytest.raises(InputError, match="(?i)bidirectional"):
        models(name).stream(batch_size=1)


def test_spec_as_dict_json_text_and_path_agree(tmp_path):
    name = "stacked_modules"
    x = io(name)["x"]
    text = spec_path(name).read_text()
    outs = [run_reference(load_torch(weights_path(name), s), {"input": x})[0]
            for s in (spec(name), text, spec_path(name), str(spec_path(name)))]
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])


def test_float64_weights_are_accepted(tmp_path):
    name = "bilstm_proj_2layer"
    w64 = {k: v.astype(np.float64) for k, v in weights(name).items()}
    graph = load_torch(save_weights(tmp_path, w64), spec_path(name))
    data = io(name)
    np.testing.assert_allclose(run_reference(graph, {"input": data["x"]})[0], data["y"],
                               rtol=0, atol=TOL)


def test_stated_sizes_equal_inferred_ones():
    """A spec stating every constructor argument builds the same graph as the minimal one."""
    name = "lstm_proj_hn"
    full = spec(name)
    full["input"] = {"features": 4}
    full["modules"][0].update(input_size=4, hidden_size=7, proj_size=3, num_layers=1,
                              bias=True, bidirectional=False, dropout=0.0)
    full["modules"][2].update(in_features=3, out_features=2, bias=True)
    x = io(name)["x"]
    a = run_reference(load_torch(weights_path(name), spec(name)), {"input": x})[0]
    b = run_reference(load_torch(weights_path(name), full), {"input": x})[0]
    np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- state_dict errors

FULL = "lstm_2layer_hn"     # its spec states every size, so every key's shape is known


@pytest.mark.parametrize("key", sorted(weights(FULL)))
def test_missing_key_names_key_and_expected_shape(key, tmp_path):
    arrays = weights(FULL)
    shape = arrays.pop(key).shape
    with pytest.raises(FormatError) as e:
        load_torch(save_weights(tmp_path, arrays), spec_path(FULL))
    msg = str(e.value)
    assert repr(key) in msg and "missing" in msg
    assert _shape_text(shape) in msg


@pytest.mark.parametrize("key", sorted(set(weights("lstm_proj_hn")) - {"out.bias"}))
def test_missing_key_with_inferred_sizes(key, tmp_path):
    """With sizes left to inference a missing key is still named (a Linear's bias alone is
    optional: without "bias": true in the spec, its absence means Linear(bias=False))."""
    arrays = weights("lstm_proj_hn")
    shape = arrays.pop(key).shape
    with pytest.raises(FormatError) as e:
        load_torch(save_weights(tmp_path, arrays), spec_path("lstm_proj_hn"))
    msg = str(e.value)
    assert repr(key) in msg and "missing" in msg
    if key not in ("rnn.weight_ih_l0", "out.weight"):   # sizes are read from these two
        assert _shape_text(shape) in msg


@pytest.mark.parametrize("key", sorted(weights(FULL)))
def test_wrong_shape_names_key_expected_and_received(key, tmp_path):
    arrays = weights(FULL)
    shape = arrays[key].shape
    bad = (shape[0] + 1,) + shape[1:]
    arrays[key] = np.zeros(bad, np.float32)
    with pytest.raises(FormatError) as e:
        load_torch(save_weights(tmp_path, arrays), spec_path(FULL))
    msg = str(e.value)
    assert repr(key) in msg
    assert _shape_text(shape) in msg and _shape_text(bad) in msg


@pytest.mark.parametrize("extra", ["rnn.weight_ih_l2", "rnn.weight_ih_l0_reverse",
                                   "decoder.weight"])
def test_extra_key_is_named_with_its_shape(extra, tmp_path):
    arrays = weights(FULL)
    arrays[extra] = np.zeros((5, 3), np.float32)
    with pytest.raises(FormatError) as e:
        load_torch(save_weights(tmp_path, arrays), spec_path(FULL))
    assert repr(extra) in str(e.value) and "(5, 3)" in str(e.value)


def test_extra_key_with_inferred_sizes(tmp_path):
    arrays = weights("lstm_last_relu")
    arrays["head.weight"] = np.zeros((2, 2), np.float32)
    with pytest.raises(FormatError, match=r"'head\.weight' \(2, 2\)"):
        load_torch(save_weights(tmp_path, arrays), spec_path("lstm_last_relu"))


def test_wrong_shape_with_inferred_sizes(tmp_path):
    arrays = weights("lstm_last_relu")
    hidden = arrays["lstm.weight_hh_l0"].shape[1]
    arrays["fc.weight"] = np.zeros((4, hidden + 1), np.float32)
    with pytest.raises(FormatError) as e:
        load_torch(save_weights(tmp_path, arrays), spec_path("lstm_last_relu"))
    msg = str(e.value)
    assert "'fc.weight'" in msg and f"{hidden})" in msg and f"(4, {hidden + 1})" in msg


@pytest.mark.parametrize("option, value, key", [
    ("hidden_size", 5, "rnn.weight_ih_l0"),
    ("num_layers", 3, "rnn.weight_ih_l2"),
    ("bidirectional", True, "rnn.weight_ih_l0_reverse"),
    ("proj_size", 2, "rnn.weight_hh_l0"),
    ("input_size", 3, "rnn.weight_ih_l0"),
])
def test_spec_size_contradicting_weights(option, value, key):
    s = spec(FULL)
    s["modules"][0][option] = value
    if option == "input_size":
        del s["input"]
    with pytest.raises(FormatError) as e:
        load_torch(weights_path(FULL), s)
    assert repr(key) in str(e.value)


def test_stated_input_features_contradicting_weights():
    s = spec("lstm_last_relu")
    s["input"] = {"features": 5}
    with pytest.raises(FormatError, match=r"'lstm\.weight_ih_l0'.*\(24, 5\).*\(24, 3\)"):
        load_torch(weights_path("lstm_last_relu"), s)


def test_non_float_weights_rejected(tmp_path):
    arrays = weights("lstm_last_relu")
    arrays["fc.bias"] = arrays["fc.bias"].astype(np.int64)
    with pytest.raises(FormatError, match="'fc.bias'.*int64"):
        load_torch(save_weights(tmp_path, arrays), spec_path("lstm_last_relu"))


def test_unreadable_npz(tmp_path):
    bad = tmp_path / "w.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(FormatError, match="w.npz"):
        load_torch(bad, spec_path("lstm_last_relu"))
    with pytest.raises(FormatError):
        load_torch(tmp_path / "absent.npz", spec_path("lstm_last_relu"))


def _shape_text(shape):
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


# ----------------------------------------------------------------------------- unsupported

@pytest.mark.parametrize("name, index, changes, named, listed", [
    ("lstm_last_relu", 0, {"type": "Conv1d"}, "Conv1d", "LSTM"),
    ("lstm_last_relu", 0, {"type": "LSTMCell"}, "LSTMCell", "GRU"),
    ("lstm_last_relu", 0, {"weight_init": "orthogonal"}, "weight_init", "hidden_size"),
    ("lstm_last_relu", 0, {"nonlinearity": "relu"}, "nonlinearity", "proj_size"),
    ("rnn_relu_last", 0, {"nonlinearity": "sigmoid"}, "sigmoid", "relu"),
    ("lstm_last_relu", 2, {"activation": "swish"}, "swish", "hardswish"),
    ("lstm_last_relu", 2, {"activation": {"name": "leaky_relu", "slope": 0.1}},
     "slope", "negative_slope"),
    ("lstm_last_relu", 2, {"activation": {"name": "softmax", "dim": 0}}, "dim 0", "-1"),
    ("lstm_last_relu", 2, {"activation": {"name": "softplus", "beta": 2}}, "beta", "softplus"),
    ("lstm_last_relu", 2, {"activation": {"name": "gelu", "approximate": "fast"}},
     "fast", "tanh"),
    ("lstm_last_relu", 1, {"select": "mean"}, "mean", "last_step"),
    ("lstm_last_relu", 1, {"index": 0}, "index", "select"),
    ("emb_gru_last", 0, {"max_norm": 1.0}, "max_norm", "null"),
])
def test_unsupported_is_named_with_supported_set(name, index, changes, named, listed):
    s = spec(name)
    s["modules"][index].update(changes)
    with pytest.raises(UnsupportedModelError) as e:
        load_torch(weights_path(name), s)
    assert named in str(e.value) and listed in str(e.value)


def test_mixed_batch_first_is_unsupported():
    s = spec("stacked_modules")
    s["modules"][2]["batch_first"] = False
    with pytest.raises(UnsupportedModelError, match="batch_first"):
        load_torch(weights_path("stacked_modules"), s)


def test_embedding_must_come_first():
    s = spec("emb_gru_last")
    del s["input"]
    s["modules"].insert(0, {"type": "Dropout"})
    with pytest.raises(UnsupportedModelError, match="Embedding"):
        load_torch(weights_path("emb_gru_last"), s)


# ----------------------------------------------------------------------------- bad specs

@pytest.mark.parametrize("text", ['{"modules": [', "[1, 2]", '"LSTM"', "", "{'a': 1}"])
def test_spec_file_that_is_not_a_json_object(text, tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(text)
    with pytest.raises(FormatError):
        load_torch(weights_path("lstm_last_relu"), path)


@pytest.mark.parametrize("s, fragment", [
    ({}, "modules"),
    ({"modules": []}, "modules"),
    ({"modules": {"type": "LSTM"}}, "modules"),
    ({"modules": ["LSTM"]}, "#0"),
    ({"modules": [{"prefix": "lstm."}]}, "type"),
    ({"modules": [{"type": "LSTM", "prefix": "lstm."}], "layers": []}, "layers"),
    ({"version": 2, "modules": [{"type": "LSTM", "prefix": "lstm."}]}, "version"),
    ({"input": {"vocab": 5}, "modules": [{"type": "LSTM", "prefix": "lstm."}]}, "input"),
    ({"input": {"features": 0}, "modules": [{"type": "LSTM", "prefix": "lstm."}]}, "input"),
    ({"modules": [{"type": "LSTM", "prefix": "lstm.", "hidden_size": "6"}]}, "hidden_size"),
    ({"modules": [{"type": "LSTM", "prefix": "lstm.", "batch_first": "yes"}]}, "batch_first"),
    ({"modules": [{"type": "LSTM", "prefix": 3}]}, "prefix"),
])
def test_malformed_spec(s, fragment):
    with pytest.raises(FormatError) as e:
        load_torch(weights_path("lstm_last_relu"), s)
    assert fragment in str(e.value)


def test_missing_spec_file(tmp_path):
    with pytest.raises(FormatError, match="nope.json"):
        load_torch(weights_path("lstm_last_relu"), tmp_path / "nope.json")


def test_h_n_must_follow_a_recurrent_module():
    s = spec("lstm_2layer_seq")
    s["modules"].append({"select": "h_n"})       # after the per-step Linear
    with pytest.raises(FormatError, match="h_n"):
        load_torch(weights_path("lstm_2layer_seq"), s)


def test_select_needs_a_sequence():
    s = spec("lstm_last_relu")
    s["modules"].insert(2, {"select": "last_step"})   # a second select
    with pytest.raises(FormatError, match="sequence"):
        load_torch(weights_path("lstm_last_relu"), s)


def test_convert_reports_errors_and_writes_nothing(tmp_path):
    arrays = weights("lstm_last_relu")
    del arrays["lstm.bias_hh_l0"]
    dst = tmp_path / "m.rnnrt"
    with pytest.raises(FormatError, match="lstm.bias_hh_l0"):
        rnnrt.convert(str(save_weights(tmp_path, arrays)), str(dst),
                      spec=str(spec_path("lstm_last_relu")))
    assert not dst.exists()
    s = spec("lstm_last_relu")
    s["modules"][0]["type"] = "Transformer"
    with pytest.raises(UnsupportedModelError, match="Transformer"):
        rnnrt.convert(str(weights_path("lstm_last_relu")), str(dst), spec=s)
    assert not dst.exists()


# ----------------------------------------------------------------------------- live torch

def _fixture_tool():
    path = Path(__file__).resolve().parent.parent / "tools" / "make_torch_fixtures.py"
    mod_spec = importlib.util.spec_from_file_location("make_torch_fixtures", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    return mod


def _random_chain(tool, rng):
    """Descriptors of a random chain: [Embedding] -> RNN/LSTM/GRU -> [select] -> [Linear]."""
    cell = str(rng.choice(["RNN", "LSTM", "GRU"]))
    kwargs = dict(hidden_size=int(rng.integers(1, 9)), num_layers=int(rng.integers(1, 3)),
                  bias=bool(rng.random() < 0.8), batch_first=bool(rng.random() < 0.5),
                  bidirectional=bool(rng.random() < 0.4))
    if cell == "RNN":
        kwargs["nonlinearity"] = str(rng.choice(["tanh", "relu"]))
    if cell == "LSTM" and kwargs["hidden_size"] > 1 and rng.random() < 0.4:
        kwargs["proj_size"] = int(rng.integers(1, kwargs["hidden_size"]))
    descriptors, inp = [], ("features", int(rng.integers(1, 6)))
    if rng.random() < 0.3:
        inp = ("vocab", int(rng.integers(2, 12)))
        descriptors.append(tool.embedding("emb.", inp[1], 3))
        kwargs["input_size"] = 3
    else:
        kwargs["input_size"] = inp[1]
    spec_keys = tool.ALL_RNN if rng.random() < 0.5 else ("batch_first", "nonlinearity")
    descriptors.append(tool.rnn(cell, "rnn.", spec_keys=spec_keys, **kwargs))
    D = 2 if kwargs["bidirectional"] else 1
    width = D * kwargs.get("proj_size", kwargs["hidden_size"])
    mode = str(rng.choice(["all_steps", "last_step", "h_n"]))
    if mode != "all_steps":
        descriptors.append(tool.select(mode))
    if rng.random() < 0.7:
        act = str(rng.choice(["none", "relu", "tanh", "sigmoid", "softmax", "log_softmax",
                              "gelu", "elu", "silu"]))
        descriptors.append(tool.linear("fc.", width, int(rng.integers(1, 6)), act,
                                       bias=bool(rng.random() < 0.8)))
    return descriptors, inp


@pytest.mark.parametrize("seed", range(12))
def test_live_random_torch_modules(seed, tmp_path):
    pytest.importorskip("torch")
    tool = _fixture_tool()
    rng = np.random.default_rng(seed)
    descriptors, inp = _random_chain(tool, rng)
    T, B = int(rng.integers(1, 8)), int(rng.integers(1, 4))
    f = tool.make("live", descriptors, inp, T, B, seed, tmp_path)
    with np.load(tmp_path / "live.io.npz") as z:
        data = {k: z[k] for k in z.files}
    dst = rnnrt.convert(str(tmp_path / "live.weights.npz"), str(tmp_path / "live.rnnrt"),
                        spec=str(tmp_path / "live.spec.json"))
    model = rnnrt.load(dst)
    np.testing.assert_allclose(model.run(data["x"])[0], data["y"], rtol=0, atol=TOL)
    if f["bidirectional"]:
        with pytest.raises(InputError):
            model.stream(batch_size=B)
        return
    stream = model.stream(batch_size=B)
    for t in range(T):
        np.testing.assert_allclose(stream.step(time_slice(f, data["x"], t)),
                                   expected_step(f, data, t), rtol=0, atol=TOL)
