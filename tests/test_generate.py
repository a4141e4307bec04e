"""Model.generate against Python loops of Stream.step, the RNG against its published
definition, and sampled frequencies against softmax(logits / T) over the top k."""

import math
import uuid

import numpy as np
import pytest
from scipy import stats

import rnnrt
import rnnrt.packing
from rnnrt import ir
from rnnrt.generate import rng_draws
from strategies import make_recurrent

M64 = (1 << 64) - 1


def save_and_load(graph, tmp_path):
    return rnnrt.load(rnnrt.packing.save(graph, tmp_path / f"{uuid.uuid4().hex}.rnnrt"),
                      num_threads=1)


def token_model(tmp_path, *, cell="lstm", V=7, E=4, H=8, head="logits", seed=0,
                fixed_logits=None):
    """Embedding(V) -> Recurrent -> Dense(V) [-> softmax]. fixed_logits: a Dense with a zero
    kernel and these biases, so that every step's logits are exactly them."""
    rng = np.random.default_rng(seed)
    emb = ir.Embedding("emb", "ids", "e", rng.uniform(-1, 1, (V, E)).astype(np.float32))
    rec = make_recurrent("rec", cell, "forward", H, E, rng, x="e", y="y")
    if fixed_logits is None:
        kernel = rng.uniform(-2, 2, (H, V)).astype(np.float32)
        bias = rng.uniform(-1, 1, V).astype(np.float32)
    else:
        kernel = np.zeros((H, V), np.float32)
        bias = np.asarray(fixed_logits, np.float32)
    act = ir.Act.of("softmax" if head == "softmax" else "linear")
    dense = ir.Dense("head", "y", "scores", kernel, bias, activation=act)
    g = ir.Graph([ir.TensorInfo("ids", (None, None), "int64")], [emb, rec, dense], ["scores"])
    return save_and_load(g, tmp_path)


def forecast_model(tmp_path, F=3, H=6, seed=0):
    rng = np.random.default_rng(seed)
    rec = make_recurrent("rec", "lstm", "forward", H, F, rng, x="x", y="y")
    dense = ir.Dense("head", "y", "next", rng.uniform(-.5, .5, (H, F)).astype(np.float32))
    g = ir.Graph([ir.TensorInfo("x", (None, None, F), "float32")], [rec, dense], ["next"])
    return save_and_load(g, tmp_path)


def python_scores(model, prompt, generated):
    """The score rows a Stream gives after the prompt and after each generated id."""
    s = model.stream()
    for t in prompt:
        out = s.step(np.array([t]))
    rows = [out[0]]
    for t in generated:
        rows.append(s.step(np.array([t]))[0])
    return rows


# ----------------------------------------------------------------------------- greedy

@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("head", ["logits", "softmax"])
def test_greedy_equals_a_python_loop_of_step_and_argmax(cell, head, tmp_path):
    model = token_model(tmp_path, cell=cell, head=head, seed=3)
    prompt = [1, 4, 2]
    got = model.generate(prompt, 30)
    s = model.stream()
    for t in prompt:
        out = s.step(np.array([t]))
    want = []
    for _ in range(30):
        want.append(int(np.argmax(out[0])))
        out = s.step(np.array([want[-1]]))
    assert got.dtype == np.int64 and got.tolist() == want


def test_stop_token_ends_generation_and_is_returned(tmp_path):
    model = token_model(tmp_path, seed=5)
    full = model.generate([0], 25).tolist()
    stop = full[4]
    first = full.index(stop)
    assert model.generate([0], 25, stop=stop).tolist() == full[:first + 1]
    absent = next(t for t in range(7) if t not in full)
    assert model.generate([0], 25, stop=absent).tolist() == full
    assert model.generate([0], 0).shape == (0,)


# ----------------------------------------------------------------------------- the RNG

def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


class Xoshiro256StarStar:
    """xoshiro256** 1.0 as Blackman and Vigna define it, seeded through splitmix64."""

    def __init__(self, seed=None, state=None):
        if state is None:
            state, x = [], seed
            for _ in range(4):
                x, out = splitmix64(x)
                state.append(out)
        self.s = list(state)

    def next(self):
        s = self.s
        result = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def uniform(self):
        return (self.next() >> 11) * 2.0 ** -53


