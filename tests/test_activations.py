"""Every activation of the engine against float64 NumPy formulas written from rnnrt/ir.py."""
import math

import numpy as np
import pytest

import rnnrt
from rnnrt import ir, packing

X = np.concatenate([np.linspace(-30, 30, 24001), [-1e-7, 0.0, 1e-7, -87.5, 87.5, -100.0, 100.0,
                                                   -1e30, 1e30]]).astype(np.float32)
erf = np.vectorize(math.erf)


def sig(x):
    return 1 / (1 + np.exp(-x))


def softplus(x):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


FORMULAS = {
    "linear": lambda x, a, b: x,
    "relu": lambda x, a, b: np.maximum(x, 0),
    "tanh": lambda x, a, b: np.tanh(x),
    "sigmoid": lambda x, a, b: sig(x),
    "affine": lambda x, a, b: a * x + b,
    "leaky_relu": lambda x, a, b: np.where(x >= 0, x, a * x),
    "thresholded_relu": lambda x, a, b: np.where(x > a, x, 0),
    "scaled_tanh": lambda x, a, b: a * np.tanh(b * x),
    "hard_sigmoid": lambda x, a, b: np.clip(a * x + b, 0, 1),
    "elu": lambda x, a, b: np.where(x >= 0, x, a * np.expm1(np.minimum(x, 0))),
    "softsign": lambda x, a, b: x / (1 + np.abs(x)),
    "softplus": lambda x, a, b: softplus(x),
    "relu6": lambda x, a, b: np.clip(x, 0, 6),
    "selu": lambda x, a, b: b * np.where(x > 0, x, a * np.expm1(np.minimum(x, 0))),
    "silu": lambda x, a, b: x * sig(x),
    "exponential": lambda x, a, b: np.exp(x),
    "gelu": lambda x, a, b: 0.5 * x * (1 + erf(x / np.sqrt(2))),
    "gelu_tanh": lambda x, a, b: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))),
    "mish": lambda x, a, b: x * np.tanh(softplus(x)),
    "hard_silu": lambda x, a, b: x * np.clip(a * x + b, 0, 1),
    "log_sigmoid": lambda x, a, b: -softplus(-x),
    "tanh_shrink": lambda x, a, b: x - np.tanh(x),
}


def run_activation(tmp_path, act, x):
    layer = ir.Activation("act", "x", "y", act)
    g = ir.Graph([ir.TensorInfo("x", (None, x.shape[-1]), "float32")], [layer], ["y"])
    return rnnrt.load(packing.save(g, tmp_path / "a.rnnrt")).run(x)[0]


def test_every_activation_has_a_formula():
    assert set(FORMULAS) == set(ir.ELEMENTWISE)


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_activation_matches_float64(tmp_path, name):
    act = ir.Act.of(name, 0.7, 0.3) if name in ("affine", "leaky_relu", "thresholded_relu",
                                                "scaled_tanh", "hard_sigmoid", "elu") \
        else ir.Act.of(name)
    x = X[None, :]
    if name in ("exponential", "mish", "silu", "gelu_tanh", "tanh_shrink", "softplus", "selu",
                "gelu", "linear", "affine", "relu", "leaky_relu", "thresholded_relu",
                "relu6", "hard_silu", "log_sigmoid", "elu", "softsign"):
        x = x[np.isfinite(x) & (np.abs(x) <= 80)][None, :]     # overflow or |y| ~ |x| range
    got = run_activation(tmp_path, act, x).astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        want = FORMULAS[name](x.astype(np.float64), act.alpha, act.beta)
    # Absolute 1e-6 where the result is O(1), relative 1e-6 where it grows with x.
    err = np.abs(got - want) / np.maximum(1.0, np.abs(want))
    assert err.max() <= 1e-6, (name, float(x[0, err.argmax()]), err.max())


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_nan_propagates(tmp_path, name):
    x = np.array([[np.nan, 0.5]], np.float32)
    got = run_activation(tmp_path, ir.Act.of(name), x)
    assert np.isnan(got[0, 0]), name
    assert np.isfinite(got[0, 1])


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_row_wise(tmp_path, name):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((7, 11)) * 20).astype(np.float32)
    got = run_activation(tmp_path, ir.Act.of(name), x)
    z = x.astype(np.float64) - x.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1, keepdims=True))
    want = np.exp(z - lse) if name == "softmax" else z - lse
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=1e-6)
