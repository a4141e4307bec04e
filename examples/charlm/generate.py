#!/usr/bin/env python3
"""Generate text with the bundled character-level LSTM, every step in C (Model.generate).

    .venv/bin/python examples/charlm/generate.py ["prompt"] [--steps N] [--temperature T]
                                                 [--top-k K] [--seed S]

The model (embedding 16, LSTM 64, linear head over the characters) was trained once by
tools/make_charlm.py on the Zen of Python; this script trains nothing: it converts the
committed state_dict + spec, checks that rnnrt's greedy continuation of the reference prompt
is PyTorch's (expected.json), then continues your prompt greedily and by sampling.
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))
import rnnrt  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description="continue a prompt with the bundled char LSTM")
    ap.add_argument("prompt", nargs="?", default="Errors should")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    with open(os.path.join(HERE, "vocab.json")) as f:
        chars = json.load(f)
    index = {c: i for i, c in enumerate(chars)}
    with open(os.path.join(HERE, "expected.json")) as f:
        expected = json.load(f)
    unknown = sorted(set(args.prompt) - set(index))
    if unknown:
        raise SystemExit(f"the model knows only these characters: {''.join(chars)!r}; the "
                         f"prompt has {unknown}")

    with tempfile.TemporaryDirectory() as tmp:
        path = rnnrt.convert(os.path.join(HERE, "weights.npz"), os.path.join(tmp, "charlm.rnnrt"),
                             spec=os.path.join(HERE, "spec.json"))
        model = rnnrt.load(path, num_threads=1)

        def encode(text):
            return np.array([index[c] for c in text], np.int64)

        def decode(ids):
            return "".join(chars[i] for i in ids)

        ids = model.generate(encode(expected["prompt"]), len(expected["greedy_ids"]))
        same = ids.tolist() == expected["greedy_ids"]
        print(f"greedy continuation of {expected['prompt']!r} equals PyTorch's: {same}")
        if not same:
            raise SystemExit("rnnrt and PyTorch disagree")

        print(f"\n== greedy, {args.steps} characters ==")
        start = time.perf_counter()
        ids = model.generate(encode(args.prompt), args.steps)
        took = time.perf_counter() - start
        print(args.prompt + decode(ids))

        print(f"\n== sampled: temperature {args.temperature}, top_k {args.top_k}, "
              f"seed {args.seed} ==")
        ids = model.generate(encode(args.prompt), args.steps, temperature=args.temperature,
                             top_k=args.top_k, seed=args.seed)
        print(args.prompt + decode(ids))
        print(f"\n({1e6 * took / max(1, args.steps + len(args.prompt)):.1f} µs a character, "
              f"prompt included, one C call)")


if __name__ == "__main__":
    main()
