"""Scenario D: start-up, each measurement in a fresh Python process.

For each cell, one ~50 MB model (one layer, input = hidden) is written three ways: .rnnrt,
.onnx, and a torch state_dict (.pt). A child process then measures, in this order:
  import numpy                          (every engine's process pays it first)
  import <engine>                       the time it adds to import numpy
  load                                  rnnrt.load / an onnxruntime InferenceSession /
                                        nn.LSTM built on the meta device + torch.load(mmap)
                                        + load_state_dict(assign=True), torch's fastest way
  peak RSS                              VmHWM once loaded
  second load                           the same load again in the same process
A numpy-only child gives the baseline RSS. Engines take turns in each repetition; the
medians are reported. Children import compiled modules (a bytecode cache filled by one
unmeasured run of each), as every engine does once installed by pip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from . import scenarios

# Hidden size giving ~50 MB of float32 weights with input = hidden: 2 * G * H^2 * 4 bytes.
STARTUP_HIDDEN = {"lstm": 1280, "gru": 1472, "rnn": 2560}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Peak RSS from /proc/self/status VmHWM: ru_maxrss would carry the parent's peak across exec.
_PRELUDE = """
import json, sys, time
def peak_rss_kib():
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith("VmHWM")).split()[1])
t0 = time.perf_counter()
import numpy
t1 = time.perf_counter()
"""
_REPORT = """
rss = peak_rss_kib()
t5 = time.perf_counter()
second = LOAD()
t6 = time.perf_counter()
print(json.dumps({"import_numpy_s": t1 - t0, "import_s": t2 - t1, "load_s": t4 - t3,
                  "second_load_s": t6 - t5, "peak_rss_kib": rss}))
"""
CHILD = {
    "numpy": _PRELUDE + """
print(json.dumps({"import_numpy_s": t1 - t0,
                  "peak_rss_kib": peak_rss_kib()}))
""",
    "rnnrt": _PRELUDE + """
import rnnrt
t2 = time.perf_counter()
LOAD = lambda: rnnrt.load(sys.argv[1], num_threads=1)
t3 = time.perf_counter(); model = LOAD(); t4 = time.perf_counter()
""" + _REPORT,
    "onnxruntime": _PRELUDE + """
import onnxruntime as ort
t2 = time.perf_counter()
def LOAD():
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
    return ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
t3 = time.perf_counter(); model = LOAD(); t4 = time.perf_counter()
""" + _REPORT,
    "torch": _PRELUDE + """
import torch
t2 = time.perf_counter()
torch.set_num_threads(1)
def LOAD():
    cell, size = sys.argv[2], int(sys.argv[3])
    with torch.device("meta"):
        m = getattr(torch.nn, cell)(size, size)
    m.load_state_dict(torch.load(sys.argv[1], mmap=True, weights_only=True), assign=True)
    return m
t3 = time.perf_counter(); model = LOAD(); t4 = time.perf_counter()
""" + _REPORT,
}
TORCH_CLASS = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}


def write_models(cell: str, folder: str, families) -> dict:
    """{family: path} of the ~50 MB model of `cell` in each engine's format."""
    h = STARTUP_HIDDEN[cell]
    w = scenarios.make_weights(cell, h, h)
    paths = {"rnnrt": scenarios.save_rnnrt(w, os.path.join(folder, f"{cell}.rnnrt"))}
    if "onnxruntime" in families:
        import onnx
        paths["onnxruntime"] = os.path.join(folder, f"{cell}.onnx")
        onnx.save(scenarios.onnx_model(w, stateful=False), paths["onnxruntime"])
    if "torch" in families:
        import torch
        paths["torch"] = os.path.join(folder, f"{cell}.pt")
        torch.save(scenarios.torch_state_dict(w), paths["torch"])
    return paths


def run_child(family: str, argv=(), bytecode_dir=None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    if bytecode_dir:
        # Import compiled modules, as an installed package does (pip compiles them), even
        # where PYTHONDONTWRITEBYTECODE is set: otherwise only rnnrt, run from its source
        # tree, would pay for compiling its modules in every child.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = bytecode_dir
    done = subprocess.run([sys.executable, "-c", CHILD[family], *argv], capture_output=True,
                          text=True, env=env, check=False, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"start-up child for {family} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _median(rows, key):
    vals = [r[key] for r in rows if key in r]
    return float(np.median(vals)) if vals else None


def measure(cells, folder: str, families, reps: int = 5, progress=None) -> dict:
    """Start-up figures by cell and engine (medians of `reps` fresh processes each)."""
    families = [f for f in ("rnnrt", "onnxruntime", "torch") if f in families]
    baseline = []
    results = {}
    bytecode_dir = os.path.join(folder, "pycache")
    for cell in cells:
        paths = write_models(cell, folder, families)
        rows = {f: [] for f in families}
        for fam in families:        # fills the bytecode cache; not measured
            run_child(fam, [paths[fam], TORCH_CLASS[cell], str(STARTUP_HIDDEN[cell])],
                      bytecode_dir)
        for k in range(reps):
            order = families[k % len(families):] + families[:k % len(families)]
            for fam in order:
                argv = [paths[fam], TORCH_CLASS[cell], str(STARTUP_HIDDEN[cell])]
                rows[fam].append(run_child(fam, argv, bytecode_dir))
                if progress is not None:
                    progress.update()
            baseline.append(run_child("numpy", (), bytecode_dir))
        results[cell] = {
            fam: {"file_bytes": os.path.getsize(paths[fam]), "runs": rows[fam],
                  **{key: _median(rows[fam], key) for key in
                     ("import_numpy_s", "import_s", "load_s", "second_load_s", "peak_rss_kib")}}
            for fam in families}
        for p in paths.values():
            os.remove(p)
    return {"hidden": {c: STARTUP_HIDDEN[c] for c in cells},
            "numpy_alone": {"import_numpy_s": _median(baseline, "import_numpy_s"),
                            "peak_rss_kib": _median(baseline, "peak_rss_kib"),
                            "runs": baseline},
            "cells": results}
