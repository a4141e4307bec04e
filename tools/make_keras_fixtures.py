"""Build the golden Keras fixtures in tests/fixtures/keras/.

Run (needs Keras 3 and a backend; the torch backend is the one we use):

    KERAS_BACKEND=torch /work/fixenv/bin/python tools/make_keras_fixtures.py

For every model below it writes three files:
    <name>.weights.npz  np.savez(path, *model.get_weights())   (what a user saves)
    <name>.json         model.to_json()                        (what a user saves)
    <name>.io.npz       input_names, in_0.. (inputs), out_0.. (what model.predict returns),
                        and for some alt0_in_0.., alt0_out_0..: a second batch with other
                        batch size and time lengths

Models are tiny (hidden <= 8, T <= 7, batch <= 3) and seeded; weights are drawn from
U(-0.5, 0.5) so that biases are non-zero and every gate matters.
"""

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import keras  # noqa: E402
from keras import layers as L  # noqa: E402

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                       "keras")
BATCH = 3
T = 6
FEATURES = 3
VOCAB = 11

FIXTURES = {}


def fixture(fn):
    FIXTURES[fn.__name__] = fn
    return fn


# ------------------------------------------------------------------------------- inputs

def floats(rng, shape):
    return rng.uniform(-1.0, 1.0, shape).astype(np.float32)


