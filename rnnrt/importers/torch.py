"""PyTorch importer: a state_dict saved as NPZ plus a JSON spec of the module chain -> IR.

The user saves the weights with
    np.savez("w.npz", **{k: v.detach().numpy() for k, v in model.state_dict().items()})
and describes what forward() does as a list of modules (docs/pytorch-spec.md):
    {"modules": [{"type": "LSTM", "prefix": "rnn.", "batch_first": true},
                 {"select": "last_step"},
                 {"type": "Linear", "prefix": "fc.", "activation": "relu"}]}

Every PyTorch quirk lives here: gate orders (LSTM i,f,g,o; GRU r,z,n), the GRU's reset
applied after the recurrent matmul, the (out, in) Linear weight, batch_first, and the
`_reverse` / `_l{k}` / `weight_hr` key names. Sizes are read from the weights; sizes the
spec states are checked against them. Every state_dict key must be used exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np

from ..errors import FormatError, UnsupportedModelError
from .sources import read_json_object, read_npz
from ..ir import Act, Activation, Dense, Embedding, Graph, Recurrent, TensorInfo, TimeStep

SPEC_VERSION = 1

RECURRENT_TYPES = {"RNN": "rnn", "LSTM": "lstm", "GRU": "gru"}
MODULE_TYPES = ("RNN", "LSTM", "GRU", "Embedding", "Linear", "Activation", "Dropout",
                "Identity")
SELECT_MODES = ("all_steps", "last_step", "h_n")
TOP_LEVEL_KEYS = ("version", "input", "modules")

# Options each module type accepts (besides "type"). Training-only options are accepted
# and ignored: they do not change what eval() computes.
RECURRENT_OPTIONS = ("prefix", "input_size", "hidden_size", "num_layers", "bias",
                     "batch_first", "dropout", "bidirectional")
MODULE_OPTIONS = {
    "RNN": RECURRENT_OPTIONS + ("nonlinearity",),
    "LSTM": RECURRENT_OPTIONS + ("proj_size",),
    "GRU": RECURRENT_OPTIONS,
    "Embedding": ("prefix", "num_embeddings", "embedding_dim", "padding_idx", "max_norm",
                  "norm_type", "scale_grad_by_freq", "sparse"),
    "Linear": ("prefix", "in_features", "out_features", "bias", "activation"),
    "Activation": ("activation",),
    "Dropout": ("p", "inplace"),
    "Identity": (),
}

# Torch gate blocks, stacked along the first weight axis, reordered to the IR's order:
# LSTM torch i,f,g,o -> IR i,o,f,c; GRU torch r,z,n -> IR z,r,h.
GATE_PERMUTATION = {"rnn": (0,), "lstm": (0, 3, 1, 2), "gru": (1, 0, 2)}

# Activation names as torch.nn.functional spells them -> (IR name, {torch param: IR field}).
ACTIVATIONS = {
    "none": ("linear", {}), "identity": ("linear", {}), "linear": ("linear", {}),
    "relu": ("relu", {}), "tanh": ("tanh", {}), "sigmoid": ("sigmoid", {}),
    "softmax": ("softmax", {}), "log_softmax": ("log_softmax", {}),
    "gelu": ("gelu", {}), "gelu_tanh": ("gelu_tanh", {}),
    "elu": ("elu", {"alpha": "alpha"}), "leaky_relu": ("leaky_relu", {"negative_slope": "alpha"}),
    "selu": ("selu", {}), "silu": ("silu", {}), "mish": ("mish", {}),
    "softplus": ("softplus", {}), "softsign": ("softsign", {}), "relu6": ("relu6", {}),
    "hardsigmoid": ("hard_sigmoid", {}), "hardswish": ("hard_silu", {}),   # slope 1/6
    "logsigmoid": ("log_sigmoid", {}), "tanhshrink": ("tanh_shrink", {}),
}
# IR parameters torch fixes where the IR's defaults differ (those follow Keras: slope 0.2).
IR_PARAMS = {"hardsigmoid": {"alpha": 1.0 / 6.0, "beta": 0.5},
             "hardswish": {"alpha": 1.0 / 6.0, "beta": 0.5}}
# Extra parameters accepted with a fixed value only (the IR formula has no knob for them).
FIXED_PARAMS = {"softplus": {"beta": 1, "threshold": 20}}


def load_torch(state_npz_path, spec) -> Graph:
    """Build an IR graph from a state_dict NPZ (path, or a mapping name -> array) and a spec
    (a path to a JSON file, a JSON string, or a dict)."""
    spec = read_spec(spec)
    state = _read_state(state_npz_path)
    graph = _ChainBuilder(state, spec).build()
    return graph.validate()


# ----------------------------------------------------------------------------- reading

def read_spec(spec) -> dict:
    """Return the spec as a dict; a file or string that is not JSON raises FormatError."""
    return read_json_object(spec, "the PyTorch spec")


def _read_state(src) -> dict:
    if isinstance(src, Mapping):
        return {str(k): np.asarray(v) for k, v in src.items()}
    return read_npz(src, "the state_dict")


# ----------------------------------------------------------------------------- building

class _ChainBuilder:
    """Walks the spec's modules in order, keeping track of the tensor flowing through."""

    def __init__(self, state: dict, spec: dict):
        self.state = state
        self.spec = spec
        self.used = set()
        self.layers = []
        self.layer_names = set()
        self.current = "input"     # name of the tensor flowing through the chain
        self.features = None       # its last-axis size, None until known
        self.is_sequence = True    # (B, T, F) / (T, B, F), or (B, F) after a select
        self.last_recurrent = None  # the Recurrent layer whose y is `current`, if any

    def build(self) -> Graph:
        spec = self.spec
        for key in spec:
            if key not in TOP_LEVEL_KEYS:
                raise FormatError(f"PyTorch spec: unknown key {key!r}; known: "
                                  f"{list(TOP_LEVEL_KEYS)}")
        if spec.get("version", SPEC_VERSION) != SPEC_VERSION:
            raise FormatError(f"PyTorch spec version {spec['version']!r} is not supported; "
                              f"this rnnrt reads version {SPEC_VERSION}")
        modules = spec.get("modules")
        if not isinstance(modules, list) or not modules:
            raise FormatError("PyTorch spec needs \"modules\": a non-empty list of modules")
        for i, m in enumerate(modules):
            if not isinstance(m, dict):
                raise FormatError(f"PyTorch spec module #{i} must be a JSON object, got {m!r}")
        self.time_major = self._chain_layout(modules)
        self._read_input(spec.get("input"), modules)

        for i, m in enumerate(modules):
            if "select" in m:
                self._select(i, m)
                continue
            kind = m.get("type")
            if kind is None:
                raise FormatError(f"PyTorch spec module #{i} needs \"type\" (one of "
                                  f"{list(MODULE_TYPES)}) or \"select\", got {m!r}")
            if kind not in MODULE_OPTIONS:
                raise UnsupportedModelError(
                    f"PyTorch spec module #{i}: module type {kind!r} is not supported; "
                    f"supported: {list(MODULE_TYPES)} (or {{\"select\": ...}} with one of "
                    f"{list(SELECT_MODES)})")
            for opt in m:
                if opt != "type" and opt not in MODULE_OPTIONS[kind]:
                    raise UnsupportedModelError(
                        f"PyTorch spec module #{i} ({kind}): option {opt!r} is not supported; "
                        f"supported: {list(MODULE_OPTIONS[kind])}")
            if kind in RECURRENT_TYPES:
                self._recurrent(i, m, RECURRENT_TYPES[kind])
            elif kind == "Embedding":
                self._embedding(i, m)
            elif kind == "Linear":
                self._linear(i, m)
            elif kind == "Activation":
                self._activation(i, m)
            # Dropout and Identity compute nothing at inference.

        self._check_all_keys_used()
        self._name_output("output")
        return Graph(inputs=[self._graph_input()], layers=self.layers, outputs=[self.current],
                     metadata={"source": "pytorch", "spec": _json_safe(spec)})

    # -- chain-wide decisions

    def _chain_layout(self, modules) -> bool:
        """One layout for the whole chain: torch modules pass tensors on unchanged, so every
        recurrent module must agree on batch_first. Returns time_major."""
        first = {}   # batch_first value -> index of the first module using it
        for i, m in enumerate(modules):
            if m.get("type") in RECURRENT_TYPES:
                bf = m.get("batch_first", False)   # torch's default
                if not isinstance(bf, bool):
                    raise FormatError(f"PyTorch spec module #{i} ({m['type']}): batch_first "
                                      f"must be true or false, got {bf!r}")
                first.setdefault(bf, i)
        if len(first) > 1:
            raise UnsupportedModelError(
                f"PyTorch spec: modules #{first[True]} (batch_first true) and #{first[False]} "
                f"(batch_first false) disagree; rnnrt needs one layout for the whole chain")
        return False in first

    def _read_input(self, inp, modules):
        """The optional "input" entry: {"features": F} or {"vocab": V}, checked later
        against the weights. Sets self.ids (token ids in) and the known sizes."""
        self.ids = modules[0].get("type") == "Embedding"
        self.vocab = self.input_features = None
        if inp is None:
            return
        if not isinstance(inp, dict) or len(inp) != 1 or set(inp) - {"features", "vocab"}:
            raise FormatError(f"PyTorch spec \"input\" must be {{\"features\": F}} or "
                              f"{{\"vocab\": V}}, got {inp!r}")
        if ("vocab" in inp) != self.ids:
            raise FormatError(
                f"PyTorch spec \"input\" {inp!r} does not match the first module: token ids "
                f"(\"vocab\") go with a first Embedding module, \"features\" otherwise")
        size = inp.get("features", inp.get("vocab"))
        if not _is_count(size):
            raise FormatError(f"PyTorch spec \"input\": size must be a positive integer, "
                              f"got {size!r}")
        if self.ids:
            self.vocab = size
        else:
            self.input_features = self.features = size

    def _graph_input(self) -> TensorInfo:
        if self.ids:
            return TensorInfo("input", (None, None), "int64")
        if self.input_features is None:
            raise FormatError("PyTorch spec: cannot tell the input's feature size; give "
                              "\"input\": {\"features\": F}")
        return TensorInfo("input", (None, None, self.input_features), "float32")

    def _in_size(self, given, from_weights, what, option):
        """The size a module reads: the chain's current feature size when known (checked
        against the spec's `option`), else the spec's value, else the weights'."""
        if self.features is not None:
            if given is not None and given != self.features:
                raise FormatError(f"{what}: {option} {given} does not match the "
                                  f"{self.features} features the chain gives it")
            return self.features
        size = given if given is not None else from_weights
        if size is not None:
            # Nothing so far changed the feature size, so this is the input's.
            self.input_features = self.features = size
        return size

    # -- state_dict access

    def _take(self, key, expected):
        """The array under `key` as float32, checked against `expected`: a shape whose
        entries are ints, or strings naming a size not known yet."""
        if key not in self.state:
            raise FormatError(f"state_dict key {key!r} is missing (expected shape "
                              f"{_fmt(expected)}, received none)")
        arr = self.state[key]
        if len(arr.shape) != len(expected) or any(
                isinstance(e, int) and e != n for e, n in zip(expected, arr.shape)):
            _wrong_shape(key, expected, arr.shape)
        if arr.dtype.kind != "f":
            raise FormatError(f"state_dict key {key!r} must hold floats, received dtype "
                              f"{arr.dtype}")
        if key in self.used:
            raise FormatError(f"state_dict key {key!r} is used by two modules; check the "
                              f"spec's prefixes")
        self.used.add(key)
        return np.ascontiguousarray(arr, dtype=np.float32)

    def _peek(self, key, expected):
        """The shape of `key` for inferring sizes, checked for rank against `expected`;
        raises the missing-key error when absent."""
        if key not in self.state or self.state[key].ndim != len(expected):
            self._take(key, expected)
        return self.state[key].shape

    def _check_all_keys_used(self):
        extra = sorted(set(self.state) - self.used)
        if extra:
            listed = ", ".join(f"{k!r} {_fmt(self.state[k].shape)}" for k in extra[:8])
            more = f" and {len(extra) - 8} more" if len(extra) > 8 else ""
            raise FormatError(
                f"state_dict has keys no module in the spec uses (expected none, received "
                f"{listed}{more}); check the spec's modules, prefixes, num_layers, bias, "
                f"bidirectional and proj_size")

    # -- modules

    def _recurrent(self, i, m, cell):
        what = f"PyTorch spec module #{i} ({m['type']})"
        self._need_sequence(what)
        p = _prefix(m, what)
        G = len(GATE_PERMUTATION[cell])
        first = f"{p}weight_ih_l0"

        # Sizes and structure: from the spec when given (then checked against every key),
        # inferred from the keys present otherwise.
        hidden = _opt_count(m, "hidden_size", what)
        if hidden is None:
            rows = self._peek(first, (f"{G}*hidden_size", "input_size"))[0]
            if rows % G:
                _wrong_shape(first, (f"{G}*hidden_size", "input_size"), self.state[first].shape)
            hidden = rows // G
        given = _opt_count(m, "input_size", what)
        from_weights = None
        if given is None and self.features is None:
            from_weights = self._peek(first, (G * hidden, "input_size"))[1]
        I = self._in_size(given, from_weights, what, "input_size")
        num_layers = _opt_count(m, "num_layers", what)
        if num_layers is None:
            num_layers = 1
            while f"{p}weight_ih_l{num_layers}" in self.state:
                num_layers += 1
        bidirectional = _opt_bool(m, "bidirectional", what,
                                  f"{p}weight_ih_l0_reverse" in self.state)
        bias = _opt_bool(m, "bias", what,
                         f"{p}bias_ih_l0" in self.state or f"{p}bias_hh_l0" in self.state)
        proj = 0
        if cell == "lstm":
            proj = m.get("proj_size")
            if proj is None:
                hr, hh = f"{p}weight_hr_l0", self.state.get(f"{p}weight_hh_l0")
                if hr in self.state:
                    proj = self._peek(hr, ("proj_size", hidden))[0]
                elif hh is not None and hh.ndim == 2 and hh.shape[0] == G * hidden \
                        and 0 < hh.shape[1] < hidden:
                    # weight_hh is (4*hidden, proj_size): a projected LSTM missing weight_hr.
                    self._take(hr, (hh.shape[1], hidden))
                else:
                    proj = 0
            elif not (isinstance(proj, int) and not isinstance(proj, bool) and proj >= 0):
                raise FormatError(f"{what}: proj_size must be an integer >= 0, got {proj!r}")
            if proj >= hidden:
                raise FormatError(f"{what}: proj_size {proj} must be smaller than "
                                  f"hidden_size {hidden}")
        nonlinearity = m.get("nonlinearity", "tanh")
        if nonlinearity not in ("tanh", "relu"):
            raise UnsupportedModelError(f"{what}: nonlinearity {nonlinearity!r} is not "
                                        f"supported; supported: ['tanh', 'relu']")
        # torch's fixed cell activations; an RNN's is its nonlinearity.
        acts = {"rnn": (nonlinearity,), "lstm": ("sigmoid", "tanh", "tanh"),
                "gru": ("sigmoid", "tanh")}[cell]
        dropout = m.get("dropout", 0)   # between layers in training only
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool):
            raise FormatError(f"{what}: dropout must be a number, got {dropout!r}")

        D = 2 if bidirectional else 1
        S = proj or hidden
        perm = GATE_PERMUTATION[cell]
        base = self._unique_name(p.rstrip(".") or f"{m['type'].lower()}{i}")

        def gates(key, shape):
            """A weight or bias with its gate blocks in the IR's order."""
            return _reorder(self._take(f"{p}{key}", shape), perm, hidden)

        x, layer = self.current, None
        for k in range(num_layers):
            W, R, Wb, Rb, Proj = [], [], [], [], []
            for suffix in ("", "_reverse")[:D]:
                key = f"l{k}{suffix}"
                W.append(gates(f"weight_ih_{key}", (G * hidden, I)))
                R.append(gates(f"weight_hh_{key}", (G * hidden, S)))
                zeros = np.zeros(G * hidden, np.float32)
                Wb.append(gates(f"bias_ih_{key}", (G * hidden,)) if bias else zeros)
                Rb.append(gates(f"bias_hh_{key}", (G * hidden,)) if bias else zeros)
                if proj:
                    Proj.append(self._take(f"{p}weight_hr_{key}", (proj, hidden)))
            name = f"{base}.l{k}"
            layer = Recurrent(
                name=name, cell=cell, direction="bidirectional" if D == 2 else "forward",
                hidden_size=hidden, input_size=I, x=x,
                W=np.stack(W), R=np.stack(R), Wb=np.stack(Wb), Rb=np.stack(Rb),
                Proj=np.stack(Proj) if proj else None,
                activations=[[Act.of(a) for a in acts] for _ in range(D)],
                linear_before_reset=(cell == "gru"),   # torch: n = tanh(.. + r*(W_hn h + b_hn))
                time_major=self.time_major, y_layout="tbf" if self.time_major else "btf",
                y=f"{name}.y")
            self.layers.append(layer)
            x, I = layer.y, D * S
        self.current, self.features, self.last_recurrent = layer.y, D * S, layer

    def _embedding(self, i, m):
        what = f"PyTorch spec module #{i} (Embedding)"
        if i != 0:
            raise UnsupportedModelError(f"{what}: an Embedding must be the first module (it "
                                        f"reads the token ids given as the model input)")
        p = _prefix(m, what)
        if m.get("max_norm") is not None:
            raise UnsupportedModelError(f"{what}: max_norm is not supported (it rewrites the "
                                        f"table during lookup); supported: max_norm null")
        V = _opt_count(m, "num_embeddings", what)
        if V is not None and self.vocab is not None and V != self.vocab:
            raise FormatError(f"{what}: num_embeddings {V} does not match the input's vocab "
                              f"{self.vocab}")
        E = _opt_count(m, "embedding_dim", what)
        table = self._take(f"{p}weight", (V or self.vocab or "num_embeddings",
                                          E or "embedding_dim"))
        V, E = table.shape
        pad = m.get("padding_idx")
        # padding_idx only freezes that row's gradient in training: here it is a table row.
        if pad is not None and not (isinstance(pad, int) and -V <= pad < V):
            raise FormatError(f"{what}: padding_idx must be an integer in [-{V}, {V}), "
                              f"got {pad!r}")
        name = self._unique_name(p.rstrip(".") or f"embedding{i}")
        self.layers.append(Embedding(name=name, ids=self.current, out=f"{name}.out",
                                     table=table))
        self.current, self.features = f"{name}.out", E

    def _linear(self, i, m):
        what = f"PyTorch spec module #{i} (Linear)"
        p = _prefix(m, what)
        n_in = self._in_size(_opt_count(m, "in_features", what), None, what, "in_features")
        n_out = _opt_count(m, "out_features", what)
        weight = self._take(f"{p}weight", (n_out or "out_features", n_in or "in_features"))
        n_out, n_in = weight.shape
        self._in_size(None, n_in, what, "in_features")
        bias = None
        if _opt_bool(m, "bias", what, f"{p}bias" in self.state):
            bias = self._take(f"{p}bias", (n_out,))
        act = _activation(m.get("activation", "none"), what, self._row_axis())
        name = self._unique_name(p.rstrip(".") or f"linear{i}")
        # torch stores (out, in); the IR's Dense kernel is (in, out).
        self.layers.append(Dense(name=name, x=self.current, out=f"{name}.out",
                                 kernel=np.ascontiguousarray(weight.T), bias=bias,
                                 activation=act))
        self.current, self.features, self.last_recurrent = f"{name}.out", n_out, None

    def _activation(self, i, m):
        what = f"PyTorch spec module #{i} (Activation)"
        if "activation" not in m:
            raise FormatError(f"{what}: needs \"activation\", e.g. \"relu\"")
        act = _activation(m["activation"], what, self._row_axis())
        if act.name == "linear":
            return
        name = self._unique_name(f"activation{i}")
        self.layers.append(Activation(name=name, x=self.current, out=f"{name}.out", activation=act))
        self.current, self.last_recurrent = f"{name}.out", None

    def _select(self, i, m):
        what = f"PyTorch spec module #{i} (select)"
        mode = m["select"]
        if set(m) != {"select"}:
            raise UnsupportedModelError(f"{what}: option(s) {sorted(set(m) - {'select'})} are "
                                        f"not supported; a select takes only \"select\"")
        if mode not in SELECT_MODES:
            raise UnsupportedModelError(f"{what}: select {mode!r} is not supported; "
                                        f"supported: {list(SELECT_MODES)}")
        self._need_sequence(what)
        if mode == "all_steps":
            return
        if mode == "last_step":
            # output[:, -1] (batch_first) / output[-1]: for a bidirectional layer this is the
            # forward direction's last output next to the reverse direction's first one.
            name = self._unique_name(f"last_step{i}")
            self.layers.append(TimeStep(name=name, x=self.current, out=f"{name}.out", index=-1,
                               time_major=self.time_major))
            self.current = f"{name}.out"
        else:
            layer = self.last_recurrent
            if layer is None:
                raise FormatError(f"{what}: \"h_n\" must directly follow an RNN, LSTM or GRU")
            # h_n of the last layer, directions concatenated [forward, reverse], as
            # torch.cat((h_n[-2], h_n[-1]), 1); h_n[-1] for one direction.
            layer.h_last = f"{layer.name}.h_last"
            layer.y = None
            self.current = layer.h_last
        self.is_sequence, self.last_recurrent = False, None

    # -- helpers

    def _need_sequence(self, what):
        if not self.is_sequence:
            raise FormatError(f"{what} needs a sequence, but an earlier select already "
                              f"reduced the chain to one vector per batch row")

    def _row_axis(self):
        return 2 if self.is_sequence else 1

    def _unique_name(self, base):
        name, n = base, 1
        while name in self.layer_names:
            n += 1
            name = f"{base}_{n}"
        self.layer_names.add(name)
        return name

    def _name_output(self, final):
        """Rename the chain's final tensor to `final` (a friendlier name for Model.outputs)."""
        if self.current == "input":
            raise FormatError("PyTorch spec: the modules compute nothing (only no-op modules)")
        producer = self.layers[-1]
        for attr in ("y", "h_last", "out"):
            if getattr(producer, attr, None) == self.current:
                setattr(producer, attr, final)
        self.current = final


