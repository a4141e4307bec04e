"""A plain NumPy executor of an rnnrt.ir.Graph: the oracle the C engine is tested against.

It follows the docstrings of rnnrt/ir.py literally and shares no code with the engine.
Everything is computed in float64, one row and one time step at a time, so that each line
can be checked against the equations in ir.py; float outputs are cast to float32 at the end.

    run_reference(graph, feeds)        -> outputs in graph.outputs order
    run_reference_traced(graph, feeds) -> (outputs, peak), peak = the largest magnitude of
                                          any activation output, state or tensor computed
    float32_tolerance(peak)            -> how far a float32 executor may stray from it
"""

from __future__ import annotations

import copy
import math

import numpy as np

from rnnrt.ir import GATES

# ----------------------------------------------------------------------------- activations


def _sigmoid(x):
    # Split by sign so that exp never overflows.
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def _softplus(x):
    return np.logaddexp(0.0, x)          # log(1 + e^x) without overflow


def _hard_sigmoid(x, alpha, beta):
    return np.maximum(0.0, np.minimum(1.0, alpha * x + beta))


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _elementwise(name, x, a, b):
    """The formulas of the comment above ELEMENTWISE in rnnrt/ir.py, one per line."""
    if name == "linear":
        return x.copy()
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "tanh":
        return np.tanh(x)
    if name == "sigmoid":
        return _sigmoid(x)
    if name == "affine":
        return a * x + b
    if name == "leaky_relu":
        return np.where(x >= 0, x, a * x)
    if name == "thresholded_relu":
        return np.where(x > a, x, 0.0)
    if name == "scaled_tanh":
        return a * np.tanh(b * x)
    if name == "hard_sigmoid":
        return _hard_sigmoid(x, a, b)
    if name == "elu":
        return np.where(x >= 0, x, a * np.expm1(np.minimum(x, 0.0)))
    if name == "softsign":
        return x / (1.0 + np.abs(x))
    if name == "softplus":
        return _softplus(x)
    if name == "relu6":
        return np.minimum(np.maximum(x, 0.0), 6.0)
    if name == "selu":
        return b * np.where(x > 0, x, a * np.expm1(np.minimum(x, 0.0)))
    if name == "silu":
        return x * _sigmoid(x)
    if name == "exponential":
        with np.errstate(over="ignore"):
            return np.exp(x)
    if name == "gelu":
        return x * 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))
    if name == "gelu_tanh":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    if name == "mish":
        return x * np.tanh(_softplus(x))
    if name == "hard_silu":
        return x * _hard_sigmoid(x, a, b)
    if name == "log_sigmoid":
        return -_softplus(-x)
    if name == "tanh_shrink":
        return x - np.tanh(x)
    raise NotImplementedError(f"reference has no activation {name!r}")


def apply_activation(act, x):
    """Apply an ir.Act to a float64 array (softmax / log_softmax over the last axis)."""
    x = np.asarray(x, dtype=np.float64)
    if act.name in ("softmax", "log_softmax"):
        shifted = x - x.max(axis=-1, keepdims=True)
        log_z = np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        return np.exp(shifted - log_z) if act.name == "softmax" else shifted - log_z
    return _elementwise(act.name, x, act.alpha, act.beta)


# ----------------------------------------------------------------------------- executor


