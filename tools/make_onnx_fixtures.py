"""Make the golden ONNX fixtures in tests/fixtures/onnx/torch/ from real torch.onnx.export runs.

    /work/fixenv/bin/python tools/make_onnx_fixtures.py [OUT_DIR] [--only NAME ...]

Needs torch, onnx, onnxruntime and onnxscript (CI has none of them: the fixtures are committed).
Every model is small, seeded, built the way users write them (an nn.Module with the recurrent
layer as an attribute and a forward() that picks outputs), and exported twice:

    <name>.dynamo.onnx   torch.onnx.export(..., dynamo=True), batch and time dynamic through
                         dynamic_shapes / torch.export.Dim
    <name>.legacy.onnx   torch.onnx.export(..., dynamo=False), batch and time in dynamic_axes

Models marked `bigfold` get a third file, <name>_bigfold.dynamo.onnx: dynamo=True with
optimize=False, then the exporter's own optimisation (onnxscript optimize_ir +
onnx_fusions.fuse) run by hand with a constant-fold input limit below the model's weight sizes.
That is what the default export does to a model whose weight matrices exceed onnxscript's
8192-element fold limit (any real-sized model): the Slice / Concat / Unsqueeze chains that
reorder the gates stay in the graph instead of being folded into initializers.

Next to each .onnx, <stem>.npz holds the inputs and torch's outputs at three (batch, time)
sizes. Keys are "<onnx name>@<i>", i indexing the fixture's `sizes` in manifest.json (also
stored in the .npz under the key "sizes", shape (3, 2), rows (batch, time)). The sizes are the
export size, (1, 1) and (5, 9); onnxruntime must reproduce torch within 1e-5 (max abs) at all
three. Where it does not because the exported graph fixed the time axis (the dynamo exporter
does this for nn.RNN and time-major LSTM/GRU), the file is still kept with the sizes
(export, (1, T), (5, T)), T the export time, if onnxruntime matches there; manifest
"dynamic_axes_verified" says which, and README.md lists what failed. An export that raises, or
that onnxruntime refuses or gets wrong even at the export time, keeps no file and is listed
in README.md and manifest.json["failures"].

Each export runs in a child interpreter (`--child NAME EXPORTER OUT_DIR`, internal): with
torch 2.13 a second dynamo export of an LSTM in the same process loses its dynamic time axis.

The dynamo exporter annotates every node and value with metadata_props (module path, FX node
text, Python stack trace with absolute paths, what a constant was folded from). They are dropped:
they are two thirds of the bytes, the stack traces would differ between checkouts, and ONNX
gives them no meaning. Nothing else in the exported graph is changed.

Re-running rewrites every file; the output is byte-identical for the same library versions.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "onnx" / "torch"
OTHER_SIZES = ((1, 1), (5, 9))  # (batch, time) besides the export size
TOLERANCE = 1e-5
BIGFOLD_INPUT_LIMIT = 32  # elements: below every weight matrix (a 4H or 8H bias may stay too)


class RecurrentModel(nn.Module):
    """[Embedding ->] RNN/LSTM/GRU -> pick outputs [-> Linear [-> activation]].

    pick: "y" the full output sequence; "y_state" (y, h_n[, c_n]); "last" y at the last step;
    "h_n_last" h_n[-1] (the last layer's final state, the backward one when bidirectional).
    """

    def __init__(self, kind, rnn_kwargs, pick, vocab=None, embed_dim=None, head=None,
                 activation=None):
        super().__init__()
        self.kind = kind
        self.pick = pick
        self.batch_first = rnn_kwargs.get("batch_first", False)
        self.embedding = nn.Embedding(vocab, embed_dim) if vocab else None
        self.rnn = getattr(nn, kind)(**rnn_kwargs)
        self.head = nn.Linear(*head) if head else None
        self.activation = activation

    def forward(self, x, h0=None, c0=None):
        if self.embedding is not None:
            x = self.embedding(x)
        if h0 is None:
            y, state = self.rnn(x)
        elif c0 is None:
            y, state = self.rnn(x, h0)
        else:
            y, state = self.rnn(x, (h0, c0))
        if self.pick == "y_state":
            return (y, *state) if self.kind == "LSTM" else (y, state)
        h_n = state[0] if self.kind == "LSTM" else state
        if self.pick == "last":
            out = y[:, -1] if self.batch_first else y[-1]
        elif self.pick == "h_n_last":
            out = h_n[-1]
        else:
            out = y
        if self.head is not None:
            out = self.head(out)
        if self.activation == "softmax":
            out = torch.softmax(out, dim=-1)
        elif self.activation == "log_softmax":
            out = torch.log_softmax(out, dim=-1)
        elif self.activation is not None:
            out = getattr(torch, self.activation)(out)
        return out


# name -> model description. rnn: constructor arguments; pick: see RecurrentModel; state: the
# initial state is a graph input; vocab/embed_dim: nn.Embedding in front (input = token ids);
# head: nn.Linear(in, out); activation after it; size: export (batch, time);
# opset: {exporter: opset_version}; bigfold: the extra dynamo export described above.
MODELS = {
    "rnn_tanh_seq": dict(
        kind="RNN", rnn=dict(input_size=3, hidden_size=5, batch_first=True), pick="y",
        size=(2, 6), opset={"dynamo": 20, "legacy": 20}),
    "rnn_relu_2layer_state": dict(
        kind="RNN", rnn=dict(input_size=4, hidden_size=6, num_layers=2, nonlinearity="relu"),
        pick="y_state", state=True, size=(3, 5), opset={"dynamo": 20, "legacy": 11}),
    "rnn_tanh_bi_hn": dict(
        kind="RNN", rnn=dict(input_size=3, hidden_size=4, bidirectional=True, batch_first=True),
        pick="y_state", size=(2, 6), opset={"dynamo": 18, "legacy": 14}),
    "lstm_2layer_state": dict(
        kind="LSTM", rnn=dict(input_size=4, hidden_size=5, num_layers=2),
        pick="y_state", state=True, size=(3, 5), opset={"dynamo": 20, "legacy": 20}),
    "lstm_bi_2layer": dict(
        kind="LSTM", rnn=dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True,
                              batch_first=True),
        pick="y_state", size=(2, 6), opset={"dynamo": 20, "legacy": 20}, bigfold=True),
    "lstm_proj": dict(
        kind="LSTM", rnn=dict(input_size=4, hidden_size=6, proj_size=3, batch_first=True),
        pick="y_state", size=(2, 6), opset={"dynamo": 20, "legacy": 20}),
    "gru_time_major": dict(
        kind="GRU", rnn=dict(input_size=5, hidden_size=6), pick="y",
        size=(3, 5), opset={"dynamo": 20, "legacy": 11}),
    "gru_bi_2layer_state": dict(
        kind="GRU", rnn=dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True,
                             batch_first=True),
        pick="y_state", state=True, size=(2, 6), opset={"dynamo": 20, "legacy": 20},
        bigfold=True),
    "emb_lstm_linear": dict(
        kind="LSTM", rnn=dict(input_size=4, hidden_size=6, batch_first=True), pick="y",
        vocab=11, embed_dim=4, head=(6, 11), size=(2, 6), opset={"dynamo": 20, "legacy": 20},
        bigfold=True),
    "emb_gru_linear": dict(
        kind="GRU", rnn=dict(input_size=5, hidden_size=4), pick="y",
        vocab=11, embed_dim=5, head=(4, 11), size=(3, 5), opset={"dynamo": 20, "legacy": 20}),
    "lstm_last_softmax": dict(
        kind="LSTM", rnn=dict(input_size=3, hidden_size=5, batch_first=True), pick="last",
        head=(5, 4), activation="softmax", size=(2, 6), opset={"dynamo": 20, "legacy": 20}),
    "lstm_last_logsoftmax": dict(
        kind="LSTM", rnn=dict(input_size=3, hidden_size=5, batch_first=True), pick="last",
        head=(5, 4), activation="log_softmax", size=(2, 6), opset={"dynamo": 20, "legacy": 20}),
    "lstm_last_relu": dict(
        kind="LSTM", rnn=dict(input_size=4, hidden_size=6), pick="last",
        head=(6, 3), activation="relu", size=(3, 5), opset={"dynamo": 20, "legacy": 20}),
    "lstm_last_sigmoid": dict(
        kind="LSTM", rnn=dict(input_size=3, hidden_size=5, batch_first=True), pick="last",
        head=(5, 2), activation="sigmoid", size=(2, 6), opset={"dynamo": 20, "legacy": 11}),
    "lstm_last_tanh": dict(
        kind="LSTM", rnn=dict(input_size=3, hidden_size=4, bidirectional=True, batch_first=True),
        pick="last", head=(8, 3), activation="tanh", size=(2, 6),
        opset={"dynamo": 20, "legacy": 20}),
    "lstm_2layer_hn_last": dict(
        kind="LSTM", rnn=dict(input_size=4, hidden_size=5, num_layers=2, batch_first=True),
        pick="h_n_last", head=(5, 3), size=(2, 6), opset={"dynamo": 20, "legacy": 20}),
}


def describe(spec) -> str:
    """One line saying what the model is, for the manifest and README."""
    r = spec["rnn"]
    parts = [spec["kind"]]
    if spec["kind"] == "RNN":
        parts.append(r.get("nonlinearity", "tanh"))
    parts.append(f"in={r['input_size']} hidden={r['hidden_size']}")
    for key in ("num_layers", "proj_size"):
        if key in r:
            parts.append(f"{key}={r[key]}")
    parts.append("bidirectional" if r.get("bidirectional") else "forward")
    parts.append("batch_first" if r.get("batch_first") else "time_major")
    chain = " ".join(parts)
    if spec.get("vocab"):
        chain = f"Embedding({spec['vocab']}, {spec['embed_dim']}) -> " + chain
    if spec.get("state"):
        chain += " [initial state as inputs]"
    chain += {"y": " -> output", "y_state": " -> (output, h_n[, c_n])",
              "last": " -> output[last step]", "h_n_last": " -> h_n[-1]"}[spec["pick"]]
    if spec.get("head"):
        chain += f" -> Linear{tuple(spec['head'])}"
    if spec.get("activation"):
        chain += f" -> {spec['activation']}"
    return chain


def build(name, spec) -> RecurrentModel:
    torch.manual_seed(sum(name.encode()))  # a fixed seed per model, independent of order
    model = RecurrentModel(spec["kind"], spec["rnn"], spec["pick"], spec.get("vocab"),
                           spec.get("embed_dim"), spec.get("head"), spec.get("activation"))
    return model.eval()


def io_layout(spec):
    """Input names, each with its {axis: 'batch'|'time'}; output names with theirs."""
    r = spec["rnn"]
    seq_axes = {0: "batch", 1: "time"} if r.get("batch_first") else {0: "time", 1: "batch"}
    inputs = {"x": seq_axes}
    if spec.get("state"):
        inputs["h0"] = {1: "batch"}
        if spec["kind"] == "LSTM":
            inputs["c0"] = {1: "batch"}
    if spec["pick"] == "y_state":
        outputs = {"y": seq_axes, "h_n": {1: "batch"}}
        if spec["kind"] == "LSTM":
            outputs["c_n"] = {1: "batch"}
    elif spec["pick"] == "y":
        outputs = {"y": seq_axes}
    else:
        outputs = {"y": {0: "batch"}}
    return inputs, outputs


def make_inputs(spec, batch, time, rng) -> dict:
    r = spec["rnn"]
    seq_shape = (batch, time) if r.get("batch_first") else (time, batch)
    if spec.get("vocab"):
        feeds = {"x": rng.integers(0, spec["vocab"], size=seq_shape, dtype=np.int64)}
    else:
        feeds = {"x": rng.standard_normal((*seq_shape, r["input_size"])).astype(np.float32)}
    if spec.get("state"):
        directions = 2 if r.get("bidirectional") else 1
        rows = r.get("num_layers", 1) * directions
        h_size = r.get("proj_size") or r["hidden_size"]
        feeds["h0"] = (0.5 * rng.standard_normal((rows, batch, h_size))).astype(np.float32)
        if spec["kind"] == "LSTM":
            feeds["c0"] = (0.5 * rng.standard_normal((rows, batch, r["hidden_size"])))\
                .astype(np.float32)
    return feeds


def run_torch(model, feeds, output_names) -> dict:
    with torch.no_grad():
        result = model(*(torch.from_numpy(v) for v in feeds.values()))
    if isinstance(result, torch.Tensor):
        result = (result,)
    return {n: t.numpy().copy() for n, t in zip(output_names, result)}


def strip_metadata(model_proto):
    for item in [*model_proto.graph.node, *model_proto.graph.value_info]:
        del item.metadata_props[:]


def export_dynamo(model, args, input_axes, output_names, opset, fold_limit=None):
    """torch.onnx.export(dynamo=True); with fold_limit, the exporter's optimiser is re-run by
    hand with that constant-fold input limit (see the module docstring)."""
    batch = torch.export.Dim("batch", min=1)
    time = torch.export.Dim("time", min=1)
    dims = {"batch": batch, "time": time}
    dynamic_shapes = {name: {axis: dims[role] for axis, role in axes.items()}
                      for name, axes in input_axes.items()}
    program = torch.onnx.export(
        model, args, dynamo=True, opset_version=opset, input_names=list(input_axes),
        output_names=output_names, dynamic_shapes=dynamic_shapes,
        optimize=fold_limit is None, verbose=False)
    if fold_limit is not None:
        import onnxscript.optimizer
        import onnxscript.rewriter.onnx_fusions
        onnxscript.optimizer.optimize_ir(program.model, input_size_limit=fold_limit)
        onnxscript.rewriter.onnx_fusions.fuse(program.model)
    return program.model_proto


def export_legacy(model, args, input_axes, output_axes, opset, path):
    torch.onnx.export(
        model, args, str(path), dynamo=False, opset_version=opset,
        input_names=list(input_axes), output_names=list(output_axes),
        dynamic_axes={**input_axes, **output_axes})
    return onnx.load(str(path))


def first_line(error: BaseException) -> str:
    """The error on one line, its middle cut when long (onnxruntime puts the useful part last,
    torch first)."""
    text = " ".join(ln.strip() for ln in str(error).splitlines() if ln.strip())
    if "Torch IR graph at exception" in text:
        text = text[:text.index("Torch IR graph at exception")]
    if len(text) > 360:
        text = f"{text[:150]} ... {text[-200:]}"
    return f"{type(error).__name__}: {text}"


def check_with_ort(session, spec, sizes, model, output_names, seed):
    """Inputs and torch outputs at every size, onnxruntime's max abs error on each, and the
    problems met, one per failing size (empty when onnxruntime matched at every size)."""
    graph_outputs = [o.name for o in session.get_outputs()]
    rng = np.random.default_rng(seed)
    arrays, errors, problems = {}, [], []
    for i, (batch, time) in enumerate(sizes):
        feeds = make_inputs(spec, batch, time, rng)
        expected = run_torch(model, feeds, output_names)
        arrays.update({f"{n}@{i}": v for n, v in feeds.items()})
        arrays.update({f"{n}@{i}": expected[n] for n in graph_outputs})
        at = f"(batch, time) = ({batch}, {time})"
        try:
            got = session.run(None, feeds)
        except Exception as error:  # onnxruntime refusing a size is the finding to record
            problems.append(f"{at}: onnxruntime: {first_line(error)}")
            continue
        wrong_shapes = [f"{n} {g.shape} where torch has {expected[n].shape}"
                        for n, g in zip(graph_outputs, got) if g.shape != expected[n].shape]
        if wrong_shapes:
            problems.append(f"{at}: onnxruntime runs but returns {', '.join(wrong_shapes)}")
            continue
        errors.append(max(float(np.max(np.abs(g - expected[n])))
                          for n, g in zip(graph_outputs, got)))
        if errors[-1] > TOLERANCE:
            problems.append(f"{at}: onnxruntime differs from torch by {errors[-1]:.2e}")
    return arrays, errors, graph_outputs, problems


def graph_inputs(model_proto):
    initializers = {t.name for t in model_proto.graph.initializer}
    return [i.name for i in model_proto.graph.input if i.name not in initializers]


def op_types(model_proto):
    """Op types used, each with the opset of its domain."""
    versions = {o.domain: o.version for o in model_proto.opset_import}
    return sorted({f"{n.op_type}@{versions.get(n.domain, '?')}" +
                   (f" ({n.domain})" if n.domain else "") for n in model_proto.graph.node})


def export_and_check(name, spec, exporter, out_dir) -> dict:
    """Export one model with one exporter, check it with onnxruntime, write .onnx and .npz.
    Returns the manifest record; "error" in it means nothing was kept."""
    stem = f"{name}_bigfold.dynamo" if exporter == "dynamo_bigfold" else f"{name}.{exporter}"
    path = out_dir / f"{stem}.onnx"
    model = build(name, spec)
    input_axes, output_axes = io_layout(spec)
    output_names = list(output_axes)
    batch0, time0 = spec["size"]
    seed = sum(stem.encode())
    args = tuple(torch.from_numpy(v) for v in
                 make_inputs(spec, batch0, time0, np.random.default_rng(seed)).values())
    opset = spec["opset"]["legacy" if exporter == "legacy" else "dynamo"]
    record = {"file": path.name, "exporter": exporter, "model": name,
              "description": describe(spec), "requested_opset": opset}
    path.unlink(missing_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if exporter == "legacy":
                proto = export_legacy(model, args, input_axes, output_axes, opset, path)
            else:
                limit = BIGFOLD_INPUT_LIMIT if exporter == "dynamo_bigfold" else None
                proto = export_dynamo(model, args, input_axes, output_names, opset, limit)
    except Exception as error:  # the exporter's own failure is the finding to record
        path.unlink(missing_ok=True)
        return {**record, "stage": "export", "error": first_line(error)}
    strip_metadata(proto)
    onnx.save_model(proto, str(path))
    names_in = graph_inputs(proto)
    if names_in != list(input_axes):
        path.unlink()
        return {**record, "stage": "inputs",
                "error": f"graph inputs {names_in}, expected {list(input_axes)}"}
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3  # declared output shapes with a fixed time only warn
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime refusing the file is a finding too
        path.unlink()
        return {**record, "stage": "onnxruntime load", "error": first_line(error)}
    # Batch and time dynamic; failing that, batch alone at the export time (some dynamo
    # graphs fix the time axis), so the graph is still kept and tested.
    attempts = {("batch", "time"): [(batch0, time0), *OTHER_SIZES],
                ("batch",): [(batch0, time0), (1, time0), (5, time0)]}
    problems = []
    at_export_size = f"(batch, time) = ({batch0}, {time0}):"
    dynamic = None
    for axes, sizes in attempts.items():
        arrays, errors, graph_outputs, found = check_with_ort(
            session, spec, sizes, model, output_names, seed + 1)
        if not found:
            dynamic = axes
            break
        problems += found
        if found[0].startswith(at_export_size):
            break  # wrong at the export size itself: no fallback can keep it
    if dynamic is None:
        path.unlink()
        return {**record, "stage": "onnxruntime", "error": "; ".join(problems)}
    np.savez(out_dir / f"{stem}.npz", sizes=np.array(sizes, dtype=np.int64), **arrays)
    return {
        **record, "npz": f"{stem}.npz",
        "opset": {o.domain or "ai.onnx": o.version for o in proto.opset_import},
        "ir_version": proto.ir_version,
        "inputs": [{"name": n, "axes": {str(k): v for k, v in input_axes[n].items()},
                    "dtype": str(arrays[f"{n}@0"].dtype)} for n in names_in],
        "outputs": graph_outputs,
        "dynamic_axes_verified": list(dynamic),
        "dynamic_axes_problem": "; ".join(problems) or None,
        "sizes": [list(s) for s in sizes],
        "max_abs_error_vs_onnxruntime": errors,
        "op_types": op_types(proto),
        "bytes": path.stat().st_size,
    }


def export_in_child(name, exporter, out_dir) -> dict:
    """Run export_and_check in a fresh interpreter: with torch 2.13, a second dynamo export of
    an LSTM in one process loses the dynamic time axis (the exporter's while-loop
    decomposition is not applied again), so each export gets a process of its own."""
    done = subprocess.run([sys.executable, __file__, "--child", name, exporter, str(out_dir)],
                          capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"file": f"{name}.{exporter}.onnx", "exporter": exporter, "model": name,
                "description": describe(MODELS[name]), "stage": "crash", "error": tail[:300]}
    return json.loads(lines[-1])


def write_readme(out_dir, manifest):
    versions = manifest["versions"]
    lines = [
        "# ONNX graphs exported by torch.onnx.export",
        "",
        "Generated by `tools/make_onnx_fixtures.py` (usage in its docstring); do not edit by hand.",
        f"torch {versions['torch']}, onnx {versions['onnx']}, onnxruntime "
        f"{versions['onnxruntime']}, onnxscript {versions['onnxscript']}.",
        "",
        "Each `<stem>.onnx` has `<stem>.npz`: inputs and torch's outputs at the (batch, time) "
        "sizes listed for it in manifest.json (also stored under the key `sizes`), keys "
        f"`<onnx name>@<index into sizes>`. onnxruntime matched torch within {TOLERANCE} "
        "at every stored size.",
        "",
        "| file | opset | ir | dynamic axes verified | model |",
        "|---|---|---|---|---|",
    ]
    for f in manifest["fixtures"]:
        lines.append(f"| {f['file']} | {f['opset'].get('ai.onnx')} | {f['ir_version']} | "
                     f"{' + '.join(f['dynamic_axes_verified'])} | {f['description']} |")
    lines += ["", "## Kept, but the time axis is not dynamic", "",
              "Stored at the export time only (batch varies); what went wrong at other times:", ""]
    partial = [f for f in manifest["fixtures"] if f["dynamic_axes_problem"]]
    lines += [f"- `{f['file']}` {f['dynamic_axes_problem']}" for f in partial] or ["None."]
    lines += ["", "## Failures (no file kept)", ""]
    lines += [f"- `{f['model']}` ({f['description']}) with `{f['exporter']}`, "
              f"{f['stage']}: `{f['error']}`" for f in manifest["failures"]] or ["None."]
    (out_dir / "README.md").write_text("\n".join(lines) + "\n")


def main(argv):
    if argv[:1] == ["--child"]:
        name, exporter, out_dir = argv[1:4]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            record = export_and_check(name, MODELS[name], exporter, Path(out_dir))
        print(json.dumps(record))
        return
    only = set(argv[argv.index("--only") + 1:]) if "--only" in argv else None
    positional = argv[:argv.index("--only")] if "--only" in argv else argv
    out_dir = Path(positional[0]) if positional else OUT
    out_dir.mkdir(parents=True, exist_ok=True)
    unknown = (only or set()) - set(MODELS)
    if unknown:
        raise SystemExit(f"unknown model(s) {sorted(unknown)}; known: {sorted(MODELS)}")
    import onnxscript
    manifest = {"versions": {"torch": torch.__version__, "onnx": onnx.__version__,
                             "onnxruntime": ort.__version__,
                             "onnxscript": onnxscript.__version__},
                "tolerance": TOLERANCE,
                "npz_keys": "<onnx input/output name>@<index into sizes>",
                "fixtures": [], "failures": []}
    for name, spec in MODELS.items():
        if only and name not in only:
            continue
        exporters = ["dynamo", "legacy"] + (["dynamo_bigfold"] if spec.get("bigfold") else [])
        for exporter in exporters:
            record = export_in_child(name, exporter, out_dir)
            if "error" in record:
                manifest["failures"].append(record)
                print(f"{record['file']}: FAILED at {record['stage']}: {record['error']}")
                continue
            manifest["fixtures"].append(record)
            partial = record["dynamic_axes_problem"]
            print(f"{record['file']}: ok, {record['bytes']} bytes, dynamic "
                  f"{'+'.join(record['dynamic_axes_verified'])}" +
                  (f" (not time: {partial})" if partial else ""))
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    write_readme(out_dir, manifest)


if __name__ == "__main__":
    main(sys.argv[1:])