def _wrong_shape(key, expected, received):
    raise FormatError(f"state_dict key {key!r} has the wrong shape: expected "
                      f"{_fmt(expected)}, received {_fmt(received)}")


def _fmt(shape):
    """(4*hidden_size, 8) rather than ('4*hidden_size', 8)."""
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


def _reorder(a, perm, H):
    """Reorder the gate blocks (each H rows) of a torch weight or bias into the IR order."""
    return np.ascontiguousarray(np.concatenate([a[g * H:(g + 1) * H] for g in perm], axis=0))


def _prefix(m, what):
    p = m.get("prefix", "")
    if not isinstance(p, str):
        raise FormatError(f"{what}: prefix must be a string such as \"rnn.\", got {p!r}")
    return p if not p or p.endswith(".") else p + "."


def _is_count(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _opt_count(m, key, what):
    v = m.get(key)
    if v is not None and not _is_count(v):
        raise FormatError(f"{what}: {key} must be a positive integer, got {v!r}")
    return v


def _opt_bool(m, key, what, default):
    v = m.get(key, default)
    if not isinstance(v, bool):
        raise FormatError(f"{what}: {key} must be true or false, got {v!r}")
    return v


def _activation(spec, what, row_axis) -> Act:
    """An activation given as "name" or {"name": ..., torch keyword arguments} -> IR Act."""
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, dict) and isinstance(spec.get("name"), str):
        name, params = spec["name"], {k: v for k, v in spec.items() if k != "name"}
    else:
        raise FormatError(f"{what}: activation must be a name or {{\"name\": ...}}, "
                          f"got {spec!r}")
    if name not in ACTIVATIONS:
        raise UnsupportedModelError(f"{what}: activation {name!r} is not supported; "
                                    f"supported: {sorted(ACTIVATIONS)}")
    params.pop("inplace", None)   # no effect on the values
    if name == "gelu" and "approximate" in params:
        approximate = params.pop("approximate")
        if approximate not in ("none", "tanh"):
            raise UnsupportedModelError(f"{what}: gelu approximate={approximate!r} is not "
                                        f"supported; supported: 'none', 'tanh'")
        name = "gelu_tanh" if approximate == "tanh" else "gelu"
    if name in ("softmax", "log_softmax") and "dim" in params:
        dim = params.pop("dim")
        if dim not in (-1, row_axis):
            raise UnsupportedModelError(f"{what}: {name} over dim {dim!r} is not supported; "
                                        f"supported: the last axis (dim -1 or {row_axis})")
    for k, fixed in FIXED_PARAMS.get(name, {}).items():
        if k in params and params.pop(k) != fixed:
            raise UnsupportedModelError(f"{what}: {name} with {k} other than {fixed} is not "
                                        f"supported")
    ir_name, renames = ACTIVATIONS[name]
    unknown = set(params) - set(renames)
    if unknown:
        raise UnsupportedModelError(f"{what}: activation {name!r} option(s) {sorted(unknown)} "
                                    f"are not supported; supported: {sorted(renames)}")
    kwargs = dict(IR_PARAMS.get(name, {}))
    for k, v in params.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise FormatError(f"{what}: activation {name!r} option {k} must be a number, "
                              f"got {v!r}")
        kwargs[renames[k]] = float(v)
    return Act.of(ir_name, **kwargs)


def _json_safe(spec):
    """The spec as plain JSON data, kept in the graph's metadata for `rnnrt info`."""
    try:
        return json.loads(json.dumps(spec))
    except (TypeError, ValueError) as e:
        raise FormatError(f"PyTorch spec holds a value JSON cannot represent: {e}") from None