def padded_floats(rng, t=T, f=FEATURES, value=0.0):
    """A batch of 3 with masked steps (every feature == value): row 0 right-padded, row 1
    left-padded with a hole in the middle, row 2 unpadded."""
    x = floats(rng, (BATCH, t, f))
    x[0, t - 2:] = value
    x[1, :1] = value
    x[1, t // 2] = value
    return x


def padded_ids(rng, t=T):
    """Token ids in [1, VOCAB) with 0 as padding: right, left + middle, none."""
    x = rng.integers(1, VOCAB, (BATCH, t)).astype(np.int64)
    x[0, t - 3:] = 0
    x[1, :2] = 0
    x[1, t // 2 + 1] = 0
    return x


def seq_input(t=T, f=FEATURES, name=None):
    return keras.Input((t, f), name=name)


# ------------------------------------------------------------------------------- models

@fixture
def simple_rnn_seq(rng):
    m = keras.Sequential([seq_input(), L.SimpleRNN(5, return_sequences=True), L.Dense(2)])
    return m, [floats(rng, (BATCH, T, FEATURES))]


@fixture
def simple_rnn_relu_vec(rng):
    m = keras.Sequential([seq_input(), L.SimpleRNN(6, activation="relu"),
                          L.Dense(3, activation="sigmoid")])
    return m, [floats(rng, (BATCH, T, FEATURES))]


@fixture
def lstm_vec_softmax(rng):
    m = keras.Sequential([keras.Input((None, FEATURES)), L.LSTM(6),
                          L.Dense(4, activation="softmax")])
    return m, [floats(rng, (BATCH, T, FEATURES))]


@fixture
def lstm_seq_hard_sigmoid(rng):
    m = keras.Sequential([seq_input(), L.LSTM(5, recurrent_activation="hard_sigmoid",
                                              return_sequences=True),
                          L.TimeDistributed(L.Dense(2, activation="tanh"))])
    # Scale up so that gate inputs reach the clipped ranges of hard_sigmoid.
    return m, [3.0 * floats(rng, (BATCH, T, FEATURES))]


@fixture
def gru_reset_after_seq(rng):
    m = keras.Sequential([seq_input(), L.GRU(4, return_sequences=True, reset_after=True),
                          L.Dense(3, activation="relu")])
    return m, [floats(rng, (BATCH, T, FEATURES))]


@fixture
def gru_reset_before_vec(rng):
    m = keras.Sequential([seq_input(), L.GRU(5, reset_after=False), L.Dense(2)])
    return m, [floats(rng, (BATCH, T, FEATURES))]


@fixture
def stacked_dropout(rng):
    m = keras.Sequential([
        seq_input(),
        L.LSTM(5, return_sequences=True, dropout=0.3, recurrent_dropout=0.2),
        L.Dropout(0.5),
        L.GRU(4, return_sequences=True, recurrent_dropout=0.1),
        L.SpatialDropout1D(0.2),
        L.SimpleRNN(3),
        L.Dense(2),
    ])
    return m, [floats(rng, (BATCH, T, FEATURES))]


@fixture
def lstm_go_backwards_seq(rng):
    m = keras.Sequential([seq_input(), L.LSTM(4, go_backwards=True, return_sequences=True),
                          L.Dense(2)])
    return m, [floats(rng, (BATCH, T, FEATURES))]


@fixture
def gru_go_backwards_vec(rng):
    m = keras.Sequential([seq_input(), L.GRU(4, go_backwards=True, reset_after=False),
                          L.Dense(2)])
    return m, [floats(rng, (BATCH, T, FEATURES))]


@fixture
def bidir_lstm_concat_seq(rng):
    m = keras.Sequential([seq_input(), L.Bidirectional(L.LSTM(4, return_sequences=True)),
                          L.Dense(3)])
    return m, [floats(rng, (BATCH, T, FEATURES))]


@fixture
def bidir_gru_sum_vec(rng):
    m = keras.Sequential([seq_input(),
                          L.Bidirectional(L.GRU(4, reset_after=False), merge_mode="sum"),
                          L.Dense(2)])
    return m, [floats(rng, (BATCH, T, FEATURES))]


@fixture
def bidir_rnn_mul_seq(rng):
    m = keras.Sequential([seq_input(),
                          L.Bidirectional(L.SimpleRNN(4, return_sequences=True),
                                          merge_mode="mul")])
    return m, [floats(rng, (BATCH, T, FEATURES))]


@fixture
def bidir_lstm_ave_vec(rng):
    m = keras.Sequential([seq_input(), L.Bidirectional(L.LSTM(5), merge_mode="ave"),
                          L.Dense(2, activation="tanh")])
    return m, [floats(rng, (BATCH, T, FEATURES))]


@fixture
def bidir_stacked_gru(rng):
    m = keras.Sequential([seq_input(),
                          L.Bidirectional(L.GRU(4, return_sequences=True)),
                          L.Bidirectional(L.GRU(3), merge_mode="sum"),
                          L.Dense(2)])
    return m, [floats(rng, (BATCH, T, FEATURES))]


@fixture
def lstm_return_state(rng):
    x = keras.Input((None, FEATURES), name="seq")
    out, h, c = L.LSTM(5, return_state=True, name="enc")(x)
    y = L.Dense(2, name="head")(out)
    m = keras.Model(x, [y, h, c])
    return m, [floats(rng, (BATCH, T, FEATURES))]


@fixture
def gru_return_state_seq(rng):
    x = keras.Input((T, FEATURES), name="seq")
    seq, h = L.GRU(4, return_sequences=True, return_state=True, name="enc")(x)
    y = L.Dense(3, activation="softmax", name="head")(h)
    m = keras.Model(x, [seq, y])
    return m, [floats(rng, (BATCH, T, FEATURES))]


@fixture
def bidir_lstm_return_state(rng):
    x = keras.Input((T, FEATURES), name="seq")
    out, fh, fc, bh, bc = L.Bidirectional(L.LSTM(4, return_state=True), name="bi")(x)
    m = keras.Model(x, [out, fh, fc, bh, bc])
    return m, [floats(rng, (BATCH, T, FEATURES))]


@fixture
def bidir_merge_none(rng):
    x = keras.Input((T, FEATURES), name="seq")
    fwd, bwd, fh, bh = L.Bidirectional(L.GRU(3, return_sequences=True, return_state=True),
                                       merge_mode=None, name="bi")(x)
    m = keras.Model(x, [fwd, bwd, fh, bh])
    return m, [floats(rng, (BATCH, T, FEATURES))]


@fixture
def embedding_mask_zero(rng):
    m = keras.Sequential([keras.Input((None,), dtype="int32"),
                          L.Embedding(VOCAB, 4, mask_zero=True),
                          L.LSTM(5, return_sequences=True),
                          L.LSTM(4),
                          L.Dense(3, activation="softmax")])
    return m, [padded_ids(rng)]


@fixture
def embedding_gru_seq(rng):
    m = keras.Sequential([keras.Input((T,), dtype="int32"),
                          L.Embedding(VOCAB, 4),
                          L.GRU(5, return_sequences=True),
                          L.TimeDistributed(L.Dense(VOCAB, activation="log_softmax"))])
    return m, [rng.integers(0, VOCAB, (BATCH, T)).astype(np.int64)]


@fixture
def embedding_mask_bidir_seq(rng):
    m = keras.Sequential([keras.Input((T,), dtype="int32"),
                          L.Embedding(VOCAB, 3, mask_zero=True),
                          L.Bidirectional(L.LSTM(4, return_sequences=True)),
                          L.Dense(2)])
    return m, [padded_ids(rng)]


@fixture
def masking_gru_seq(rng):
    m = keras.Sequential([seq_input(), L.Masking(0.0), L.GRU(4, return_sequences=True),
                          L.Dense(2)])
    return m, [padded_floats(rng)]


@fixture
def masking_lstm_zero_output(rng):
    # zero_output_for_mask=True on a plain layer: masked steps output zeros, and a
    # sequence-to-vector output is the (possibly zeroed) output of the last step.
    x = keras.Input((T, FEATURES), name="seq")
    mx = L.Masking(-1.0)(x)
    seq = L.LSTM(4, return_sequences=True, zero_output_for_mask=True, name="seq_out")(mx)
    vec = L.LSTM(3, zero_output_for_mask=True, name="vec_out")(mx)
    m = keras.Model(x, [seq, vec])
    return m, [padded_floats(rng, value=-1.0)]


@fixture
def masking_bidir_vec(rng):
    m = keras.Sequential([seq_input(), L.Masking(0.0),
                          L.Bidirectional(L.GRU(4, return_sequences=True)),
                          L.Bidirectional(L.LSTM(3), merge_mode="sum"),
                          L.Dense(2)])
    return m, [padded_floats(rng)]


@fixture
def masking_go_backwards(rng):
    # The mask that a go_backwards layer passes on is in input time order while its
    # outputs are in processing order; the next layer sees exactly that.
    m = keras.Sequential([seq_input(), L.Masking(0.0),
                          L.SimpleRNN(4, go_backwards=True, return_sequences=True),
                          L.GRU(3, return_sequences=True, go_backwards=True),
                          L.LSTM(3, return_state=False)])
    return m, [padded_floats(rng)]


@fixture
def masking_return_state(rng):
    x = keras.Input((T, FEATURES), name="seq")
    mx = L.Masking(0.0)(x)
    seq, h, c = L.LSTM(4, return_sequences=True, return_state=True, name="enc")(mx)
    m = keras.Model(x, [seq, h, c])
    return m, [padded_floats(rng)]


@fixture
def dense_activations(rng):
    # One head per Keras activation name that has an exact IR equivalent.
    names = ["linear", "relu", "sigmoid", "tanh", "softmax", "elu", "selu", "softplus",
             "softsign", "silu", "swish", "gelu", "exponential", "hard_sigmoid", "hard_silu",
             "hard_swish", "leaky_relu", "relu6", "mish", "log_sigmoid", "log_softmax",
             "tanh_shrink", "celu"]
    x = keras.Input((T, FEATURES), name="seq")
    h = L.LSTM(6)(x)
    outs = [L.Dense(3, activation=a, name=f"dense_{a}")(h) for a in names]
    m = keras.Model(x, outs)
    return m, [2.0 * floats(rng, (BATCH, T, FEATURES))]


@fixture
def activation_layers(rng):
    x = keras.Input((T, FEATURES), name="seq")
    h = L.GRU(6, return_sequences=True)(x)
    d = L.Dense(5, use_bias=False)(h)
    outs = [L.Activation("tanh", name="act_tanh")(d),
            L.Activation("softmax", name="act_softmax")(d),
            L.ReLU(name="relu_layer")(d),
            L.ReLU(max_value=6.0, name="relu6_layer")(d),
            L.LeakyReLU(negative_slope=0.1, name="leaky_layer")(d),
            L.LeakyReLU(name="leaky_default_layer")(d),
            L.ReLU(threshold=0.2, name="threshold_layer")(d),
            L.ELU(alpha=0.7, name="elu_layer")(d),
            L.Softmax(name="softmax_layer")(d)]
    m = keras.Model(x, outs)
    return m, [2.0 * floats(rng, (BATCH, T, FEATURES))]


@fixture
def cell_activations(rng):
    m = keras.Sequential([
        seq_input(),
        L.SimpleRNN(4, activation="softsign", return_sequences=True),
        L.GRU(4, activation="relu", recurrent_activation="hard_sigmoid", return_sequences=True),
        L.LSTM(4, activation="elu", recurrent_activation="hard_silu", return_sequences=True),
        L.LSTM(3, activation="selu", recurrent_activation="sigmoid"),
    ])
    return m, [2.0 * floats(rng, (BATCH, T, FEATURES))]


@fixture
def no_bias(rng):
    # Every layer's output is a model output, so that none is hidden behind small values.
    x = keras.Input((T, FEATURES), name="seq")
    a = L.LSTM(4, use_bias=False, return_sequences=True, name="lstm")(x)
    b = L.GRU(4, use_bias=False, return_sequences=True, name="gru_after")(x)
    c = L.GRU(3, use_bias=False, reset_after=False, return_sequences=True, name="gru_before")(x)
    d = L.SimpleRNN(3, use_bias=False, name="rnn")(x)
    e = L.Dense(2, use_bias=False, name="dense")(d)
    m = keras.Model(x, [a, b, c, d, e])
    return m, [2.0 * floats(rng, (BATCH, T, FEATURES))]


@fixture
def unroll_stateful(rng):
    # unroll changes nothing numerically; a fresh stateful model starts from zero state.
    m = keras.Sequential([keras.Input(batch_shape=(BATCH, 5, FEATURES)),
                          L.LSTM(4, unroll=True, return_sequences=True),
                          L.GRU(3, stateful=True),
                          L.Dense(2)])
    return m, [floats(rng, (BATCH, 5, FEATURES))]


@fixture
def rnn_wrapper_cells(rng):
    # The generic RNN layer around the built-in cells has the same weights and math.
    m = keras.Sequential([seq_input(),
                          L.RNN(L.LSTMCell(4), return_sequences=True),
                          L.Bidirectional(L.RNN(L.SimpleRNNCell(3), return_sequences=True)),
                          L.RNN(L.GRUCell(3, reset_after=False)),
                          L.Dense(2)])
    return m, [floats(rng, (BATCH, T, FEATURES))]


@fixture
def two_inputs(rng):
    a = keras.Input((T, FEATURES), name="a")
    b = keras.Input((None,), dtype="int32", name="b")
    ya = L.LSTM(3, name="lstm_a")(a)
    eb = L.Embedding(VOCAB, 2, mask_zero=True, name="emb")(b)
    yb = L.GRU(3, return_sequences=True, name="gru_b")(eb)
    m = keras.Model([a, b], [ya, yb])
    return m, [floats(rng, (BATCH, T, FEATURES)), padded_ids(rng)]


# Initial states (initial_state=): the classic encoder-decoder, a state computed by a layer,
# states fed as model inputs, and a masked input. Several have a second batch ("alt") with
# other sizes and time lengths.

@fixture
def seq2seq_lstm(rng):
    enc_in = keras.Input((None, FEATURES), name="encoder_in")
    dec_in = keras.Input((None, 2), name="decoder_in")
    _, h, c = L.LSTM(5, return_state=True, name="encoder")(enc_in)
    seq, dh, dc = L.LSTM(5, return_sequences=True, return_state=True,
                         name="decoder")(dec_in, initial_state=[h, c])
    y = L.TimeDistributed(L.Dense(4, activation="softmax"), name="head")(seq)
    m = keras.Model([enc_in, dec_in], [y, dh, dc])
    # Encoder and decoder lengths differ, and differ again in the second batch.
    return m, [floats(rng, (BATCH, 6, FEATURES)), floats(rng, (BATCH, 4, 2))], \
        [[floats(rng, (2, 3, FEATURES)), floats(rng, (2, 7, 2))]]


@fixture
def gru_state_from_dense(rng):
    x = keras.Input((None, FEATURES), name="seq")
    f = keras.Input((4,), name="features")
    h0 = L.Dense(4, activation="tanh", name="init")(f)
    y = L.GRU(4, return_sequences=True, name="gru")(x, initial_state=h0)
    v = L.GRU(4, reset_after=False, name="gru_vec")(x, initial_state=[h0])
    m = keras.Model([x, f], [y, v])
    return m, [floats(rng, (BATCH, T, FEATURES)), floats(rng, (BATCH, 4))], \
        [[floats(rng, (2, 3, FEATURES)), floats(rng, (2, 4))]]


@fixture
def state_inputs(rng):
    # States given as model inputs, positionally (layer(x, states)) and by keyword; h and
    # c are distinct inputs so that swapping them shows.
    x = keras.Input((None, FEATURES), name="seq")
    s = keras.Input((5,), name="h0")
    c = keras.Input((5,), name="c0")
    y = L.SimpleRNN(5, return_sequences=True, name="rnn")(x, s)
    out = L.Dense(2, name="head")(y)
    v = L.RNN(L.LSTMCell(5), name="rnn_lstm")(x, initial_state=[s, c])
    m = keras.Model([x, s, c], [out, v])
    return m, [floats(rng, (BATCH, T, FEATURES)), floats(rng, (BATCH, 5)),
               floats(rng, (BATCH, 5))]


@fixture
def masking_initial_state(rng):
    # Keras 3 fills in the mask argument only for a layer called on one tensor: called with
    # initial_state, "gru" runs unmasked, yet its output carries the mask on to "after".
    # With mask= given, the mask applies: "lstm" outputs zeros at masked steps
    # (zero_output_for_mask), "vec" is the last unmasked step's output.
    x = keras.Input((T, FEATURES), name="seq")
    s = keras.Input((4,), name="state")
    mx = L.Masking(0.0)(x)
    mask = keras.ops.any(keras.ops.not_equal(x, 0.0), axis=-1)
    g = L.GRU(4, return_sequences=True, name="gru")(mx, initial_state=s)
    after = L.SimpleRNN(3, return_sequences=True, name="after")(g)
    seq = L.LSTM(4, return_sequences=True, zero_output_for_mask=True, name="lstm")(
        mx, initial_state=[s, s], mask=mask)
    vec = L.GRU(4, name="vec")(mx, initial_state=s, mask=mask)
    m = keras.Model([x, s], [g, after, seq, vec])
    return m, [padded_floats(rng), floats(rng, (BATCH, 4))]


@fixture
def reverse_initial_state(rng):
    # go_backwards layers start their (reversed) pass from the given state; c is computed
    # from the h input.
    x = keras.Input((None, FEATURES), name="seq")
    s = keras.Input((4,), name="state")
    c = L.Dense(4, activation="tanh", name="make_c")(s)
    a = L.GRU(4, go_backwards=True, return_sequences=True, name="gru_back")(x, initial_state=s)
    b, bh, bc = L.LSTM(4, go_backwards=True, return_state=True, name="lstm_back")(
        x, initial_state=[s, c])
    m = keras.Model([x, s], [a, b, bh, bc])
    return m, [floats(rng, (BATCH, T, FEATURES)), floats(rng, (BATCH, 4))]


# ------------------------------------------------------------------------------- writing

def randomize(model, rng):
    model.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(np.float32)
                       for w in model.get_weights()])


