"""Keras 3 import: golden fixtures made by tools/make_keras_fixtures.py from real Keras models.

Each fixture is <name>.weights.npz (np.savez(path, *model.get_weights())), <name>.json
(model.to_json()) and <name>.io.npz (inputs and what model.predict returned, for some a
second batch with other sizes). The tests convert, load and run through the public API and
compare with Keras (<= 1e-5), stream the forward-only models step by step (from the initial
states fed as inputs, where there are some), and check the importer's errors.
"""

import copy
import json
from pathlib import Path

import numpy as np
import pytest

import rnnrt
from rnnrt.errors import FormatError, InputError, UnsupportedModelError
from rnnrt.importers.keras import load_keras
from reference import run_reference

FIXTURES = Path(__file__).parent / "fixtures" / "keras"
NAMES = sorted(p.name[:-len(".json")] for p in FIXTURES.glob("*.json"))
TOL = 1e-5


def fixture_files(name):
    return FIXTURES / f"{name}.weights.npz", FIXTURES / f"{name}.json"


def fixture_io(name, prefix=""):
    """({input name: array}, [expected outputs]) of a fixture; prefix "alt0_" etc. for the
    further batches some fixtures hold."""
    with np.load(FIXTURES / f"{name}.io.npz") as io:
        names = [str(n) for n in io["input_names"]]
        feeds = {n: io[f"{prefix}in_{i}"] for i, n in enumerate(names)}
        n_out = sum(k.startswith(f"{prefix}out_") for k in io.files)
        expected = [io[f"{prefix}out_{i}"] for i in range(n_out)]
    return feeds, expected


def fixture_batches(name):
    """Every (feeds, expected) batch of a fixture: the main one, then alt0_, alt1_, ..."""
    with np.load(FIXTURES / f"{name}.io.npz") as io:
        alts = sorted({k.split("_")[0] for k in io.files if k.startswith("alt")})
    return [fixture_io(name)] + [fixture_io(name, a + "_") for a in alts]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """name -> path of the fixture converted to .rnnrt (each converted once)."""
    root = tmp_path_factory.mktemp("keras")
    cache = {}

    def get(name):
        if name not in cache:
            weights, config = fixture_files(name)
            cache[name] = rnnrt.convert(weights, root / f"{name}.rnnrt", config=config)
        return cache[name]
    return get


def assert_close(got, want, what):
    got = np.asarray(got)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, Keras gave {want.shape}"
    err = float(np.max(np.abs(got.astype(np.float64) - want))) if want.size else 0.0
    assert err <= TOL, f"{what}: max abs error {err:.3g} > {TOL}"


def test_fixtures_present():
    # Every layer and option the importer promises has a golden fixture.
    assert len(NAMES) >= 30
    for name in NAMES:
        for suffix in (".weights.npz", ".io.npz"):
            assert (FIXTURES / f"{name}{suffix}").is_file(), name


# ----------------------------------------------------------------------------- whole runs

@pytest.mark.parametrize("name", NAMES)
def test_run_matches_keras(name, converted):
    model = rnnrt.load(converted(name))
    for b, (feeds, expected) in enumerate(fixture_batches(name)):
        assert [i.name for i in model.inputs] == list(feeds)
        outs = model.run(feeds if len(feeds) > 1 else next(iter(feeds.values())))
        assert len(outs) == len(expected)
        for k, (got, want) in enumerate(zip(outs, expected)):
            assert_close(got, want, f"{name} batch {b} output {k}")
        assert_close(model(feeds if len(feeds) > 1 else next(iter(feeds.values()))),
                     expected[0], f"{name} batch {b} Model(x)")


@pytest.mark.parametrize("name", NAMES)
def test_ir_matches_keras_on_reference(name):
    # The importer alone, checked by the NumPy oracle: isolates importer bugs from engine bugs.
    graph = load_keras(*fixture_files(name))
    for b, (feeds, expected) in enumerate(fixture_batches(name)):
        outs = run_reference(graph, feeds)
        assert len(outs) == len(expected)
        for k, (got, want) in enumerate(zip(outs, expected)):
            assert_close(got, want, f"{name} batch {b} output {k} (reference)")


def test_masks_change_the_result():
    # The masked fixtures would fail if the importer dropped the mask: guard against a
    # fixture whose padding happens not to matter.
    for name in ("masking_gru_seq", "embedding_mask_zero", "masking_bidir_vec"):
        feeds, expected = fixture_io(name)
        graph = load_keras(*fixture_files(name))
        for layer in graph.layers:
            if layer.kind == "Recurrent":
                layer.mask = None
        unmasked = run_reference(graph, feeds)[0]
        assert np.max(np.abs(unmasked - expected[0])) > 1e-3, name


