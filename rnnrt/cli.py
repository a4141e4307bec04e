"""The `rnnrt` console script: convert, info, run, bench."""

from __future__ import annotations

import argparse
import os
import sys
import zipfile

import numpy as np

from .errors import InputError, RnnrtError
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
    why = model.step_refusal()
    lines.append(f"streamable: {'yes' if why is None else 'no: ' + why}")
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (`rnnrt run: error: ...`), status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def check_output_path(path: str, flag: str) -> None:
    """Refuse a destination that cannot be written before any work is done: its directory
    must exist and it must not be a directory itself."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise InputError(f"{flag} {path!r}: no such directory {directory!r}")
    if os.path.isdir(path):
        raise InputError(f"{flag} {path!r} is a directory, not a file to write")


def read_arrays(path: str):
    """The arrays of an .npy (one array) or .npz (a dict by name) file; no pickles."""
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.lib.npyio.NpzFile):
            with data:
                return dict(data)
        return data
    except EOFError:
        why = "it is empty or truncated"
    except (ValueError, zipfile.BadZipFile) as e:
        # np.load takes a file that is neither .npy nor .npz for a pickle, and says so.
        why = ("it is not a .npy or .npz file" if "pickled" in str(e) else
               "it holds Python objects (an object array), not numbers"
               if "Object arrays" in str(e) else str(e))
    raise InputError(f"cannot read the input {path!r} as .npy or .npz arrays: {why}")


def _os_error(e: OSError) -> str:
    """'No such file or directory: 'x.npy'': the reason and the path(s), without [Errno]."""
    names = [repr(os.fspath(n)) for n in (e.filename, e.filename2) if n is not None]
    return f"{e.strerror or e}" + (f": {' -> '.join(names)}" if names else "")


def _run(args) -> None:
    """The `rnnrt run` subcommand."""
    from . import load

    check_output_path(args.output, "-o")
    model = load(args.model, num_threads=args.threads)
    outs = model.run(read_arrays(args.input))
    # An open file, so that the outputs go to exactly this path (np.savez adds .npz to a
    # name without it).
    with open(args.output, "wb") as f:
        np.savez(f, **{o.name: v for o, v in zip(model.outputs, outs)})
    print(f"wrote {len(outs)} output(s) to {args.output}: " +
          ", ".join(f"{o.name}{v.shape}" for o, v in zip(model.outputs, outs)))


def main(argv=None) -> int:
    """The console script. Any error is one line on stderr naming the problem, status 2;
    RNNRT_TRACEBACK=1 shows the traceback of an unexpected one."""
    from . import bench, convert, load

    ap = _Parser(prog="rnnrt", description="CPU inference runtime for RNNs")
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
    r.add_argument("--threads", type=bench.positive_int, default=None)
    b = sub.add_parser("bench", help="time run (and step) on random inputs; --onnx compares "
                                     "with onnxruntime")
    bench.add_arguments(b)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "convert":
            check_output_path(args.output, "-o")
            path = convert(args.src, args.output, config=args.config, spec=args.spec)
            print(describe(load(path)))
        elif args.cmd == "info":
            print(describe(load(args.model)))
        elif args.cmd == "bench":
            if args.json:
                check_output_path(args.json, "--json")
            bench.main(args)
        else:
            _run(args)
        sys.stdout.flush()      # a closed stdout fails here, not at the interpreter's exit
    except BrokenPipeError:
        # stdout closed early (`rnnrt info m.rnnrt | head`): stop quietly, and point stdout
        # at /dev/null so that the interpreter's final flush does not fail again.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    except KeyboardInterrupt:
        print(f"rnnrt {args.cmd}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if isinstance(e, OSError):
            message = _os_error(e)
        elif isinstance(e, RnnrtError):
            message = str(e)
        elif os.environ.get("RNNRT_TRACEBACK") == "1":
            raise
        else:   # a defect of rnnrt's, not of the command line: still one line
            message = f"{e} (unexpected: a bug; RNNRT_TRACEBACK=1 shows where)"
        one_line = " ".join(part.strip() for part in message.splitlines() if part.strip())
        print(f"rnnrt {args.cmd}: {type(e).__name__}: {one_line}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