class _Executor:
    def __init__(self, graph, feeds):
        self.graph = graph
        self.env = {}
        self.peak = 0.0
        for info in graph.inputs:
            if info.name not in feeds:
                raise KeyError(f"feed for input {info.name!r} is missing")
            value = np.asarray(feeds[info.name])
            if info.dtype == "float32":
                # The engine receives float32, so the oracle starts from the same numbers.
                value = value.astype(np.float32).astype(np.float64)
            self.env[info.name] = value

    def see(self, arr):
        """Record the magnitude of a computed value (for the caller's tolerance)."""
        arr = np.asarray(arr)
        if arr.size and arr.dtype.kind == "f":
            m = float(np.max(np.abs(arr)))
            self.peak = max(self.peak, m) if not math.isnan(m) else math.inf
        return arr

    def act(self, act, pre, clip=None):
        if clip is not None:
            pre = np.clip(pre, -clip, clip)
        return self.see(apply_activation(act, pre))

    def run(self):
        for layer in self.graph.layers:
            getattr(self, "layer_" + layer.kind)(layer)
        outs = []
        for name in self.graph.outputs:
            v = self.env[name]
            outs.append(v.astype(np.float32) if v.dtype.kind == "f" else v.copy())
        return outs

    def put(self, name, value):
        if name:
            self.env[name] = self.see(value)

    # ---------------------------------------------------------------- simple layers

    def layer_Embedding(self, l):
        ids = self.env[l.ids]
        V = l.table.shape[0]
        assert ids.dtype.kind in "iu", "token ids must be integers"
        assert ids.size == 0 or (ids.min() >= 0 and ids.max() < V), "token id out of range"
        self.put(l.out, l.table.astype(np.float64)[ids])
        if l.mask:
            self.env[l.mask] = (ids != 0).astype(np.uint8)

    def layer_Masking(self, l):
        x = self.env[l.x]                                     # (B, T, F)
        mask = np.any(x != l.mask_value, axis=-1)             # (B, T)
        self.put(l.out, x * mask[..., None])
        self.env[l.mask] = mask.astype(np.uint8)

    def layer_Dense(self, l):
        y = self.env[l.x] @ l.kernel.astype(np.float64)
        if l.bias is not None:
            y = y + l.bias.astype(np.float64)
        self.put(l.out, apply_activation(l.activation, y))

    def layer_Activation(self, l):
        self.put(l.out, apply_activation(l.activation, self.env[l.x]))

    def layer_TimeStep(self, l):
        x = self.env[l.x]
        self.put(l.out, x[l.index] if l.time_major else x[:, l.index])

    def layer_FeatureSlice(self, l):
        self.put(l.out, self.env[l.x][..., l.start:l.stop])

    def layer_Slice(self, l):
        index = [slice(None)] * self.env[l.x].ndim
        index[l.axis] = slice(l.start, l.stop)
        self.put(l.out, self.env[l.x][tuple(index)])

    def layer_Concat(self, l):
        self.put(l.out, np.concatenate([self.env[x] for x in l.xs], axis=l.axis))

    def layer_MergeDirections(self, l):
        pieces = np.split(self.env[l.x], l.parts, axis=-1)
        if l.mode == "sum":
            out = sum(pieces[1:], pieces[0])
        elif l.mode == "mul":
            out = pieces[0]
            for p in pieces[1:]:
                out = out * p
        else:  # ave
            out = sum(pieces[1:], pieces[0]) / l.parts
        self.put(l.out, out)

    # ---------------------------------------------------------------- recurrent

    def layer_Recurrent(self, l):
        x = self.env[l.x]
        if l.time_major:
            x = x.transpose(1, 0, 2)                          # -> (B, T, I)
        B, T, _ = x.shape
        D, H, S = l.num_directions, l.hidden_size, l.state_size

        lens = np.full(B, T, dtype=np.int64)
        if l.seq_lens or l.seq_lens_value is not None:
            lens = np.asarray(self.env[l.seq_lens] if l.seq_lens else l.seq_lens_value)
            lens = lens.astype(np.int64).reshape(B)
            assert np.all((lens >= 0) & (lens <= T)), "seq_lens must lie in [0, T]"
        mask = np.ones((B, T), dtype=bool)
        if l.mask:
            mask = np.asarray(self.env[l.mask]).reshape(B, T) != 0

        h0 = self.initial_state(l, l.h0, D, B, S, l.h0_value)          # (D, B, S)
        c0 = self.initial_state(l, l.c0, D, B, H, l.c0_value)          # (D, B, H)

        y = np.zeros((D, B, T, S))
        h_n = np.zeros((D, B, S))
        c_n = np.zeros((D, B, H))
        for d in range(D):
            reverse = l.direction == "reverse" or d == 1
            for b in range(B):
                L = int(lens[b])
                times = range(L - 1, -1, -1) if reverse else range(L)
                h, c = h0[d, b], c0[d, b]
                if L == 0 and l.empty_state == "zero":
                    h, c = np.zeros(S), np.zeros(H)
                for step, t in enumerate(times):
                    if mask[b, t]:
                        h, c = self.cell(l, d, x[b, t], h, c)
                        out = h
                    else:
                        # Skipped: state carried; output zero or the carried h.
                        out = h if l.masked_output == "carry" else np.zeros(S)
                    y[d, b, step if l.output_order == "step" else t] = out
                h_n[d, b], c_n[d, b] = h, c

        self.put(l.y, self.y_layout(l, y))
        self.put(l.h_n, h_n if l.state_layout == "dbh" else h_n.transpose(1, 0, 2))
        self.put(l.c_n, c_n if l.state_layout == "dbh" else c_n.transpose(1, 0, 2))
        self.put(l.h_last, h_n.transpose(1, 0, 2).reshape(B, D * S))
        self.put(l.c_last, c_n.transpose(1, 0, 2).reshape(B, D * H))

    def initial_state(self, l, name, D, B, size, value=None):
        if not name and value is None:
            return np.zeros((D, B, size))
        s = np.asarray(self.env[name] if name else value, dtype=np.float64)
        if s.ndim == 2:                        # flat (B, D*size), "bdh" only
            assert l.state_layout == "bdh"
            s = s.reshape(B, D, size)
        s = s if l.state_layout == "dbh" else s.transpose(1, 0, 2)
        assert s.shape == (D, B, size), f"state {name!r} has shape {s.shape}"
        return s

    @staticmethod
    def y_layout(l, y):
        D, B, T, S = y.shape
        if l.y_layout == "btf":
            return y.transpose(1, 2, 0, 3).reshape(B, T, D * S)
        if l.y_layout == "btdh":
            return y.transpose(1, 2, 0, 3)
        if l.y_layout == "tbf":
            return y.transpose(2, 1, 0, 3).reshape(T, B, D * S)
        assert l.y_layout == "tdbh"
        return y.transpose(2, 0, 1, 3)

    def cell(self, l, d, x, h, c):
        """One step of direction d for one row: x (I,), h (S,), c (H,) -> (h', c')."""
        H = l.hidden_size
        W, R = l.W[d].astype(np.float64), l.R[d].astype(np.float64)
        Wb, Rb = l.Wb[d].astype(np.float64), l.Rb[d].astype(np.float64)
        acts, clip = l.activations[d], l.clip
        gx = W @ x + Wb                     # input part of every gate, stacked
        gh = R @ h + Rb                     # recurrent part of every gate, stacked

        def gate(k, g):                     # the k-th gate block (in GATES order) of g
            return g[k * H:(k + 1) * H]

        if l.cell == "rnn":
            (f,) = acts
            return self.act(f, gx + gh, clip), c

        if l.cell == "gru":
            f, g = acts
            z = self.act(f, gate(0, gx) + gate(0, gh), clip)
            r = self.act(f, gate(1, gx) + gate(1, gh), clip)
            Rh, Rbh = gate(2, R), gate(2, Rb)
            if l.linear_before_reset:
                hh = self.act(g, gate(2, gx) + r * (Rh @ h + Rbh), clip)
            else:
                hh = self.act(g, gate(2, gx) + Rh @ (r * h) + Rbh, clip)
            return (1.0 - z) * hh + z * h, c

        assert l.cell == "lstm" and GATES["lstm"] == "iofc"
        f, g, hact = acts
        P = l.P[d].astype(np.float64) if l.P is not None else np.zeros(3 * H)
        Pi, Po, Pf = P[:H], P[H:2 * H], P[2 * H:]
        pre = gx + gh
        i = self.act(f, gate(0, pre) + Pi * c, clip)
        if l.input_forget:
            f_ = 1.0 - i
        else:
            f_ = self.act(f, gate(2, pre) + Pf * c, clip)
        c_tilde = self.act(g, gate(3, pre), clip)
        c_new = self.see(f_ * c + i * c_tilde)
        o = self.act(f, gate(1, pre) + Po * c_new, clip)
        h_new = o * self.act(hact, c_new, clip)
        if l.Proj is not None:
            h_new = l.Proj[d].astype(np.float64) @ h_new
        return self.see(h_new), c_new


