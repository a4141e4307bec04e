"""Latency under load: rnnrt at its default threads and at one thread, onnxruntime at its
default and at one thread, with N busy competitor processes beside them (compare.py --load).

    python benchmarks/compare.py --load 0,1,2 [--load-kind spin|rnnrt] [--quick]
                                 [--scenarios A,B,C] [--cells ...]

A service machine is never idle. For each load level (N competitor processes, started and
stopped here: rnnrt/competitors.py; "spin": Python spinning at the caller's priority,
"rnnrt": another rnnrt process at its default threads, as Dask or Ray workers share a
machine) every case's four engines are timed
in interleaved rounds, every call on its own, and the table gives p50 and p99 of all calls
and two ratios: rnnrt default over rnnrt one thread (issue 14's target: at most 1.1, p50 and
p99, at every load) and rnnrt default over onnxruntime default. No round is re-run for being
disturbed: here the disturbance is the point. Each round times one engine family, then the
other (the order turns each round), and within a family its two engines call by call in
turn (default, one thread, default, ...): on a loaded machine a long call takes one of two
times (whether the scheduler has put a competitor on the caller's core: 3.6 or 7.5 ms for
a batch of 64 SimpleRNN-256 sequences), and an epoch of either lasts longer than a block of
calls, so only calls in turn see the same conditions. With no competitor each engine's
calls come in a block instead: calls in turn would evict each other's weights from the
caches (a 2-thread batch-1 split keeps half of LSTM-512's in each core's L2, which a
1-thread call in between reads all of), and a service calls its model again and again.

Cases: scenario A (one streaming step, batch 1), B (a sequence, batch 1, T=100), C (batch 64,
T=50) of benchmarks/scenarios.py; "B ... + Linear": the issue's LSTM 4->64 + Linear over
T=100, one ONNX file that rnnrt converts and onnxruntime runs as it is; "P": one tick of a
pool of 64 LSTM-256 streams (StreamPool.step), against onnxruntime stepping the 64 as one
batch with their states fed. (generate() always runs on its caller: nothing to compare.)
"""

from __future__ import annotations

import json
import os
import tempfile
import time

import numpy as np

import rnnrt
from rnnrt.bench import SETTLE_S, estimate_call_s, reps_for, timer_overhead_s
from rnnrt.competitors import busy_processes
from rnnrt.model import _engine, default_threads

from benchmarks import engines, report, scenarios

AGREEMENT = 1e-5
# (rounds, warm-up calls, seconds of calls per engine per round, min calls per round)
SETTINGS = {"full": (5, 5, 0.25, 60), "quick": (2, 2, 0.02, 5)}
HIDDEN = (128, 512)
ENGINE_ORDER = ("rnnrt default", "rnnrt 1t", "onnxruntime default", "onnxruntime 1t")


POOL_STREAMS, POOL_HIDDEN, POOL_INPUT = 64, 256, 128


class Case:
    def __init__(self, scenario, cell, hidden, input_size, batch, time, head=False):
        self.scenario, self.cell, self.hidden, self.input = scenario, cell, hidden, input_size
        self.batch, self.time, self.head = batch, time, head

    @property
    def label(self):
        if self.scenario == "P":
            return f"P LSTM H={self.hidden} {self.batch} streams"
        size = f"B={self.batch}" if self.scenario == "C" else f"H={self.hidden}"
        head = f" {self.input}->{self.hidden} + Linear" if self.head else ""
        return f"{self.scenario} {scenarios.CELL_LABEL[self.cell]} {size}{head}"