# ----------------------------------------------------------------------------- streaming

def sequence_inputs(graph):
    """Names of the inputs with a time axis (not the (batch, H) initial states)."""
    return [i.name for i in graph.inputs if len(i.shape) >= 2 and i.shape[1] is None]


def initial_states(graph):
    """[(recurrent layer, "h" or "c", tensor name)] for every h0 / c0 a layer starts from."""
    return [(l, k, getattr(l, k + "0")) for l in graph.layers if l.kind == "Recurrent"
            for k in ("h", "c") if getattr(l, k + "0")]


def step_feed(feeds, t, names):
    x_t = {n: feeds[n][:, t] for n in names}
    return x_t if len(x_t) > 1 else next(iter(x_t.values()))


@pytest.mark.parametrize("name", NAMES)
def test_stream_matches_run(name, converted):
    feeds, expected = fixture_io(name)
    graph = load_keras(*fixture_files(name))
    model = rnnrt.load(converted(name))
    seqs = sequence_inputs(graph)
    B, T = feeds[seqs[0]].shape[:2]
    states = initial_states(graph)
    refusal = model.step_refusal()    # what `rnnrt info` reports
    if not graph.streamable:
        with pytest.raises(InputError, match="forward") as e:
            model.stream(batch_size=B)
        assert refusal == str(e.value)
        return
    if any(src not in feeds for _, _, src in states):
        # A state computed by a layer (an encoder's final state) exists only after the
        # whole input has been read.
        with pytest.raises(InputError, match="cannot be stepped") as e:
            model.stream(batch_size=B)
        assert refusal == str(e.value)
        return
    assert refusal is None
    stream = model.stream(batch_size=B)

    def start():
        # Initial states fed as model inputs become the stream's starting state.
        state = stream.state
        for layer, k, src in states:
            state[f"{layer.name}.{k}"] = feeds[src]
        stream.state = state

    start()
    first = None
    for t in range(T):
        y = stream.step(step_feed(feeds, t, seqs))
        if expected[0].ndim == 3:
            want = expected[0][:, t]          # a sequence output: the run's row at t
        else:
            # Sequence-to-vector: what a whole run gives when the sequence ends at t.
            prefix = {n: x[:, :t + 1] if n in seqs else x for n, x in feeds.items()}
            want = run_reference(graph, prefix)[0]
        assert_close(y, want, f"{name} step {t}")
        first = y.copy() if first is None else first
    stream.reset()
    start()
    assert_close(stream.step(step_feed(feeds, 0, seqs)), first, f"{name} step 0 after reset()")


def test_stream_batch_one_takes_unbatched_rows(converted):
    feeds, expected = fixture_io("gru_reset_after_seq")
    x = next(iter(feeds.values()))
    stream = rnnrt.load(converted("gru_reset_after_seq")).stream()
    for t in range(x.shape[1]):
        assert_close(np.reshape(stream.step(x[1, t]), -1), expected[0][1, t], f"step {t}")


# ----------------------------------------------------------------------------- what is imported

def recurrent_layers(name):
    return [l for l in load_keras(*fixture_files(name)).layers if l.kind == "Recurrent"]


def test_import_maps_options():
    (gru,) = recurrent_layers("gru_reset_before_vec")
    assert gru.cell == "gru" and not gru.linear_before_reset
    (gru,) = recurrent_layers("gru_reset_after_seq")
    assert gru.linear_before_reset
    (lstm,) = recurrent_layers("lstm_seq_hard_sigmoid")
    gate = lstm.activations[0][0]
    assert (gate.name, gate.alpha, gate.beta) == ("hard_sigmoid", pytest.approx(1 / 6), 0.5)
    (lstm,) = recurrent_layers("lstm_go_backwards_seq")
    assert lstm.direction == "reverse" and lstm.output_order == "step"
    (bi,) = recurrent_layers("bidir_lstm_concat_seq")
    assert bi.direction == "bidirectional"
    graph = load_keras(*fixture_files("embedding_mask_zero"))
    assert graph.inputs[0].dtype == "int64" and graph.inputs[0].shape == (None, None)
    assert load_keras(*fixture_files("simple_rnn_seq")).inputs[0].dtype == "float32"