def test_python_oracle_reproduces_published_values():
    # splitmix64 from 0: first output 0xe220a8397b1dcdaf (the reference implementation's).
    assert splitmix64(0)[1] == 0xE220A8397B1DCDAF
    # xoshiro256** from the state {1, 2, 3, 4}: 11520, then 0 (rotl(2 * 5, 7) * 9, ...).
    g = Xoshiro256StarStar(state=[1, 2, 3, 4])
    assert [g.next(), g.next()] == [11520, 0]


@pytest.mark.parametrize("seed", [0, 1, 12345, M64])
def test_engine_rng_equals_the_definition(seed):
    g = Xoshiro256StarStar(seed)
    assert rng_draws(seed, 50).tolist() == [g.next() for _ in range(50)]


def sample_like_the_docs(scores, probs, temperature, top_k, u):
    """rnnrt/generate.py's documented sampling rule, written out in Python."""
    logits = [(math.log(v) if v > 0 else -math.inf) if probs else float(v) for v in scores]
    logits = [-math.inf if math.isnan(v) else v for v in logits]
    best = max(logits)
    k = top_k or len(logits)
    threshold = sorted(logits, reverse=True)[k - 1]
    ties = k - sum(v > threshold for v in logits)
    weights = []
    for v in logits:
        admitted = v > threshold
        if v == threshold and ties > 0:          # ties at the k-th score: lowest ids first
            admitted, ties = True, ties - 1
        weights.append(0.0 if not admitted else 1.0 if v == best
                       else math.exp((v - best) / temperature))
    target, acc = u * sum(weights), 0.0
    for i, w in enumerate(weights):
        if w > 0:
            acc += w
            last = i
            if target < acc:
                return i
    return last


@pytest.mark.parametrize("head", ["logits", "softmax"])
@pytest.mark.parametrize("temperature, top_k", [(1.0, None), (0.7, 3), (2.5, 1), (1.3, 6)])
def test_seeded_sampling_follows_the_documented_rule_exactly(head, temperature, top_k,
                                                             tmp_path):
    model = token_model(tmp_path, head=head, seed=11)
    prompt = [3, 1]
    got = model.generate(prompt, 40, temperature=temperature, top_k=top_k, seed=2024)
    rng = Xoshiro256StarStar(2024)
    rows = python_scores(model, prompt, got.tolist())
    want = [sample_like_the_docs(rows[i], head == "softmax", temperature, top_k, rng.uniform())
            for i in range(len(got))]
    assert got.tolist() == want
    again = model.generate(prompt, 40, temperature=temperature, top_k=top_k, seed=2024)
    np.testing.assert_array_equal(again, got)


def test_different_seeds_give_different_samples_and_none_draws_a_fresh_one(tmp_path):
    model = token_model(tmp_path, fixed_logits=np.zeros(7))
    runs = {tuple(model.generate([0], 30, temperature=1.0, seed=s)) for s in range(5)}
    assert len(runs) == 5
    unseeded = {tuple(model.generate([0], 30, temperature=1.0)) for _ in range(3)}
    assert len(unseeded) == 3


# ----------------------------------------------------------------------------- distribution

LOGITS = np.array([1.0, 0.2, -0.5, 0.9, -2.0], np.float32)


@pytest.mark.parametrize("head", ["logits", "softmax"])
@pytest.mark.parametrize("temperature, top_k", [(1.0, None), (0.5, None), (2.0, 3), (1.0, 2)])
def test_sampled_frequencies_match_softmax_over_the_top_k(head, temperature, top_k, tmp_path):
    # Every step has the same scores, so one call gives n independent draws.
    model = token_model(tmp_path, V=5, head=head, fixed_logits=LOGITS)
    n = 20000
    ids = model.generate([0], n, temperature=temperature, top_k=top_k, seed=7)
    counts = np.bincount(ids, minlength=5)
    keep = np.argsort(-LOGITS.astype(np.float64), kind="stable")[:top_k or 5]
    p = np.zeros(5)
    p[keep] = np.exp(LOGITS[keep].astype(np.float64) / temperature)
    p /= p.sum()
    assert counts[p == 0].sum() == 0, "a token outside the top k was drawn"
    if len(keep) > 1:
        chi2, pvalue = stats.chisquare(counts[keep], n * p[keep])
        assert pvalue > 1e-4, f"counts {counts} vs expected {n * p}: chi2 {chi2:.1f}"