def run_reference_traced(graph, feeds):
    ex = _Executor(graph, feeds)
    # Values that overflow become inf / nan here, and show up as an infinite peak.
    with np.errstate(over="ignore", invalid="ignore"):
        outs = ex.run()
    return outs, ex.peak


def run_reference(graph, feeds: dict) -> list:
    """Execute `graph` on `feeds` ({input name: array}); returns graph.outputs in order."""
    return run_reference_traced(graph, feeds)[0]


def float32_tolerance(peak: float) -> float:
    """Max abs error allowed between a float32 executor and this float64 oracle.

    1e-5 on unit-scale values (DESIGN.md). float32 keeps ~7 significant digits and its
    rounding errors grow with the magnitudes involved, so when an unbounded activation
    (linear, relu, exponential, ...) lets values grow past 1 the bound is 1e-5 relative to
    the largest magnitude reached. Bounded activations keep peak near 1, so this rarely
    loosens anything."""
    return 1e-5 * max(1.0, peak)


def float32_sensitivity(graph, feeds: dict, base=None, seed: int = 0) -> float:
    """How far this oracle's outputs move when every float weight and input is nudged by one
    float32 rounding (relative 2^-24, random signs): the part of any float32 engine's error
    that the problem itself sets. Well-conditioned layers move by ~1e-7; a recurrence that
    amplifies (unbounded activations over tens of units) moves by as much as the fixed
    tolerance, and an engine that rounds at every operation strays a few times further.
    base: this oracle's outputs on the unnudged problem, when the caller has them."""
    rng = np.random.default_rng(seed)

    def nudge(a):
        return a.astype(np.float64) * (1.0 + rng.choice([-1.0, 1.0], a.shape) * 2.0 ** -24)

    moved = copy.deepcopy(graph)
    for layer in moved.layers:
        for name, value in vars(layer).items():
            if isinstance(value, np.ndarray) and value.dtype == np.float32:
                setattr(layer, name, nudge(value))
    moved_feeds = {k: nudge(v) if v.dtype == np.float32 else v for k, v in feeds.items()}
    with np.errstate(over="ignore", invalid="ignore"):
        base = run_reference(graph, feeds) if base is None else base
        pairs = zip(base, run_reference(moved, moved_feeds))
        return max((float(np.max(np.abs(a - b))) for a, b in pairs if a.size), default=0.0)