def test_lstm_gate_order_is_converted():
    # Keras kernel columns i, f, c, o must land in IR rows i, o, f, c.
    weights, config = fixture_files("lstm_vec_softmax")
    with np.load(weights) as npz:
        kernel = npz["arr_0"]
    (lstm,) = recurrent_layers("lstm_vec_softmax")
    H = lstm.hidden_size
    keras_gate = {g: kernel[:, k * H:(k + 1) * H].T for k, g in enumerate("ifco")}
    for k, g in enumerate("iofc"):
        np.testing.assert_array_equal(lstm.W[0, k * H:(k + 1) * H], keras_gate[g])


def test_stateful_is_noted():
    graph = load_keras(*fixture_files("unroll_stateful"))
    assert any("stateful" in note for note in graph.metadata.get("notes", []))


# ----------------------------------------------------------------------------- initial states

def test_initial_state_wiring():
    graph = load_keras(*fixture_files("seq2seq_lstm"))
    rec = {l.name: l for l in graph.layers if l.kind == "Recurrent"}
    enc, dec = rec["encoder"], rec["decoder"]
    # Keras's [h, c] order: the decoder starts from the encoder's final h and c.
    assert (dec.h0, dec.c0) == (enc.h_last, enc.c_last) and dec.state_layout == "bdh"
    assert enc.h0 is None and enc.c0 is None
    graph = load_keras(*fixture_files("state_inputs"))
    rec = {l.name: l for l in graph.layers if l.kind == "Recurrent"}
    assert rec["rnn"].h0 == "h0"                               # passed positionally
    assert (rec["rnn_lstm"].h0, rec["rnn_lstm"].c0) == ("h0", "c0")
    assert {i.name: i.shape for i in graph.inputs} == {
        "seq": (None, None, 3), "h0": (None, 5), "c0": (None, 5)}


@pytest.mark.parametrize("name", ["seq2seq_lstm", "gru_state_from_dense", "state_inputs",
                                  "masking_initial_state", "reverse_initial_state"])
def test_initial_state_changes_the_result(name):
    # Guards against fixtures whose initial state happens not to matter: starting every
    # layer from zero must give other outputs.
    feeds, expected = fixture_io(name)
    graph = load_keras(*fixture_files(name))
    for layer, k, _ in initial_states(graph):
        setattr(layer, k + "0", None)
    for k, (got, want) in enumerate(zip(run_reference(graph, feeds), expected)):
        assert np.max(np.abs(got - want)) > 1e-3, f"{name} output {k}"


def test_encoder_and_decoder_lengths_differ():
    for feeds, _ in fixture_batches("seq2seq_lstm"):
        assert feeds["encoder_in"].shape[1] != feeds["decoder_in"].shape[1]
    assert len(fixture_batches("seq2seq_lstm")) == 2


@pytest.mark.parametrize("name", ["seq2seq_lstm", "gru_state_from_dense"])
def test_stream_refuses_a_computed_initial_state(name, converted):
    model = rnnrt.load(converted(name))
    with pytest.raises(InputError, match="starts from a state another layer computes"):
        model.stream(batch_size=2)


def test_keras_ignores_the_input_mask_with_initial_state():
    # Keras 3 fills in the mask argument only for a layer called on one tensor, so "gru"
    # (called with initial_state, no mask=) runs unmasked, while its output carries the mask
    # to "after", which is masked.
    graph = load_keras(*fixture_files("masking_initial_state"))
    rec = {l.name: l for l in graph.layers if l.kind == "Recurrent"}
    assert rec["gru"].mask is None
    assert rec["after"].mask is not None and rec["lstm"].mask is not None
    feeds, expected = fixture_io("masking_initial_state")
    rec["gru"].mask = rec["after"].mask
    assert np.max(np.abs(run_reference(graph, feeds)[0] - expected[0])) > 1e-3


def test_masked_carried_output_with_initial_state_is_refused():
    # Keras's carried output starts from zero, not from the initial state.
    config = load_config("masking_initial_state")
    lstm = next(l for l in config["config"]["layers"] if l["name"] == "lstm")
    lstm["config"]["zero_output_for_mask"] = False
    with pytest.raises(UnsupportedModelError, match="zero_output_for_mask=True"):
        load_keras(fixture_files("masking_initial_state")[0], config)
    notes = load_keras(*fixture_files("masking_initial_state")).metadata.get("notes", [])
    assert any("'vec'" in n and "all masked" in n for n in notes)


def keras_tensor(layer, index=0, shape=(None, 3)):
    return {"class_name": "__keras_tensor__",
            "config": {"shape": list(shape), "dtype": "float32",
                       "keras_history": [layer, 0, index]}}