def test_temperature_zero_and_top_k_one_are_greedy(tmp_path):
    model = token_model(tmp_path, seed=8)
    greedy = model.generate([2], 20)
    np.testing.assert_array_equal(model.generate([2], 20, temperature=0.0, seed=3), greedy)
    np.testing.assert_array_equal(model.generate([2], 20, temperature=1.5, top_k=1, seed=3),
                                  greedy)


# ----------------------------------------------------------------------------- forecasting

def test_forecast_equals_a_python_stream_loop(tmp_path):
    model = forecast_model(tmp_path)
    history = np.random.default_rng(4).uniform(-1, 1, (6, 3)).astype(np.float32)
    got = model.generate(history, 12)
    s = model.stream()
    for row in history:
        out = s.step(row)
    want = []
    for _ in range(12):
        want.append(out)
        out = s.step(out)
    assert got.shape == (12, 3) and got.dtype == np.float32
    np.testing.assert_array_equal(got, np.stack(want))
    assert model.generate(history, 0).shape == (0, 3)


def test_forecast_refuses_sampling_arguments_and_bad_history(tmp_path):
    model = forecast_model(tmp_path)
    history = np.zeros((4, 3), np.float32)
    for kwargs in ({"temperature": 0.5}, {"top_k": 2}, {"seed": 1}, {"stop": 0}):
        with pytest.raises(rnnrt.InputError, match="apply only to token models"):
            model.generate(history, 5, **kwargs)
    for bad, message in ((np.zeros((4, 2)), "shape"), (np.zeros(3), "shape"),
                         (np.zeros((0, 3)), "time >= 1"), ([["a"] * 3], "dtype")):
        with pytest.raises(rnnrt.InputError, match=message):
            model.generate(bad, 5)


# ----------------------------------------------------------------------------- bad input

