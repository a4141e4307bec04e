"""The `rnnrt` console script: convert, info, run, bench."""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from .panels import PANEL, panel_count


def _fmt_shape(shape) -> str:
    return "(" + ", ".join("?" if d is None or isinstance(d, str) else str(d) for d in shape) + ")"


def _weights(layer, role, arr) -> int:
    """How many weights a tensor holds: gate panels (rnnrt/panels.py) less their padding."""
    if role in ("Wp", "Rp"):
        H = layer["attrs"]["hidden_size"]
        return int(arr.size) * H // (panel_count(H) * PANEL)
    return int(arr.size)


def describe(model) -> str:
    """A human-readable summary: inputs, layers with their shapes and sizes, outputs."""
    p = model._plan
    slots = {s.name: s for s in p.slots}
    tensors = model._file.tensors
    lines = [f"{model.path}  ({os.path.getsize(model.path):,} bytes, "
             f"{model.metadata.get('converter', '?')}, source "
             f"{model.metadata.get('source', '?')})", "inputs:"]
    lines += [f"  {i.name:<16} {i.dtype:<8} {_fmt_shape(i.shape)}" for i in model.inputs]
    lines.append("layers:")
    total = 0
    for layer in model.graph["layers"]:
        a = layer["attrs"]
        count = sum(_weights(layer, role, tensors[t]) for role, t in layer["params"].items())
        total += count
        what = layer["kind"]
        if what == "Recurrent":
            what += (f" {a['cell'].upper()} {a['direction']} hidden={a['hidden_size']} "
                     f"input={a['input_size']}")
        elif "activation" in a:
            what += f" {a['activation']['name']}"
        reads = [v for k, v in a.items() if k in ("x", "ids", "seq_lens", "mask", "h0", "c0") and v]
        writes = [v for k, v in a.items()
                  if k in ("y", "h_n", "c_n", "h_last", "c_last", "out") and v]
        shapes = ", ".join(f"{w}{_fmt_shape(slots[w].shape)}" for w in writes)
        lines.append(f"  {layer['name']:<16} {what}")
        lines.append(f"  {'':<16} {', '.join(reads)} -> {shapes}   params={count:,}")
    lines.append("outputs:")
    lines += [f"  {o.name:<16} {o.dtype:<8} {_fmt_shape(o.shape)}" for o in model.outputs]
    lines.append(f"parameters: {total:,}")
    streamable = all(d == "forward" for (*_, d) in p.recurrent)
    lines.append(f"streamable: {'yes' if streamable else 'no (has reverse/bidirectional layers)'}")
    return "\n".join(lines)


def main(argv=None) -> int:
    from . import bench, convert, load
    from .errors import RnnrtError

    ap = argparse.ArgumentParser(prog="rnnrt", description="CPU inference runtime for RNNs")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert", help="convert a Keras/PyTorch .npz (or .onnx) to .rnnrt")
    c.add_argument("src")
    c.add_argument("-o", "--output", required=True, help="destination .rnnrt file")
    c.add_argument("--config", help="Keras: file holding model.to_json()")
    c.add_argument("--spec", help="PyTorch: JSON spec of the module chain")
    i = sub.add_parser("info", help="layers, shapes, parameter count, file size")
    i.add_argument("model")
    r = sub.add_parser("run", help="run a model on a .npy input, write the outputs as .npz")
    r.add_argument("model")
    r.add_argument("input", help=".npy (single input) or .npz (one array per input name)")
    r.add_argument("-o", "--output", required=True, help="destination .npz")
    r.add_argument("--threads", type=int, default=None)
    b = sub.add_parser("bench", help="time run (and step) on random inputs; --onnx compares "
                                     "with onnxruntime")
    bench.add_arguments(b)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "convert":
            path = convert(args.src, args.output, config=args.config, spec=args.spec)
            print(describe(load(path)))
        elif args.cmd == "info":
            print(describe(load(args.model)))
        elif args.cmd == "bench":
            bench.main(args)
        else:
            model = load(args.model, num_threads=args.threads)
            data = np.load(args.input)
            feeds = dict(data) if isinstance(data, np.lib.npyio.NpzFile) else data
            outs = model.run(feeds)
            np.savez(args.output, **{o.name: v for o, v in zip(model.outputs, outs)})
            print(f"wrote {len(outs)} output(s) to {args.output}: " +
                  ", ".join(f"{o.name}{v.shape}" for o, v in zip(model.outputs, outs)))
    except (RnnrtError, FileNotFoundError) as e:
        print(f"rnnrt {args.cmd}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
