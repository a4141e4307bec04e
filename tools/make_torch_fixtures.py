"""Make the PyTorch golden fixtures in tests/fixtures/torch/ (needs torch; CI does not).

    /work/fixenv/bin/python tools/make_torch_fixtures.py [OUT_DIR]

Each fixture is a small seeded torch model built the way users write them (modules as
attributes, a forward() that picks output / output[:, -1] / h_n), saved as a user would:
    <name>.weights.npz  np.savez of the state_dict
    <name>.spec.json    the rnnrt spec describing the module chain (docs/pytorch-spec.md)
    <name>.io.npz       x, y = model(x) under eval() and no_grad; for forward-only models
                        whose head reads one vector, y_prefix[t] = model(x up to step t)
manifest.json lists them with what the tests need to know (layout, select, bidirectional).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "torch"

# ----------------------------------------------------------------------------- descriptors
# A fixture is a list of module descriptors; each becomes one torch module (or a step of
# forward()) and one entry of the spec.


def rnn(kind, prefix, spec_keys=("batch_first", "nonlinearity"), **kwargs):
    """nn.RNN / nn.LSTM / nn.GRU; `spec_keys` are the constructor arguments the spec states
    (the rest the importer infers from the weights)."""
    return {"kind": kind, "prefix": prefix, "kwargs": kwargs, "spec_keys": spec_keys}


def linear(prefix, n_in, n_out, activation="none", bias=True, spec_keys=()):
    return {"kind": "Linear", "prefix": prefix, "activation": activation, "spec_keys": spec_keys,
            "kwargs": {"in_features": n_in, "out_features": n_out, "bias": bias}}


def embedding(prefix, vocab, dim, padding_idx=None, spec_keys=("padding_idx",)):
    kwargs = {"num_embeddings": vocab, "embedding_dim": dim}
    if padding_idx is not None:
        kwargs["padding_idx"] = padding_idx
    return {"kind": "Embedding", "prefix": prefix, "kwargs": kwargs, "spec_keys": spec_keys}


def select(mode):
    return {"kind": "select", "mode": mode}


def activation(act):
    return {"kind": "Activation", "activation": act}


def dropout(p=0.5):
    return {"kind": "Dropout", "kwargs": {"p": p}}


ALL_RNN = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
           "bidirectional", "proj_size", "nonlinearity")
ALL_LINEAR = ("in_features", "out_features", "bias")

# name -> (descriptors, input: ("features", F) or ("vocab", V), T, B)
FIXTURES = {
    # A bare module saved on its own: keys have no prefix, the output is the sequence.
    "rnn_tanh_all": ([rnn("RNN", "", input_size=4, hidden_size=5, batch_first=True)],
                     ("features", 4), 6, 2),
    "rnn_relu_last": ([rnn("RNN", "rnn.", input_size=3, hidden_size=6, nonlinearity="relu",
                           batch_first=True),
                       select("last_step"), linear("fc.", 6, 3)], ("features", 3), 5, 3),
    "lstm_last_relu": ([rnn("LSTM", "lstm.", input_size=3, hidden_size=6, batch_first=True),
                        select("last_step"), linear("fc.", 6, 4, "relu")],
                       ("features", 3), 7, 2),
    "lstm_proj_hn": ([rnn("LSTM", "rnn.", input_size=4, hidden_size=7, proj_size=3,
                          batch_first=True),
                      select("h_n"), linear("out.", 3, 2, "sigmoid")], ("features", 4), 6, 3),
    "lstm_2layer_seq": ([rnn("LSTM", "encoder.", input_size=3, hidden_size=5, num_layers=2,
                             batch_first=True, dropout=0.3),
                         linear("tag.", 5, 4, "tanh")], ("features", 3), 6, 2),
    "lstm_2layer_hn": ([rnn("LSTM", "rnn.", input_size=2, hidden_size=4, num_layers=2,
                            batch_first=True, spec_keys=ALL_RNN),
                        select("h_n"), linear("fc.", 4, 3, spec_keys=ALL_LINEAR)],
                       ("features", 2), 5, 2),
    "gru_hn_softmax": ([rnn("GRU", "gru.", input_size=4, hidden_size=6, batch_first=True),
                        select("h_n"), linear("fc.", 6, 5, {"name": "softmax", "dim": -1})],
                       ("features", 4), 6, 3),
    "gru_time_major": ([rnn("GRU", "rnn.", input_size=3, hidden_size=5),
                        linear("proj.", 5, 4, {"name": "log_softmax", "dim": -1})],
                       ("features", 3), 6, 2),
    "rnn_time_major_last": ([rnn("RNN", "rnn.", input_size=4, hidden_size=5, num_layers=2),
                             select("last_step"), linear("fc.", 5, 3, "gelu")],
                            ("features", 4), 5, 3),
    "bilstm_hn": ([rnn("LSTM", "lstm.", input_size=3, hidden_size=5, bidirectional=True,
                       batch_first=True),
                   select("h_n"), linear("fc.", 10, 4, "softmax")], ("features", 3), 6, 2),
    "bilstm_last": ([rnn("LSTM", "lstm.", input_size=3, hidden_size=4, bidirectional=True,
                         batch_first=True),
                     select("last_step"), linear("fc.", 8, 3)], ("features", 3), 6, 2),
    "bigru_2layer_last": ([rnn("GRU", "rnn.", input_size=3, hidden_size=4, num_layers=2,
                               bidirectional=True, batch_first=True, spec_keys=ALL_RNN),
                           select("last_step"),
                           linear("fc.", 8, 3, {"name": "gelu", "approximate": "tanh"})],
                          ("features", 3), 5, 3),
    "birnn_relu_time_major": ([rnn("RNN", "rnn.", input_size=3, hidden_size=4,
                                   nonlinearity="relu", bidirectional=True)],
                              ("features", 3), 6, 2),
    "bilstm_proj_2layer": ([rnn("LSTM", "rnn.", input_size=3, hidden_size=6, proj_size=2,
                                num_layers=2, bidirectional=True)],
                           ("features", 3), 5, 2),
    "bigru_hn_time_major": ([rnn("GRU", "gru.", input_size=2, hidden_size=4, num_layers=2,
                                 bidirectional=True),
                             select("h_n"), linear("fc.", 8, 2, "tanh")],
                            ("features", 2), 6, 2),
    "lstm_nobias_last": ([rnn("LSTM", "rnn.", input_size=3, hidden_size=5, bias=False,
                              batch_first=True),
                          select("last_step"), linear("fc.", 5, 2, bias=False)],
                         ("features", 3), 6, 2),
    "gru_nobias_hn": ([rnn("GRU", "rnn.", input_size=4, hidden_size=5, bias=False,
                           num_layers=2, spec_keys=ALL_RNN),
                       select("h_n")], ("features", 4), 5, 3),
    "emb_gru_last": ([embedding("emb.", 11, 4, padding_idx=0),
                      rnn("GRU", "gru.", input_size=4, hidden_size=6, batch_first=True),
                      select("last_step"), linear("fc.", 6, 5, "log_softmax")],
                     ("vocab", 11), 7, 3),
    "emb_lstm_time_major_hn": ([embedding("embed.", 9, 3),
                                rnn("LSTM", "lstm.", input_size=3, hidden_size=5),
                                select("h_n"), linear("head.", 5, 2, "sigmoid")],
                               ("vocab", 9), 6, 2),
    "emb_bilstm_tagger": ([embedding("emb.", 13, 5, padding_idx=2),
                           rnn("LSTM", "rnn.", input_size=5, hidden_size=4,
                               bidirectional=True, batch_first=True),
                           linear("tags.", 8, 6, "log_softmax")], ("vocab", 13), 6, 2),
    # Separate recurrent modules in a chain, an input projection, a nested head.
    "stacked_modules": ([linear("inp.", 4, 5, "relu"),
                         rnn("LSTM", "lstm.", input_size=5, hidden_size=6, batch_first=True),
                         rnn("GRU", "gru.", input_size=6, hidden_size=4, batch_first=True),
                         select("last_step"), dropout(),
                         linear("head.0.", 4, 6, {"name": "elu", "alpha": 0.5}),
                         activation({"name": "leaky_relu", "negative_slope": 0.2}),
                         linear("head.2.", 6, 3)], ("features", 4), 6, 2),
    "head_activations_a": ([rnn("RNN", "rnn.", input_size=3, hidden_size=6, batch_first=True),
                            select("h_n"),
                            linear("l1.", 6, 6, "relu6"), linear("l2.", 6, 6, "hardsigmoid"),
                            linear("l3.", 6, 6, "hardswish"), linear("l4.", 6, 6, "softsign"),
                            linear("l5.", 6, 6, "selu"), linear("l6.", 6, 4, "silu")],
                           ("features", 3), 5, 3),
    "head_activations_b": ([rnn("GRU", "rnn.", input_size=3, hidden_size=6, batch_first=True),
                            select("last_step"),
                            linear("l1.", 6, 6, "mish"), linear("l2.", 6, 6, "softplus"),
                            linear("l3.", 6, 6, "logsigmoid"),
                            linear("l4.", 6, 6, "tanhshrink"), linear("l5.", 6, 5, "sigmoid"),
                            activation("tanh")], ("features", 3), 5, 2),
}


# ----------------------------------------------------------------------------- torch side

TORCH_TYPES = {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU, "Linear": nn.Linear,
               "Embedding": nn.Embedding, "Dropout": nn.Dropout}


def apply_activation(x, act):
    """Call torch.nn.functional as the spec's activation names it."""
    name, kwargs = (act, {}) if isinstance(act, str) else (
        act["name"], {k: v for k, v in act.items() if k != "name"})
    if name == "none":
        return x
    if name in ("softmax", "log_softmax"):
        kwargs.setdefault("dim", -1)
    return getattr(F, name)(x, **kwargs)