def predict(model, inputs):
    feed = inputs[0] if len(inputs) == 1 else list(inputs)
    out = model.predict(feed, batch_size=len(inputs[0]), verbose=0)
    if not isinstance(out, (list, tuple)):
        out = [out]
    return [np.asarray(o, dtype=np.float32) for o in out]


def input_names(config):
    """The model's input names as the config has them (InputLayer names, in order)."""
    cfg = config["config"]
    if config["class_name"] == "Sequential":
        return [cfg["layers"][0]["config"]["name"]]
    refs = cfg["input_layers"]
    return [r[0] for r in ([refs] if isinstance(refs[0], str) else refs)]


def write(name, model, inputs, alt_inputs=()):
    """alt_inputs: further input lists, stored with Keras's outputs as alt<k>_in_<i> and
    alt<k>_out_<i>."""
    base = os.path.join(OUT_DIR, name)
    np.savez(base + ".weights.npz", *model.get_weights())
    text = model.to_json()
    with open(base + ".json", "w") as f:
        f.write(text)
    outs = predict(model, inputs)
    io = {"input_names": np.array(input_names(json.loads(text)))}
    io.update({f"in_{i}": x for i, x in enumerate(inputs)})
    io.update({f"out_{i}": y for i, y in enumerate(outs)})
    for k, more in enumerate(alt_inputs):
        io.update({f"alt{k}_in_{i}": x for i, x in enumerate(more)})
        io.update({f"alt{k}_out_{i}": y for i, y in enumerate(predict(model, more))})
    np.savez(base + ".io.npz", **io)
    return outs


def main(names):
    os.makedirs(OUT_DIR, exist_ok=True)
    for i, (name, build) in enumerate(FIXTURES.items()):
        if names and name not in names:
            continue
        keras.utils.set_random_seed(1000 + i)
        rng = np.random.default_rng(1000 + i)
        model, inputs, *alt = build(rng)
        randomize(model, rng)
        outs = write(name, model, inputs, *alt)
        print(f"{name}: outputs {[o.shape for o in outs]}")
    total = sum(os.path.getsize(os.path.join(OUT_DIR, f)) for f in os.listdir(OUT_DIR))
    print(f"{len(os.listdir(OUT_DIR))} files, {total} bytes in {os.path.normpath(OUT_DIR)}")


if __name__ == "__main__":
    main(set(sys.argv[1:]))