def test_bidirectional_initial_state_is_refused():
    config = load_config("bidir_merge_none")
    cfg = config["config"]
    cfg["layers"].insert(0, {"class_name": "InputLayer", "name": "s", "inbound_nodes": [],
                             "config": {"name": "s", "batch_shape": [None, 3],
                                        "dtype": "float32"}})
    cfg["input_layers"] = [cfg["input_layers"], ["s", 0, 0]]
    bi = next(l for l in cfg["layers"] if l["name"] == "bi")
    bi["inbound_nodes"][0]["kwargs"]["initial_state"] = [keras_tensor("s"), keras_tensor("s")]
    with pytest.raises(UnsupportedModelError, match="initial_state on a Bidirectional"):
        load_keras(fixture_files("bidir_merge_none")[0], config)


def test_initial_state_count_and_shape_are_checked():
    weights = fixture_files("seq2seq_lstm")[0]
    config = load_config("seq2seq_lstm")
    dec = next(l for l in config["config"]["layers"] if l["name"] == "decoder")
    dec["inbound_nodes"][0]["kwargs"]["initial_state"].pop()      # only h: LSTM needs c
    with pytest.raises(FormatError, match=r"1 tensor\(s\); LSTM takes 2: \[h, c\]"):
        load_keras(weights, config)
    config = load_config("gru_state_from_dense")
    gru = next(l for l in config["config"]["layers"] if l["name"] == "gru")
    gru["inbound_nodes"][0]["kwargs"]["initial_state"] = keras_tensor("seq")   # a sequence
    with pytest.raises(FormatError, match=r"'seq' has shape \(None, None, 3\)") as e:
        load_keras(fixture_files("gru_state_from_dense")[0], config)
    assert "expected (batch, 4)" in str(e.value)


# ----------------------------------------------------------------------------- errors

def load_config(name):
    return json.loads(fixture_files(name)[1].read_text())


def save_weights(path, arrays):
    np.savez(path, *arrays)
    return path


def fixture_weights(name):
    with np.load(fixture_files(name)[0]) as npz:
        return [npz[f"arr_{i}"] for i in range(len(npz.files))]


def test_unknown_layer_names_itself(tmp_path):
    config = load_config("simple_rnn_seq")
    layer = config["config"]["layers"][1]
    layer["class_name"] = "Conv1D"
    layer["config"]["name"] = "my_conv"
    for call in (lambda: load_keras(fixture_files("simple_rnn_seq")[0], config),
                 lambda: rnnrt.convert(fixture_files("simple_rnn_seq")[0],
                                       tmp_path / "m.rnnrt", config=config)):
        with pytest.raises(UnsupportedModelError) as e:
            call()
        msg = str(e.value)
        assert "Conv1D" in msg and "my_conv" in msg and "LSTM" in msg
    assert not (tmp_path / "m.rnnrt").exists()


def test_unknown_layer_in_functional_model():
    config = load_config("lstm_return_state")
    head = next(l for l in config["config"]["layers"] if l["name"] == "head")
    head["class_name"] = "Attention"
    with pytest.raises(UnsupportedModelError, match=r"'Attention'.*'head'"):
        load_keras(fixture_files("lstm_return_state")[0], config)


def test_missing_weight_array(tmp_path):
    arrays = fixture_weights("stacked_dropout")
    path = save_weights(tmp_path / "w.npz", arrays[:-1])
    with pytest.raises(FormatError, match=rf"holds {len(arrays) - 1} arrays.*implies "
                                          rf"{len(arrays)}"):
        load_keras(path, fixture_files("stacked_dropout")[1])


def test_extra_weight_array(tmp_path):
    arrays = fixture_weights("simple_rnn_seq") + [np.zeros(3, np.float32)]
    path = save_weights(tmp_path / "w.npz", arrays)
    with pytest.raises(FormatError, match="arrays but the config implies"):
        rnnrt.convert(path, tmp_path / "m.rnnrt", config=fixture_files("simple_rnn_seq")[1])


def test_wrong_weight_shape_names_layer_and_shapes(tmp_path):
    arrays = fixture_weights("lstm_vec_softmax")
    arrays[1] = arrays[1][:, :-4]       # recurrent kernel (6, 24) cut to (6, 20)
    path = save_weights(tmp_path / "w.npz", arrays)
    config = load_config("lstm_vec_softmax")
    lstm_name = config["config"]["layers"][1]["config"]["name"]
    with pytest.raises(FormatError) as e:
        load_keras(path, config)
    msg = str(e.value)
    assert lstm_name in msg and "recurrent_kernel" in msg
    assert "(6, 24)" in msg and "(6, 20)" in msg