class Chain(nn.Module):
    """Runs the descriptors in order, as a hand-written forward() would."""

    def __init__(self, descriptors):
        super().__init__()
        self.steps = []
        for d in descriptors:
            if d["kind"] in TORCH_TYPES:
                module = TORCH_TYPES[d["kind"]](**d["kwargs"])
                attr = d.get("prefix", "").rstrip(".") or f"m{len(self.steps)}"
                self._attach(attr, module)
                self.steps.append((d, module))
            else:
                self.steps.append((d, None))

    def _attach(self, dotted, module):
        # "head.0" -> self.head = ModuleDict({"0": module}); keys become "head.0.weight".
        parts = dotted.split(".")
        owner = self
        for part in parts[:-1]:
            if not hasattr(owner, part):
                owner.add_module(part, nn.ModuleDict())
            owner = getattr(owner, part)
        owner.add_module(parts[-1], module)

    def forward(self, x):
        h_n = None
        for d, module in self.steps:
            if isinstance(module, nn.RNNBase):
                x, state = module(x)
                h_n = state[0] if isinstance(module, nn.LSTM) else state
                batch_first, bidir = module.batch_first, module.bidirectional
            elif module is not None:
                x = module(x)
                if d["kind"] == "Linear":
                    x = apply_activation(x, d["activation"])
            elif d["kind"] == "Activation":
                x = apply_activation(x, d["activation"])
            elif d["mode"] == "last_step":
                x = x[:, -1] if batch_first else x[-1]
            elif d["mode"] == "h_n":
                x = torch.cat((h_n[-2], h_n[-1]), 1) if bidir else h_n[-1]
        return x


