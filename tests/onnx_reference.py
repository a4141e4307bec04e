"""The ONNX RNN / LSTM / GRU operators in plain NumPy, written from the operator spec.

An oracle for the cases onnxruntime cannot judge: it refuses layout=1, and does not clip the
LSTM cell state before h(c) although the spec clips every activation input. It is checked
against onnxruntime wherever onnxruntime follows the spec (tests/test_onnx_ops.py).
Activation parameters are consumed as onnxruntime consumes them (the spec leaves that open):
in order, only by activations that take them, with its defaults when the list runs out.
"""

from __future__ import annotations

import numpy as np

# name -> (function of (x, alpha, beta), takes alpha, takes beta)
ACTIVATIONS = {
    "Relu": (lambda x, a, b: np.maximum(x, 0), False, False),
    "Tanh": (lambda x, a, b: np.tanh(x), False, False),
    "Sigmoid": (lambda x, a, b: 1 / (1 + np.exp(-x)), False, False),
    "Affine": (lambda x, a, b: a * x + b, True, True),
    "LeakyRelu": (lambda x, a, b: np.where(x >= 0, x, a * x), True, False),
    "ThresholdedRelu": (lambda x, a, b: np.where(x > a, x, 0), True, False),
    "ScaledTanh": (lambda x, a, b: a * np.tanh(b * x), True, True),
    "HardSigmoid": (lambda x, a, b: np.clip(a * x + b, 0, 1), True, True),
    # exp of the negative part only: np.where computes both branches.
    "Elu": (lambda x, a, b: np.where(x >= 0, x, a * np.expm1(np.minimum(x, 0))), True, False),
    "Softsign": (lambda x, a, b: x / (1 + np.abs(x)), False, False),
    "Softplus": (lambda x, a, b: np.log1p(np.exp(x)), False, False),
}
DEFAULT_PARAMS = {"LeakyRelu": (0.01, 0.0), "HardSigmoid": (0.2, 0.5), "Elu": (1.0, 0.0)}
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
DEFAULT_ACTIVATIONS = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"],
                       "LSTM": ["Sigmoid", "Tanh", "Tanh"]}


def _functions(op, D, names, alphas, betas):
    n = len(DEFAULT_ACTIVATIONS[op])
    names = list(names or DEFAULT_ACTIVATIONS[op] * D)
    alphas, betas = list(alphas or []), list(betas or [])
    fns = []
    for name in names:
        fn, takes_a, takes_b = ACTIVATIONS[name]
        da, db = DEFAULT_PARAMS.get(name, (0.0, 0.0))
        a = (alphas.pop(0) if alphas else da) if takes_a else 0.0
        b = (betas.pop(0) if betas else db) if takes_b else 0.0
        fns.append(lambda x, fn=fn, a=a, b=b: fn(x, a, b))
    return [fns[d * n:(d + 1) * n] for d in range(D)]


def run_op(op, X, W, R, B=None, sequence_lens=None, initial_h=None, initial_c=None, P=None,
           *, hidden_size, direction="forward", activations=None, activation_alpha=None,
           activation_beta=None, clip=None, input_forget=0, linear_before_reset=0, layout=0,
           clip_cell_output=True):
    """(Y, Y_h, Y_c) of one ONNX recurrent node, in float64. clip_cell_output=False leaves the
    LSTM cell state unclipped before h(c), as onnxruntime does (against the spec)."""
    X = np.asarray(X, np.float64)
    if layout == 1:
        X = X.transpose(1, 0, 2)
        initial_h = None if initial_h is None else np.asarray(initial_h).transpose(1, 0, 2)
        initial_c = None if initial_c is None else np.asarray(initial_c).transpose(1, 0, 2)
    T, Bsz, _ = X.shape
    H, G = hidden_size, GATES[op]
    D = 2 if direction == "bidirectional" else 1
    B = np.zeros((D, 2 * G * H)) if B is None else np.asarray(B, np.float64)
    lens = np.full(Bsz, T) if sequence_lens is None else np.asarray(sequence_lens)
    h_init = np.zeros((D, Bsz, H)) if initial_h is None else np.asarray(initial_h, np.float64)
    c_init = np.zeros((D, Bsz, H)) if initial_c is None else np.asarray(initial_c, np.float64)
    P = np.zeros((D, 3 * H)) if P is None else np.asarray(P, np.float64)
    fns = _functions(op, D, activations, activation_alpha, activation_beta)
    cl = (lambda v: np.clip(v, -clip, clip)) if clip is not None else (lambda v: v)

    Y = np.zeros((T, D, Bsz, H))
    Yh, Yc = np.zeros((D, Bsz, H)), np.zeros((D, Bsz, H))
    for d in range(D):
        reverse = direction == "reverse" or d == 1
        Wd, Rd = np.asarray(W[d], np.float64), np.asarray(R[d], np.float64)
        Wb, Rb = B[d, :G * H], B[d, G * H:]
        f, *rest = fns[d]
        for b in range(Bsz):
            h, c = h_init[d, b].copy(), c_init[d, b].copy()
            steps = range(lens[b] - 1, -1, -1) if reverse else range(lens[b])
            for t in steps:
                x = X[t, b]
                if op == "RNN":
                    h = f(cl(Wd @ x + Rd @ h + Wb + Rb))
                elif op == "GRU":
                    g = rest[0]
                    xw = Wd @ x + Wb
                    z = f(cl(xw[:H] + Rd[:H] @ h + Rb[:H]))
                    r = f(cl(xw[H:2 * H] + Rd[H:2 * H] @ h + Rb[H:2 * H]))
                    if linear_before_reset:
                        cand = g(cl(xw[2 * H:] + r * (Rd[2 * H:] @ h + Rb[2 * H:])))
                    else:
                        cand = g(cl(xw[2 * H:] + Rd[2 * H:] @ (r * h) + Rb[2 * H:]))
                    h = (1 - z) * cand + z * h
                else:
                    g, hh = rest
                    a = Wd @ x + Rd @ h + Wb + Rb
                    pi, po, pf = P[d, :H], P[d, H:2 * H], P[d, 2 * H:]
                    i = f(cl(a[:H] + pi * c))
                    fg = 1 - i if input_forget else f(cl(a[2 * H:3 * H] + pf * c))
                    c = fg * c + i * g(cl(a[3 * H:]))
                    o = f(cl(a[H:2 * H] + po * c))
                    h = o * hh(cl(c) if clip_cell_output else c)
                Y[t, d, b] = h
            Yh[d, b], Yc[d, b] = h, c
    if layout == 1:
        return Y.transpose(2, 0, 1, 3), Yh.transpose(1, 0, 2), Yc.transpose(1, 0, 2)
    return Y, Yh, Yc