def test_gru_bias_layout_must_match_reset_after(tmp_path):
    config = load_config("gru_reset_after_seq")
    gru = config["config"]["layers"][1]["config"]
    gru["reset_after"] = False          # now one bias (3H,) is expected, not (2, 3H)
    with pytest.raises(FormatError, match=r"bias.*\(12,\).*\(2, 12\)"):
        load_keras(fixture_files("gru_reset_after_seq")[0], config)


def test_named_arrays_are_refused(tmp_path):
    path = tmp_path / "w.npz"
    np.savez(path, kernel=np.zeros((3, 5), np.float32))
    with pytest.raises(FormatError, match="get_weights"):
        load_keras(path, fixture_files("simple_rnn_seq")[1])


def test_not_an_npz(tmp_path):
    path = tmp_path / "w.npz"
    path.write_bytes(b"not a zip file")
    with pytest.raises(FormatError, match="npz"):
        load_keras(path, fixture_files("simple_rnn_seq")[1])


def test_bad_config(tmp_path):
    bad = tmp_path / "model.json"
    bad.write_text("{not json")
    with pytest.raises(FormatError, match="JSON"):
        load_keras(fixture_files("simple_rnn_seq")[0], bad)
    with pytest.raises(UnsupportedModelError, match="MyModel"):
        load_keras(fixture_files("simple_rnn_seq")[0],
                   {"class_name": "MyModel", "config": {"layers": []}})


@pytest.mark.parametrize("activation", ["hard_tanh", "sparsemax", "soft_shrink"])
def test_inexpressible_activation(activation):
    config = load_config("simple_rnn_seq")
    config["config"]["layers"][2]["config"]["activation"] = activation
    with pytest.raises(UnsupportedModelError, match=activation):
        load_keras(fixture_files("simple_rnn_seq")[0], config)


def test_softmax_cannot_be_a_cell_activation():
    config = load_config("simple_rnn_seq")
    config["config"]["layers"][1]["config"]["activation"] = "softmax"
    with pytest.raises(UnsupportedModelError, match="softmax"):
        load_keras(fixture_files("simple_rnn_seq")[0], config)


def test_config_accepted_as_path_string_and_dict():
    weights, config = fixture_files("gru_reset_before_vec")
    text = config.read_text()
    graphs = [load_keras(weights, c) for c in (config, str(config), text, json.loads(text))]
    feeds, expected = fixture_io("gru_reset_before_vec")
    for g in graphs:
        assert_close(run_reference(g, feeds)[0], expected[0], "config form")


def test_bidirectional_with_unequal_layers_is_refused():
    config = load_config("bidir_gru_sum_vec")
    bi = config["config"]["layers"][1]["config"]
    bi["backward_layer"] = copy.deepcopy(bi["backward_layer"])
    bi["backward_layer"]["config"]["units"] = 7
    with pytest.raises(UnsupportedModelError, match="differ"):
        load_keras(fixture_files("bidir_gru_sum_vec")[0], config)


# ----------------------------------------------------------------------------- live Keras

def test_live_keras_model_matches(tmp_path):
    """A freshly built random Keras model, saved the way a user saves it (skipped when Keras
    is not installed, as in CI)."""
    keras = pytest.importorskip("keras")
    L = keras.layers
    rng = np.random.default_rng(7)
    x_in = keras.Input((None, 4))
    h = L.Masking(0.0)(x_in)
    h = L.Bidirectional(L.LSTM(5, return_sequences=True), merge_mode="ave")(h)
    h = L.GRU(4, return_sequences=True, reset_after=False, go_backwards=True)(h)
    h = L.TimeDistributed(L.Dense(3, activation="softmax"))(h)
    model = keras.Model(x_in, h)
    model.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    np.savez(tmp_path / "w.npz", *model.get_weights())
    (tmp_path / "model.json").write_text(model.to_json())
    x = rng.uniform(-1, 1, (3, 7, 4)).astype(np.float32)
    x[0, 5:] = 0.0
    x[2, 2] = 0.0
    want = np.asarray(model.predict(x, verbose=0))
    path = rnnrt.convert(tmp_path / "w.npz", tmp_path / "m.rnnrt",
                         config=tmp_path / "model.json")
    (got,) = rnnrt.load(path).run(x)
    assert_close(got, want, "live model")