class Bare(nn.Module):
    """A recurrent module used on its own: model(x) is its output sequence."""

    def __init__(self, descriptor):
        super().__init__()
        d = descriptor
        self.rnn = TORCH_TYPES[d["kind"]](**d["kwargs"])

    def forward(self, x):
        return self.rnn(x)[0]

    def state_dict_for_user(self):
        return self.rnn.state_dict()


# ----------------------------------------------------------------------------- spec side

# Specs that state the input size (checked against the weights); the rest leave it out.
STATES_INPUT = {"lstm_2layer_hn", "bigru_2layer_last", "gru_nobias_hn", "emb_gru_last",
                "stacked_modules"}


def spec_for(descriptors, inp, with_input) -> dict:
    modules = []
    for d in descriptors:
        kind = d["kind"]
        if kind == "select":
            modules.append({"select": d["mode"]})
            continue
        entry = {"type": kind}
        if "prefix" in d:
            entry["prefix"] = d["prefix"]
        for k in d.get("spec_keys", ()):
            if k in d["kwargs"]:
                entry[k] = d["kwargs"][k]
        if "activation" in d and d["activation"] != "none":
            entry["activation"] = d["activation"]
        modules.append(entry)
    spec = {"version": 1, "input": {inp[0]: inp[1]}} if with_input else {}
    spec["modules"] = modules
    return spec


