"""Model.generate: the model's output fed back as its next input, every step in C.

    ids = model.generate(prompt_ids, 200, temperature=0.8, top_k=20, seed=1, stop=eos)
    forecast = model.generate(history, 24)          # (24, F)

The prompt is stepped through a fresh stream (the model's initial state); each generated
step then feeds the model the output of the step before. One C call does it all
(src_c/generate.c), the GIL released; nothing in Python runs per step. Two kinds of model qualify, told apart by their
graph (the model must also be able to stream, as for Model.stream):

- Token model: one step input of int64 token ids read by an Embedding of V rows, and a first
  output of V scores per step. `prompt`: 1-D ids (at least one). Returns the generated ids,
  int64 (n,): n == steps, or fewer when `stop` came (the stop id is the last one returned).
  The scores are probabilities when the layer that writes the output ends in a softmax (a
  Dense with activation softmax, or a softmax Activation), and logits otherwise (a
  log_softmax output is log-probabilities, which are logits). temperature 0 (the default)
  is greedy: the highest score, the lowest id on a tie. temperature > 0 samples from
  softmax(logits / temperature) (for probabilities p: p ** (1 / temperature), renormalised),
  over the top_k highest scores when top_k is given (ties at the k-th score: lowest ids).
  seed: an int in [0, 2**64) makes the draws reproducible on any platform (xoshiro256**
  seeded by splitmix64); None draws a fresh seed.
- Forecast model: one float32 step input of F features and a first output of F values per
  step (e.g. a next-step regression). `prompt`: (T, F), T >= 1, the history. Returns the
  forecast, float32 (steps, F): row 0 is the output after the history, row i the output
  after feeding row i - 1. temperature, top_k, seed and stop do not apply (InputError).

Every argument is checked here with a typed error (InputError) before the C call.
"""

from __future__ import annotations

import math
import secrets
from typing import NamedTuple

import numpy as np

from . import _blas, limits, plan  # noqa: F401  (_blas loads OpenBLAS first)
from ._engine import rng_draws  # noqa: F401  (the generator's raw numbers, for tests)
from .errors import InputError, RnnrtError
from .model import Model, _as_array, _check_memory, _new_buffer, _step_spec

_SOFTMAX = plan.ACT_CODES["softmax"]
_MODES = {"tokens": 0, "forecast": 1}       # GEN_TOKENS, GEN_FORECAST in src_c/rnnrt.h
_BAD_ID, _NO_SCORE = -1, -2                 # RNNRT_GEN_BAD_ID, RNNRT_GEN_NO_SCORE


class _Feedback(NamedTuple):
    """How a model's output feeds its next input."""
    mode: str           # "tokens" or "forecast"
    in_slot: int        # the step input
    out_slot: int       # the first output
    width: int          # V (tokens) or F (forecast)
    probs: bool         # tokens: the output is probabilities (softmax), else logits


def _feedback(model: Model) -> _Feedback:
    """Work out (once per model) whether and how generate() can run it."""
    cached = model.__dict__.get("_feedback_cache")
    if cached is not None:
        return cached
    spec = _step_spec(model)
    p = model._plan
    if len(spec.step_inputs) != 1:
        raise InputError(f"generate() feeds the output back as the one step input; this model "
                         f"has step inputs {spec.step_names}")
    i = spec.step_inputs[0]
    inp = p.inputs[i]
    per_step_in = tuple(d for d in inp.shape if d != plan.BATCH and not plan.is_time(d))
    per_step_out = tuple(d for d in spec.out_axes if d != plan.BATCH)
    out = p.slots[p.outputs[0]]
    if len(per_step_out) != 1:
        raise InputError(f"generate() needs one row of scores or values per step; output "
                         f"{out.name!r} has per-step shape {per_step_out}")
    width = per_step_out[0]
    vocab = model._vocab.get(inp.name)
    if vocab is not None and per_step_in == ():
        if width != vocab:
            raise InputError(f"generate() on a token model needs an output of one score per "
                             f"token: the embedding has {vocab} tokens, output {out.name!r} "
                             f"has {width} values per step")
        writer = next(op for op in p.ops if p.outputs[0] in op["out"])
        probs = writer.get("act", (None,))[0] == _SOFTMAX
        info = _Feedback("tokens", i, p.outputs[0], vocab, probs)
    elif inp.dtype == "float32" and len(per_step_in) == 1:
        if width != per_step_in[0]:
            raise InputError(f"generate() on a regression model appends each output as the "
                             f"next input: input {inp.name!r} has {per_step_in[0]} features "
                             f"per step but output {out.name!r} has {width}")
        info = _Feedback("forecast", i, p.outputs[0], width, False)
    else:
        raise InputError(f"generate() needs token ids read by an Embedding, or one float "
                         f"vector per step; input {inp.name!r} is {inp.dtype} with per-step "
                         f"shape {per_step_in}")
    model._feedback_cache = info
    return info


