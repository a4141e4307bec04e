"""One case, judged: load (or convert) the file, and if rnnrt accepts it, exercise the model
the ways a user would and check what comes back.

Outcomes (worst first; rnnrt must only ever give the last two):
    crash            the worker process died (a signal): found by tests/fuzz/workers.py
    hang             the case ran past its timeout: found by tests/fuzz/workers.py
    untyped          an exception that is not an rnnrt error (nor FileNotFoundError)
    mismatch         an accepted model answered inconsistently (tests/fuzz/checks.py): two
                     runs whose buffers were pre-filled with different bytes differ (a read
                     of memory the engine never wrote), a stream step's fast and general
                     paths differ, step disagrees with run, and the like
    accepted-invalid rnnrt accepted a file it must refuse: a parameter that names a tensor
                     the file does not hold (ignored, so the model silently runs without
                     it), or an ONNX model onnx.checker rejects
    typed            refused (or a call refused) with an rnnrt error: fine
    accepted         loaded, and every check agreed: fine
and, not rnnrt's fault but still a failure: harness-error, an exception raised outside rnnrt
(in the checks themselves).

The site of a failure is what tells one defect from another: the stage, the exception type
and the innermost rnnrt frame (file and function; the line is in the detail).
"""

from __future__ import annotations

import os
import traceback

import numpy as np

import rnnrt

from .checks import (READS, SHAPES, Defect, check_generate, check_pool, check_runs,
                     check_stream, dangling_params)

FINE = ("accepted", "typed")
DEFECTS = ("crash", "hang", "untyped", "mismatch", "accepted-invalid")
HARNESS = "harness-error"      # the harness itself failed: fix the harness
RNNRT_DIR = os.path.dirname(os.path.abspath(rnnrt.__file__))


def innermost_rnnrt_frame(frames) -> tuple:
    """(file relative to the repository, function, line) of the innermost frame inside the
    rnnrt package, or of the innermost frame at all when none is."""
    best = None
    for f in frames:
        if f.filename.startswith(RNNRT_DIR):
            best = f
    if best is None and frames:
        best = frames[-1]
    if best is None:
        return ("?", "?", 0)
    rel = os.path.relpath(best.filename, os.path.dirname(RNNRT_DIR))
    return (rel, best.name, best.lineno)


def classify_exception(stage, e) -> dict:
    """The outcome of an exception raised at `stage`."""
    if isinstance(e, Defect):
        return {"outcome": e.outcome, "site": e.site, "detail": e.detail}
    if isinstance(e, (rnnrt.RnnrtError, FileNotFoundError)):
        return {"outcome": "typed", "site": f"{stage}:{type(e).__name__}",
                "detail": str(e)[:300]}
    frames = traceback.extract_tb(e.__traceback__)
    rel, func, line = innermost_rnnrt_frame(frames)
    if not any(f.filename.startswith(RNNRT_DIR) for f in frames):
        # Raised by this harness (or onnx, numpy) before rnnrt was called: not rnnrt's.
        return {"outcome": "harness-error", "site": f"harness:{stage}:{type(e).__name__}:"
                f"{rel}:{func}", "detail": f"{type(e).__name__} at {rel}:{line}: {e}"[:400]}
    return {"outcome": "untyped", "site": f"{stage}:{type(e).__name__}:{rel}:{func}",
            "detail": f"{type(e).__name__} at {rel}:{line}: {str(e)[:300]}"}


def exercise(model, seed=0) -> dict:
    """Every check on a loaded model. A typed refusal of one call (a shape it cannot take,
    a model that cannot stream) ends that check only."""
    gen = np.random.default_rng(seed)
    log, refused = [], []
    dangling = dangling_params(model)
    if dangling:
        kind, role, name = dangling[0]
        # A role the layer's kind never reads is one site, whatever the kind and role.
        site = f"{kind}.{role}" if role in READS.get(kind, ()) else "unread-param"
        raise Defect("accepted-invalid", f"accepted-invalid:dangling {site}",
                     f"a {kind} layer's parameter {role} names {name!r}, which is not a "
                     f"tensor of the file, and the model loaded")
    streamed = []
    stages = (("run", lambda: [check_runs(model, model.fixed_batch or B, T, gen, log)
                               for B, T in SHAPES]),
              ("stream", lambda: streamed.append(check_stream(model, gen, log))),
              ("pool", lambda: check_pool(model, streamed[0] if streamed else None, log)),
              ("generate", lambda: check_generate(model, gen, log)))
    for stage, check in stages:
        try:
            check()
        except (rnnrt.RnnrtError, FileNotFoundError) as e:
            refused.append(f"{stage}: {type(e).__name__}")
        except Defect:
            raise
        except Exception as e:
            raise _Staged(stage, e) from None
    return {"outcome": "accepted", "site": "", "detail": "; ".join(log + refused)}


class _Staged(Exception):
    """An exception of one stage of exercise(), with the stage's name."""

    def __init__(self, stage, e):
        super().__init__(stage)
        self.stage, self.error = stage, e


def run_rnnrt(path) -> dict:
    """Judge one .rnnrt file."""
    try:
        model = rnnrt.load(path, num_threads=1)
    except Exception as e:
        return classify_exception("load", e)
    return _judge_loaded(model)


def _judge_loaded(model) -> dict:
    try:
        return exercise(model)
    except _Staged as s:
        return classify_exception(s.stage, s.error)
    except Exception as e:
        return classify_exception("check", e)


def run_onnx(path, scratch) -> dict:
    """Judge one .onnx file: convert, check what was accepted, run what it became."""
    dst = os.path.join(scratch, "converted.rnnrt")
    try:
        rnnrt.convert(path, dst)
    except Exception as e:
        return classify_exception("convert", e)
    invalid = _onnx_checker_refuses(path)
    if invalid:
        return {"outcome": "accepted-invalid", "site": "accepted-invalid:onnx.checker",
                "detail": invalid}
    try:
        model = rnnrt.load(dst, num_threads=1)
    except Exception as e:
        return classify_exception("load-converted", e)
    return _judge_loaded(model)


def _onnx_checker_refuses(path) -> str:
    import onnx
    try:
        onnx.checker.check_model(onnx.load(path), full_check=True)
    except Exception as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
    return ""


def run_case(path, scratch) -> dict:
    """Judge a .rnnrt or .onnx file (scratch: a directory for what conversion writes)."""
    return run_onnx(path, scratch) if path.endswith(".onnx") else run_rnnrt(path)