# ----------------------------------------------------------------------------- writing

def make(name, descriptors, inp, T, B, seed, out_dir):
    torch.manual_seed(seed)
    bare = len(descriptors) == 1 and descriptors[0]["prefix"] == ""
    model = Bare(descriptors[0]) if bare else Chain(descriptors)
    model.eval()
    state = model.state_dict_for_user() if bare else model.state_dict()

    recurrent = [d for d in descriptors if d["kind"] in ("RNN", "LSTM", "GRU")]
    batch_first = recurrent[0]["kwargs"].get("batch_first", False)
    bidirectional = any(d["kwargs"].get("bidirectional", False) for d in recurrent)
    selects = [d["mode"] for d in descriptors if d["kind"] == "select"]
    select_mode = selects[0] if selects else "all_steps"

    shape = (B, T) if batch_first else (T, B)
    if inp[0] == "vocab":
        x = torch.randint(0, inp[1], shape, dtype=torch.int64)
    else:
        x = torch.randn(*shape, inp[1])
    with torch.no_grad():
        y = model(x)
        io = {"x": x.numpy(), "y": y.numpy()}
        if not bidirectional and select_mode != "all_steps":
            # What a stream must answer after step t: the model run on the prefix.
            prefix = [model(x[:, :t + 1] if batch_first else x[:t + 1]) for t in range(T)]
            io["y_prefix"] = torch.stack(prefix).numpy()

    np.savez(out_dir / f"{name}.weights.npz",
             **{k: v.detach().numpy() for k, v in state.items()})
    with open(out_dir / f"{name}.spec.json", "w") as f:
        json.dump(spec_for(descriptors, inp, name in STATES_INPUT), f, indent=1)
        f.write("\n")
    np.savez(out_dir / f"{name}.io.npz", **io)
    return {"name": name, "batch_first": batch_first, "bidirectional": bidirectional,
            "select": select_mode, "input": inp[0], "input_size": inp[1], "T": T, "B": B,
            "recurrent_layers": sum(d["kwargs"].get("num_layers", 1) for d in recurrent)}


def main():
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    manifest = [make(name, d, inp, T, B, seed, out_dir)
                for seed, (name, (d, inp, T, B)) in enumerate(sorted(FIXTURES.items()))]
    with open(out_dir / "manifest.json", "w") as f:
        json.dump({"torch": torch.__version__, "fixtures": manifest}, f, indent=1)
        f.write("\n")
    total = sum(p.stat().st_size for p in out_dir.iterdir())
    print(f"wrote {len(manifest)} fixtures to {out_dir} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