def _int(name, value, lo, hi):
    """An int in [lo, hi] (bool refused), or InputError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if not lo <= value <= hi:
        raise InputError(f"{name} must lie in {lo}..{hi}, got {value}")
    return int(value)


def _token_prompt(prompt, vocab: int) -> np.ndarray:
    try:
        arr = np.asarray(prompt)
    except Exception as e:
        raise InputError(f"prompt: expected a 1-D sequence of token ids ({e})") from None
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise InputError(f"prompt: expected a 1-D sequence of int token ids, got dtype "
                         f"{arr.dtype} shape {arr.shape}")
    if arr.size == 0:
        raise InputError("prompt: expected at least one token id (the first step needs an "
                         "input), got none")
    bad = np.flatnonzero((arr < 0) | (arr >= vocab))
    if bad.size:
        k = int(bad[0])
        raise InputError(f"prompt: token id {int(arr[k])} at position {k} is out of range; "
                         f"the embedding has {vocab} rows (ids 0..{vocab - 1})")
    return np.ascontiguousarray(arr, np.int64)


def _forecast_prompt(prompt, name: str, features: int) -> np.ndarray:
    arr = _as_array("prompt", prompt, "float32")
    if arr.ndim != 2 or arr.shape[1] != features or arr.shape[0] < 1:
        raise InputError(f"prompt: expected the history of input {name!r}, shape (time >= 1, "
                         f"{features}), got shape {arr.shape}")
    return arr


def generate(model: Model, prompt, steps, *, temperature=0.0, top_k=None, seed=None,
             stop=None) -> np.ndarray:
    """See the module doc."""
    fb = _feedback(model)
    steps = _int("steps", steps, 0, 2 ** 40)
    p = model._plan
    if fb.mode == "tokens":
        V = fb.width
        prompt = _token_prompt(prompt, V)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.number)) \
                or not np.isfinite(temperature) or temperature < 0:
            raise InputError(f"temperature must be a finite number >= 0 (0: greedy), got "
                             f"{temperature!r}")
        top_k = 0 if top_k is None else _int("top_k", top_k, 1, V)
        stop = -1 if stop is None else _int("stop", stop, 0, V - 1)
        seed = secrets.randbits(64) if seed is None else _int("seed", seed, 0, 2 ** 64 - 1)
        result_shape, result_dtype = (steps,), np.int64
    else:
        given = [name for name, value, default in (("temperature", temperature, 0.0),
                                                   ("top_k", top_k, None),
                                                   ("seed", seed, None), ("stop", stop, None))
                 if value is not default and value != default]
        if given:
            raise InputError(f"{', '.join(given)} apply only to token models; this model "
                             f"forecasts {fb.width} values per step")
        prompt = _forecast_prompt(prompt, p.inputs[fb.in_slot].name, fb.width)
        temperature, top_k, stop, seed = 0.0, 0, -1, 0
        result_shape, result_dtype = (steps, fb.width), np.float32

    spec = _step_spec(model)
    scratch_size = 2 * fb.width if fb.mode == "tokens" else 1
    result_bytes = np.dtype(result_dtype).itemsize * math.prod(result_shape)
    work = _check_memory(model, f"generate() of {steps} steps", 1, spec.Ts, 1,
                         skip=spec.unbuffered, states=1, extra=result_bytes + 8 * scratch_size)
    with limits.allocating(f"generate() of {steps} steps"):
        result = _new_buffer(result_shape, result_dtype)
        buffers = [None if i in spec.unbuffered else np.zeros(s.concrete(1, spec.Ts), s.dtype)
                   for i, s in enumerate(p.slots)]
        # One sequence, from the model's initial state (zeros, or its constant one).
        states_h = [spec.start_state(hk, 1)[None].copy() for hk, _ in spec.keys]
        states_c = [spec.start_state(ck, 1)[None].copy() if ck is not None
                    else np.zeros((1, 1, H), np.float32)
                    for (_, ck), (name, cell, D, H, S, _) in zip(spec.keys, p.recurrent)]
        work = _new_buffer(work, np.float32)
        scratch = np.empty(scratch_size, np.float64)
    made, failed = model._engine.generate(
        buffers, spec.Ts, work, states_h, states_c, _MODES[fb.mode], fb.in_slot, fb.out_slot,
        fb.width, int(fb.probs), float(temperature), top_k, stop, seed, prompt,
        len(prompt), steps, result, scratch)
    if made == _BAD_ID:      # ids are checked above; this guards the C side all the same
        raise InputError("a token id is out of range of the embedding table")
    if made == _NO_SCORE:
        raise RnnrtError(f"generate(): the model's output at generated step {failed} has no "
                         f"usable score (every one is NaN, -inf, or a zero probability)")
    return result[:made]