def cases(which, cells) -> list:
    out = []
    for s in which:
        for cell in cells:
            if s == "A":
                out += [Case("A", cell, h, scenarios.STREAM_INPUT, 1, 1) for h in HIDDEN]
            elif s == "B":
                out += [Case("B", cell, h, h // 2, 1, scenarios.SEQUENCE_TIME) for h in HIDDEN]
            elif s == "C":
                out.append(Case("C", cell, scenarios.THROUGHPUT_HIDDEN,
                                scenarios.THROUGHPUT_INPUT, 64, scenarios.THROUGHPUT_TIME))
    if "B" in which and "lstm" in cells:
        out.append(Case("B", "lstm", 64, 4, 1, scenarios.SEQUENCE_TIME, head=True))
    if "C" in which and "lstm" in cells:
        out.append(Case("P", "lstm", POOL_HIDDEN, POOL_INPUT, POOL_STREAMS, 1))
    return out


def head_model(w: scenarios.Weights, out_features=4):
    """The ONNX model of scenario B's layer (X (T, B, I) -> Y) followed by a Linear head:
    Squeeze of the direction axis, MatMul, Add -> (T, B, out_features)."""
    from onnx import TensorProto, helper, numpy_helper

    m = scenarios.onnx_model(w, stateful=False)
    rng = np.random.default_rng(scenarios.SEED)
    g = m.graph
    g.initializer.extend([
        numpy_helper.from_array(rng.uniform(-.3, .3, (w.hidden, out_features))
                                .astype(np.float32), "head_w"),
        numpy_helper.from_array(rng.uniform(-.1, .1, out_features).astype(np.float32),
                                "head_b"),
        numpy_helper.from_array(np.array([1], np.int64), "direction_axis")])
    g.node.extend([helper.make_node("Squeeze", ["Y", "direction_axis"], ["Y_tbh"]),
                   helper.make_node("MatMul", ["Y_tbh", "head_w"], ["head_mm"]),
                   helper.make_node("Add", ["head_mm", "head_b"], ["out"])])
    del g.output[:]
    g.output.extend([helper.make_tensor_value_info("out", TensorProto.FLOAT,
                                                   ["T", "batch", out_features])])
    return m


class RnnrtFeeds:
    """model.run(feeds) on a model converted from the ONNX file onnxruntime runs."""

    def __init__(self, path, threads, feeds):
        self.model = rnnrt.load(path, num_threads=threads)
        self.feeds = feeds

    def __call__(self):
        return self.model.run(self.feeds)

    def outputs(self):
        return self.model.run(self.feeds)[0]


class OrtFeeds:
    def __init__(self, onnx_model, threads, feeds):
        self.sess = engines.ort_session(onnx_model, threads)
        self.feeds = feeds

    def __call__(self):
        return self.sess.run(None, self.feeds)

    def outputs(self):
        return self.sess.run(None, self.feeds)[0]


class RnnrtPool:
    """One StreamPool.step of every open stream (their first step after a reset)."""

    def __init__(self, path, threads, x_t):
        self.pool = rnnrt.load(path, num_threads=threads).stream_pool(len(x_t))
        self.ids = [self.pool.open() for _ in range(len(x_t))]
        self.x_t = x_t

    def __call__(self):
        return self.pool.step(self.ids, self.x_t)

    def outputs(self):
        ids = [self.pool.open() for _ in self.ids]     # fresh streams: from the zero state
        y = self.pool.step(ids, self.x_t)
        for i in ids:
            self.pool.close(i)
        return y


def make_runners(case, tmp) -> dict:
    """{engine name: zero-argument callable} and, per engine, its outputs for the check.
    Default threads: rnnrt num_threads=None, onnxruntime intra_op_num_threads=0."""
    w = scenarios.make_weights(case.cell, case.hidden, case.input)
    x = scenarios.make_inputs(case.batch, case.time, case.input)
    threads = {"rnnrt default": None, "rnnrt 1t": 1, "onnxruntime default": 0,
               "onnxruntime 1t": 1}
    if case.head:
        onnx_model = head_model(w)
        path = os.path.join(tmp, "head.onnx")
        with open(path, "wb") as f:
            f.write(onnx_model.SerializeToString())
        rpath = rnnrt.convert(path, os.path.join(tmp, "head.rnnrt"))
        feeds = {"X": np.ascontiguousarray(x.transpose(1, 0, 2))}
        runners = {n: (RnnrtFeeds(rpath, t, feeds) if n.startswith("rnnrt")
                       else OrtFeeds(onnx_model, t, feeds)) for n, t in threads.items()}
        return {n: (r, r.outputs()) for n, r in runners.items()}
    rpath = scenarios.save_rnnrt(w, os.path.join(tmp, f"{case.cell}_{case.hidden}.rnnrt"))
    if case.scenario == "P":
        x_t = np.ascontiguousarray(x[:, 0])
        zeros = np.zeros((1, case.batch, case.hidden), np.float32)
        feeds = {"X": x_t[None], "initial_h": zeros, "initial_c": zeros}
        stateful = scenarios.onnx_model(w, stateful=True)
        runners = {n: (RnnrtPool(rpath, t, x_t) if n.startswith("rnnrt")
                       else OrtFeeds(stateful, t, feeds)) for n, t in threads.items()}
        return {n: (r, r.outputs()[None] if n.startswith("rnnrt") else r.outputs())
                for n, r in runners.items()}
    out = {}
    for name, t in threads.items():
        if case.scenario == "A":
            r = (engines.RnnrtStep(rpath, t, x[:, 0]) if name.startswith("rnnrt")
                 else engines.OrtStep(w, t, x[:, 0]))
        else:
            r = (engines.RnnrtRun(rpath, t, x) if name.startswith("rnnrt")
                 else engines.OrtRun(w, t, x))
        check = scenarios.make_inputs(1, scenarios.STEP_CHECK_STEPS, case.input) \
            if case.scenario == "A" else x
        out[name] = (r, r.outputs(check))
    return out


def paired_rounds(runners: dict, rounds: int, warmup: int, target_s: float,
                  min_reps: int, in_turn: bool = True) -> dict:
    """({engine: [seconds per call]}, the share of rnnrt default's parallel layer calls that
    found a free core and shared their work, or None when none asked): each round, each
    family's two engines call by call in turn (in_turn; else each its calls in a block), the
    families one after the other (order turned each round)."""
    overhead = timer_overhead_s()
    families = [[n for n in ENGINE_ORDER if n.startswith(f)] for f in ("rnnrt", "onnx")]
    reps = {tuple(f): reps_for(max(estimate_call_s(runners[n], warmup) for n in f), target_s,
                               min_reps, 20_000) for f in families}
    samples = {n: [] for n in runners}
    pc = time.perf_counter_ns
    shared = alone = 0
    for k in range(rounds):
        for f in families[k % 2:] + families[:k % 2]:
            time.sleep(SETTLE_S)        # what the other family left spinning, asleep
            for n in f:
                for _ in range(warmup):
                    runners[n]()
            before = _engine.workers_info()
            order = [f] * reps[tuple(f)] if in_turn else [[n] * reps[tuple(f)] for n in f]
            for calls in order:
                for n in calls:
                    t0 = pc()
                    runners[n]()
                    samples[n].append((pc() - t0) * 1e-9 - overhead)
            after = _engine.workers_info()
            if f[0].startswith("rnnrt"):   # only rnnrt default's calls ask for workers
                shared += after["jobs"] - before["jobs"]
                alone += after["jobs_alone"] - before["jobs_alone"]
    return samples, (shared / (shared + alone) if shared + alone else None)


def percentiles(samples) -> dict:
    s = np.maximum(np.asarray(samples, np.float64), 0.0)
    p50, p99 = np.percentile(s, [50, 99])
    return {"p50_s": float(p50), "p99_s": float(p99), "calls": int(s.size)}


def run(args) -> int:
    settings = SETTINGS["quick" if args.quick else "full"]
    rounds, warmup, target, min_reps = settings
    if args.rounds:
        rounds = args.rounds
    missing = engines.missing_peers()
    if "onnxruntime" in missing:
        print(f"--load compares with onnxruntime: {missing['onnxruntime']}")
        return 1
    which = [s for s in args.scenarios if s in "ABC"]
    loads = args.load
    doc = {"cpu": _cpu(), "cores": os.cpu_count(), "default_threads": default_threads(),
           "mode": "quick" if args.quick else "full", "loads": loads,
           "load_kind": args.load_kind,
           "settings": dict(zip(("rounds", "warmup", "target_s", "min_calls"),
                                (rounds, warmup, target, min_reps))), "cases": []}
    failed = []
    with tempfile.TemporaryDirectory(prefix="rnnrt-loaded-") as tmp:
        built = []
        for case in cases(which, args.cells):
            runners = make_runners(case, tmp)
            ref = runners["onnxruntime 1t"][1]
            diffs = {n: float(np.max(np.abs(o - ref))) for n, (_, o) in runners.items()}
            bad = {n: d for n, d in diffs.items() if d > AGREEMENT}
            if bad:
                failed.append((case.label, bad))
            built.append((case, {n: r for n, (r, _) in runners.items()}, diffs))
        for n_busy in loads:
            with busy_processes(n_busy, args.load_kind):
                for case, runners, diffs in built:
                    # Quiet, each engine's calls in a block (its weights stay in the
                    # caches, as a service's model does); loaded, in turn (see the doc).
                    in_turn = n_busy > 0
                    samples, shared = paired_rounds(runners, rounds, warmup, target,
                                                    min_reps, in_turn)
                    stats = {n: percentiles(v) for n, v in samples.items()}
                    # Calls in turn share their conditions: the median of their ratios.
                    pairs = float(np.median(np.divide(samples["rnnrt default"],
                                                      samples["rnnrt 1t"]))) \
                        if in_turn else None
                    doc["cases"].append({"label": case.label, "load": n_busy,
                                         "scenario": case.scenario, "agreement": diffs,
                                         "engines": stats, "paired_vs_1t": pairs,
                                         "shared_calls": shared})
                    print(_line(doc["cases"][-1]), flush=True)
    text = table(doc)
    print("\n" + text)
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"loaded-{args.load_kind}")
    with open(stem + ".json", "w") as f:
        json.dump(doc, f, indent=1)
    with open(stem + ".txt", "w") as f:
        f.write(text + "\n")
    with open(stem + ".md", "w") as f:
        f.write(markdown(doc) + "\n")
    print(f"\nwrote {stem}.json, .txt, .md")
    for label, bad in failed:
        print(f"DISAGREE {label}: {bad} (max abs vs onnxruntime 1t > {AGREEMENT:g})")
    return 1 if failed else 0


def _cpu() -> str:
    from benchmarks import machine
    return machine.cpu_name()


def ratios(rec) -> dict:
    e = rec["engines"]
    d, one, ort = e["rnnrt default"], e["rnnrt 1t"], e["onnxruntime default"]
    return {"vs_1t_p50": d["p50_s"] / one["p50_s"], "vs_1t_p99": d["p99_s"] / one["p99_s"],
            "vs_1t_pairs": rec["paired_vs_1t"],   # None: calls in blocks (quiet)
            "vs_ort_p50": d["p50_s"] / ort["p50_s"], "vs_ort_p99": d["p99_s"] / ort["p99_s"]}


def _line(rec) -> str:
    r = ratios(rec)
    e = rec["engines"]
    times = "  ".join(f"{n} {report.fmt_time(e[n]['p50_s'])}/{report.fmt_time(e[n]['p99_s'])}"
                      for n in ENGINE_ORDER)
    shared = "-" if rec["shared_calls"] is None else f"{100 * rec['shared_calls']:.0f}%"
    return (f"load {rec['load']} {rec['label']:<30} {times} | default/1t {r['vs_1t_p50']:.2f}/"
            f"{r['vs_1t_p99']:.2f} pairs {_ratio(r['vs_1t_pairs'])} shared {shared} "
            f"default/ort {r['vs_ort_p50']:.2f}/{r['vs_ort_p99']:.2f}")


def _ratio(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def table(doc) -> str:
    lines = [f"Latency under load ({doc['load_kind']} competitors): {doc['cpu']}, "
             f"{doc['cores']} cores, rnnrt default threads "
             f"{doc['default_threads']}, {doc['mode']} run; p50 / p99 per call; ratios: rnnrt "
             f"default over rnnrt 1 thread (p50, p99, and the median of the ratios of calls "
             f"made in turn), and over onnxruntime default (below 1: rnnrt default faster)"]
    cols = f"{'load':<5}{'case':<32}" + "".join(f"{n:>24}" for n in ENGINE_ORDER) + \
           f"{'def/1t p50':>12}{'p99':>7}{'pairs':>7}{'def/ort p50':>13}{'p99':>7}"
    lines += [cols, "-" * len(cols)]
    for rec in doc["cases"]:
        e, r = rec["engines"], ratios(rec)
        cells = "".join(f"{report.fmt_time(e[n]['p50_s']) + ' / ' + report.fmt_time(e[n]['p99_s']):>24}"
                        for n in ENGINE_ORDER)
        lines.append(f"{rec['load']:<5}{rec['label']:<32}{cells}{r['vs_1t_p50']:12.2f}"
                     f"{r['vs_1t_p99']:7.2f}{_ratio(r['vs_1t_pairs']):>7}"
                     f"{r['vs_ort_p50']:13.2f}{r['vs_ort_p99']:7.2f}")
    return "\n".join(lines)


def markdown(doc) -> str:
    """README: one row per case, for each load level rnnrt default's p50 / p99 and the two
    ratios."""
    loads = doc["loads"]
    head = "| case | " + " | ".join(
        f"load {n}: rnnrt default p50 / p99 | ÷ rnnrt 1t p50 / p99 / pairs | ÷ ort default"
        for n in loads) + " |"
    out = [head, "|---|" + "---|---|---|" * len(loads)]
    by_case = {}
    for rec in doc["cases"]:
        by_case.setdefault(rec["label"], {})[rec["load"]] = rec
    for label, recs in by_case.items():
        row = [label]
        for n in loads:
            rec = recs.get(n)
            if rec is None:
                row += ["-", "-", "-"]
                continue
            e, r = rec["engines"]["rnnrt default"], ratios(rec)
            row += [f"{report.fmt_time(e['p50_s'])} / {report.fmt_time(e['p99_s'])}",
                    f"{r['vs_1t_p50']:.2f} / {r['vs_1t_p99']:.2f} / {_ratio(r['vs_1t_pairs'])}",
                    f"{r['vs_ort_p50']:.2f} / {r['vs_ort_p99']:.2f}"]
        out.append("| " + " | ".join(row) + " |")
    return "\n".join(out)