def test_token_arguments_are_checked(tmp_path):
    model = token_model(tmp_path, V=7)
    cases = [
        (([1, 7], 5), {}, "token id 7 at position 1 is out of range"),
        (([-1], 5), {}, "token id -1"),
        (([], 5), {}, "at least one token id"),
        (([[1, 2]], 5), {}, "1-D"),
        (([0.5], 5), {}, "int token ids"),
        (([1], -1), {}, "steps must lie in"),
        (([1], 2.0), {}, "steps must be an int"),
        (([1], True), {}, "steps must be an int"),
        (([1], 5), {"temperature": -0.1}, "temperature"),
        (([1], 5), {"temperature": float("nan")}, "temperature"),
        (([1], 5), {"temperature": "hot"}, "temperature"),
        (([1], 5), {"top_k": 0}, "top_k must lie in 1..7"),
        (([1], 5), {"top_k": 8}, "top_k must lie in 1..7"),
        (([1], 5), {"stop": 7}, "stop must lie in 0..6"),
        (([1], 5), {"stop": -1}, "stop must lie in 0..6"),
        (([1], 5), {"seed": -1}, "seed must lie in"),
        (([1], 5), {"seed": 1 << 64}, "seed must lie in"),
        (([1], 5), {"seed": 1.5}, "seed must be an int"),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(rnnrt.InputError, match=message):
            model.generate(*args, **kwargs)


def test_models_whose_output_cannot_feed_back_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    # Token model whose output is not one score per token.
    emb = ir.Embedding("emb", "ids", "e", rng.uniform(-1, 1, (7, 4)).astype(np.float32))
    rec = make_recurrent("rec", "gru", "forward", 5, 4, rng, x="e", y="y")
    g = ir.Graph([ir.TensorInfo("ids", (None, None), "int64")], [emb, rec], ["y"])
    with pytest.raises(rnnrt.InputError, match="7 tokens"):
        save_and_load(g, tmp_path).generate([1], 3)
    # Regression model whose output width is not its input's.
    rec = make_recurrent("rec", "lstm", "forward", 5, 3, rng, x="x", y="y")
    g = ir.Graph([ir.TensorInfo("x", (None, None, 3), "float32")], [rec], ["y"])
    with pytest.raises(rnnrt.InputError, match="3 features per step but output 'y' has 5"):
        save_and_load(g, tmp_path).generate(np.zeros((2, 3)), 3)
    # A model that cannot stream at all.
    rec = make_recurrent("rec", "lstm", "bidirectional", 3, 6, rng, x="x", y="y")
    g = ir.Graph([ir.TensorInfo("x", (None, None, 6), "float32")], [rec], ["y"])
    with pytest.raises(rnnrt.InputError, match="bidirectional"):
        save_and_load(g, tmp_path).generate(np.zeros((2, 6)), 3)
    # Two step inputs.
    gru = make_recurrent("gru", "gru", "forward", 4, 3, rng, x="x", y="y", h0="h",
                         state_layout="bdh")
    dense = ir.Dense("d", "h", "hd", rng.uniform(-.5, .5, (4, 3)).astype(np.float32))
    g = ir.Graph([ir.TensorInfo("x", (None, None, 3), "float32"),
                  ir.TensorInfo("h", (None, 4), "float32")], [gru, dense], ["y", "hd"])
    with pytest.raises(rnnrt.InputError, match="step inputs"):
        save_and_load(g, tmp_path).generate(np.zeros((2, 3)), 3)


def test_unusable_scores_raise_an_rnnrt_error(tmp_path):
    # exp(100) overflows to inf, and 0 * inf is NaN: every score is NaN.
    rng = np.random.default_rng(0)
    emb = ir.Embedding("emb", "ids", "e", rng.uniform(-1, 1, (4, 3)).astype(np.float32))
    rec = make_recurrent("rec", "gru", "forward", 5, 3, rng, x="e", y="y")
    big = ir.Dense("big", "y", "inf", np.zeros((5, 4), np.float32),
                   np.full(4, 100.0, np.float32), activation=ir.Act.of("exponential"))
    nan = ir.Activation("nan", "inf", "scores", ir.Act.of("affine", 0.0, 0.0))
    g = ir.Graph([ir.TensorInfo("ids", (None, None), "int64")], [emb, rec, big, nan],
                 ["scores"])
    model = save_and_load(g, tmp_path)
    assert np.isnan(model.stream().step(np.array([1]))).all()
    for kwargs in ({}, {"temperature": 1.0, "seed": 0}):
        with pytest.raises(rnnrt.RnnrtError, match="step 0 has no usable score"):
            model.generate([1], 3, **kwargs)


def test_zero_probabilities_are_never_drawn(tmp_path):
    # softmax([-200, 0, -200, -200]) is exactly [0, 1, 0, 0] in float32.
    model = token_model(tmp_path, V=4, head="softmax", fixed_logits=[-200, 0, -200, -200])
    assert model.generate([1], 50, temperature=5.0, seed=1).tolist() == [1] * 50


def test_bundled_char_model_generates_what_pytorch_did(tmp_path):
    # examples/charlm: PyTorch's greedy continuation (expected.json, made by
    # tools/make_charlm.py) is what generate() must give after converting the state_dict.
    import json
    import os
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "examples", "charlm")
    with open(os.path.join(here, "expected.json")) as f:
        expected = json.load(f)
    with open(os.path.join(here, "vocab.json")) as f:
        chars = json.load(f)
    path = rnnrt.convert(os.path.join(here, "weights.npz"), tmp_path / "charlm.rnnrt",
                         spec=os.path.join(here, "spec.json"))
    model = rnnrt.load(path, num_threads=1)
    prompt = [chars.index(c) for c in expected["prompt"]]
    ids = model.generate(prompt, len(expected["greedy_ids"]))
    assert ids.tolist() == expected["greedy_ids"]
