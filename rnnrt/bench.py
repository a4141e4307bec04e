"""`rnnrt bench MODEL`: time a model on random inputs, optionally against onnxruntime.

Also the timing core that benchmarks/compare.py uses, so that both measure the same way:
  - every call is timed on its own (perf_counter_ns), the cost of the timer subtracted;
  - engines run in interleaved rounds, the order rotated each round, each block of calls
    preceded by warm-up calls;
  - a round disturbed by other load on the machine is run again: one whose calibration loop
    ran far slower than the quietest round's, one during which other processes used far
    more CPU (from /proc/stat), or one where an engine's p90/p10 spread is far beyond its
    quietest round's;
  - the result per engine is the median, p10 and p90 of all calls of the kept rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from . import plan
from .errors import InputError

# ----------------------------------------------------------------------------- statistics


@dataclass
class Stats:
    """Seconds per call: median, 10th and 90th percentiles of n calls."""
    median: float
    p10: float
    p90: float
    n: int

    @staticmethod
    def of(samples) -> Stats:
        s = np.asarray(samples, dtype=np.float64)
        p10, median, p90 = np.percentile(s, [10, 50, 90])
        return Stats(float(median), float(p10), float(p90), int(s.size))

    @property
    def spread(self) -> float:
        return self.p90 / self.p10 if self.p10 > 0 else float("inf")

    def to_dict(self) -> dict:
        return {"median_s": self.median, "p10_s": self.p10, "p90_s": self.p90, "calls": self.n}


@dataclass
class Round:
    order: list
    samples: dict          # name -> seconds per call
    calibration_s: float   # the slower of the calibration loops before and after the round
    others_cores: float | None  # CPU other processes used during the round, in cores
    wall_s: float

    @property
    def stats(self) -> dict:
        return {name: Stats.of(s) for name, s in self.samples.items()}


@dataclass
class Measurement:
    stats: dict            # name -> Stats over the kept rounds
    rounds: list           # the kept rounds
    reps: dict             # name -> timed calls per round
    redone: int            # rounds run again because they were disturbed
    disturbed_kept: int    # disturbed rounds kept once the redo budget was spent
    timer_overhead_s: float

    @property
    def others_cores(self):
        """Median CPU, in cores, that other processes used during the kept rounds."""
        vals = [r.others_cores for r in self.rounds if r.others_cores is not None]
        return float(np.median(vals)) if vals else None

    def to_dict(self) -> dict:
        return {
            "engines": {n: s.to_dict() for n, s in self.stats.items()},
            "others_cores": self.others_cores,
            "reps_per_round": self.reps,
            "redone_rounds": self.redone,
            "disturbed_rounds_kept": self.disturbed_kept,
            "timer_overhead_s": self.timer_overhead_s,
            "rounds": [{"order": r.order, "calibration_s": r.calibration_s,
                        "others_cores": r.others_cores, "wall_s": r.wall_s,
                        "engines": {n: s.to_dict() for n, s in r.stats.items()}}
                       for r in self.rounds],
        }


# ----------------------------------------------------------------------------- timing


def _time_calls(fn, n: int) -> list:
    """Nanoseconds of each of n calls of fn."""
    pc = time.perf_counter_ns
    out = []
    append = out.append
    for _ in range(n):
        t0 = pc()
        fn()
        append(pc() - t0)
    return out


def _noop():
    return None


def timer_overhead_s() -> float:
    """What _time_calls reports for a call that does nothing."""
    return float(np.median(_time_calls(_noop, 2000))) * 1e-9


_CAL_BUFFER = np.arange(1 << 18, dtype=np.float32)   # 1 MiB: L2-sized on this machine


def calibration_s() -> float:
    """A fixed piece of interpreter and memory work; it slows down when others load the
    machine. Median of three runs."""
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        s = 0
        for i in range(3000):
            s += i
        for _ in range(4):
            _CAL_BUFFER.sum()
        times.append(time.perf_counter() - t0)
    return sorted(times)[1]


def _cpu_busy_s():
    """Seconds of CPU the whole machine has spent busy (Linux /proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)   # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def estimate_call_s(fn, warmup: int) -> float:
    """Warm fn up and return the median time of a few calls."""
    for _ in range(max(1, warmup)):
        fn()
    return float(np.median(_time_calls(fn, 3))) * 1e-9


def reps_for(call_s: float, target_s: float, min_reps: int, max_reps: int) -> int:
    """Timed calls per round: enough to fill target_s, within [min_reps, max_reps]."""
    return int(min(max_reps, max(min_reps, round(target_s / max(call_s, 1e-9)))))


# Before each engine's block: the threads the last engine left spinning (onnxruntime's spin
# for a while after a run) go to sleep, and rnnrt's load probe (src_c/cpu_load.c) no longer
# counts them as other load.
SETTLE_S = 0.02


def _run_round(fns: dict, order: list, reps: dict, warmup: int, overhead_s: float,
               progress) -> Round:
    busy0, own0, t0 = _cpu_busy_s(), _own_cpu_s(), time.perf_counter()
    cal = calibration_s()
    samples = {}
    for name in order:
        fn = fns[name]
        if len(order) > 1:
            time.sleep(SETTLE_S)
        for _ in range(max(warmup, reps[name] // 20)):
            fn()
        ns = np.asarray(_time_calls(fn, reps[name]), dtype=np.float64)
        samples[name] = np.maximum(ns * 1e-9 - overhead_s, 0.0)
        if progress is not None:
            progress.update()
    cal = max(cal, calibration_s())
    wall = time.perf_counter() - t0
    busy1, own1 = _cpu_busy_s(), _own_cpu_s()
    others = None
    if busy0 is not None and busy1 is not None:
        others = max(0.0, (busy1 - busy0) - (own1 - own0)) / wall
    return Round(list(order), samples, cal, others, wall)


# A round is disturbed when, against the quietest round of the set:
CALIBRATION_SLOWDOWN = 1.5     # its calibration loop ran this much slower,
OTHERS_EXTRA_CORES = 0.5       # other processes used this many more cores (rounds >= 0.1 s,
MIN_WALL_FOR_CPU = 0.1         # below that /proc/stat's 10 ms ticks say too little),
SPREAD_GROWTH = 3.0            # or an engine's p90/p10 - 1 grew this much (+ SPREAD_SLACK).
SPREAD_SLACK = 0.2


def disturbed_rounds(rounds: list) -> list:
    """Indices of the rounds that ran under far more load than the quietest of the set."""
    if len(rounds) < 2:
        return []
    base_cal = min(r.calibration_s for r in rounds)
    measured = [r.others_cores for r in rounds
                if r.others_cores is not None and r.wall_s >= MIN_WALL_FOR_CPU]
    base_others = min(measured) if measured else None
    stats = [r.stats for r in rounds]
    base_spread = {n: min(s[n].spread for s in stats) for n in stats[0]}

    def slow_calibration(r):
        return r.calibration_s > CALIBRATION_SLOWDOWN * base_cal

    def others_busy(r):
        return (base_others is not None and r.others_cores is not None
                and r.wall_s >= MIN_WALL_FOR_CPU
                and r.others_cores > base_others + OTHERS_EXTRA_CORES)

    def wide_spread(st):
        return any(st[n].spread - 1 > SPREAD_GROWTH * (base_spread[n] - 1) + SPREAD_SLACK
                   for n in st)

    return [i for i, (r, st) in enumerate(zip(rounds, stats))
            if slow_calibration(r) or others_busy(r) or wide_spread(st)]


def measure(fns: dict, *, rounds: int = 5, warmup: int = 3, reps=None, target_s: float = 0.2,
            min_reps: int = 5, max_reps: int = 200_000, max_redo=None,
            progress=None) -> Measurement:
    """Time each zero-argument callable in fns ({name: fn}) in interleaved rounds.

    reps: timed calls per engine per round (an int, or {name: int}); by default enough to
    fill target_s seconds, estimated from warm-up calls. max_redo: how many disturbed rounds
    may be run again (default: as many as there are rounds). progress: an object with
    update() and grow(n), called once per engine block."""
    if not fns:
        raise InputError("measure: nothing to time")
    if rounds < 1:
        raise InputError(f"rounds must be at least 1, got {rounds}")
    names = list(fns)
    if reps is None:
        reps = {n: reps_for(estimate_call_s(fns[n], warmup), target_s, min_reps, max_reps)
                for n in names}
    elif isinstance(reps, int):
        reps = {n: reps for n in names}
    overhead = timer_overhead_s()
    max_redo = rounds if max_redo is None else max_redo

    def order(k):
        k %= len(names)
        return names[k:] + names[:k]

    done = [_run_round(fns, order(k), reps, warmup, overhead, progress) for k in range(rounds)]
    redone = 0
    bad = disturbed_rounds(done)
    while bad and redone < max_redo:
        # Re-run the worst round (slowest calibration among the disturbed) in the same
        # engine order, so the orders stay balanced; then re-judge: a quieter round lowers
        # the bar for all the others.
        worst = max(bad, key=lambda i: done[i].calibration_s)
        if progress is not None:
            progress.grow(len(names))
        done[worst] = _run_round(fns, order(worst), reps, warmup, overhead, progress)
        redone += 1
        bad = disturbed_rounds(done)
    stats = {n: Stats.of(np.concatenate([r.samples[n] for r in done])) for n in names}
    return Measurement(stats, done, dict(reps), redone, len(bad), overhead)


# ----------------------------------------------------------------------------- progress


class ProgressBar:
    """A one-line text bar on stderr: `label [#####.....] 12/40`. Redrawn at most ten times
    a second; draws nothing when disabled."""

    def __init__(self, total: int, label: str = "", *, enabled: bool = True, stream=None,
                 width: int = 30):
        self.total, self.done, self.label = max(1, total), 0, label
        self.enabled, self.width = enabled, width
        self.stream = stream if stream is not None else sys.stderr
        self._last_draw = 0.0

    def set_label(self, label: str) -> None:
        self.label = label
        self._draw(force=True)

    def grow(self, n: int) -> None:
        """More (or, n < 0, less) work than announced."""
        self.total = max(1, self.done, self.total + n)

    def update(self, n: int = 1) -> None:
        self.done = min(self.total, self.done + n)
        self._draw(force=self.done == self.total)

    def _draw(self, force=False):
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last_draw < 0.1):
            return
        self._last_draw = now
        filled = int(self.width * self.done / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        pct = 100 * self.done // self.total
        self.stream.write(f"\r{self.label[:40]:<40} [{bar}] {pct:3d}% "
                          f"{self.done}/{self.total}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.done = self.total
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()


# ----------------------------------------------------------------------------- a user's model


def random_feeds(model, batch: int, time_steps: int, seed: int = 0) -> dict:
    """Random inputs for every model input: float32 N(0, 1) features, token ids drawn from
    the embedding's vocabulary, sequence lengths = the full length."""
    rng = np.random.default_rng(seed)
    Ts = [time_steps] * model._plan.num_times
    feeds = {}
    for spec in model._plan.inputs:
        shape = spec.concrete(batch, Ts)
        if spec.dtype == "float32":
            feeds[spec.name] = rng.standard_normal(shape, dtype=np.float32)
        elif spec.dtype == "int64":
            vocab = model._vocab.get(spec.name, 1)
            feeds[spec.name] = rng.integers(0, vocab, size=shape, dtype=np.int64)
        else:   # int32: sequence lengths
            feeds[spec.name] = np.full(shape, time_steps, dtype=np.int32)
    return feeds


def step_feeds(model, stream, feeds: dict):
    """The first time step of each input that step() takes (one array, or a dict)."""
    by_name = {s.name: s for s in model._plan.inputs}
    out = {}
    for name in stream._step_names:
        shape = by_name[name].shape
        axis = next((k for k, d in enumerate(shape) if plan.is_time(d)), None)
        arr = feeds[name]
        out[name] = np.ascontiguousarray(arr if axis is None else np.take(arr, 0, axis=axis))
    return out if len(out) != 1 else next(iter(out.values()))


def flops_per_run(model, batch: int, time_steps: int) -> float:
    """Multiply-adds x 2 of the recurrent and dense layers (the GEMM work) for one run."""
    tensors = model._file.tensors
    Ts = [time_steps] * model._plan.num_times
    slots = {s.name: s for s in model._plan.slots}
    total = 0.0
    for layer in model.graph["layers"]:
        a = layer["attrs"]
        if layer["kind"] == "Recurrent":
            D = 2 if a["direction"] == "bidirectional" else 1
            G = {"rnn": 1, "lstm": 4, "gru": 3}[a["cell"]]
            H, I = a["hidden_size"], a["input_size"]
            proj = layer["params"].get("Projt")
            S = tensors[proj].shape[2] if proj else H
            total += 2.0 * D * batch * time_steps * G * H * (I + S + (S if proj else 0))
        elif layer["kind"] == "Dense":
            k_in, k_out = tensors[layer["params"]["kernel"]].shape
            rows = int(np.prod(slots[a["out"]].concrete(batch, Ts)[:-1]))
            total += 2.0 * rows * k_in * k_out
    return total


def _fmt_time(s: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale:
            return f"{s / scale:8.2f} {unit:<2}"
    return f"{s / 1e-9:8.0f} ns"


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = 0.0
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help=".rnnrt file")
    p.add_argument("--batch", type=positive_int, default=1, help="batch size (default 1)")
    p.add_argument("--time", type=positive_int, default=100,
                   help="time steps of each run (default 100)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="threads for rnnrt and onnxruntime (default: rnnrt's default)")
    p.add_argument("--rounds", type=positive_int, default=5,
                   help="interleaved rounds (default 5)")
    p.add_argument("--reps", type=positive_int, default=None,
                   help="timed calls per engine per round (default: enough for --target)")
    p.add_argument("--warmup", type=positive_int, default=3,
                   help="warm-up calls before each block (default 3)")
    p.add_argument("--target", type=_positive_float, default=0.2,
                   help="seconds of timed calls per engine per round (default 0.2)")
    p.add_argument("--no-step", action="store_true", help="do not time Stream.step")
    p.add_argument("--onnx", help="an .onnx file to time with onnxruntime on the same feeds")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--json", help="also write the raw results to this JSON file")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="always draw the progress bar (default: for runs over 2 s on a "
                          "terminal)")
    bar.add_argument("--no-progress", dest="progress", action="store_false",
                     help="never draw it")


def _onnxruntime_runner(path: str, threads: int, feeds: dict):
    """(callable, first output, note) for onnxruntime on the rnnrt feeds; callable None with
    a note when onnxruntime is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None, None, "onnxruntime is not installed: --onnx skipped"
    if not os.path.exists(path):
        raise FileNotFoundError(f"--onnx: no such file {path!r}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise InputError(f"--onnx: onnxruntime cannot load {path!r}: {e}") from None
    ort_names = [i.name for i in sess.get_inputs()]
    names = list(feeds)
    if set(ort_names) <= set(names):
        ort_feeds = {n: feeds[n] for n in ort_names}
    elif len(ort_names) == len(names):   # different names: match by position
        ort_feeds = {o: feeds[n] for o, n in zip(ort_names, names)}
    else:
        raise InputError(f"--onnx: the ONNX model's inputs {ort_names} do not match the "
                         f"rnnrt model's inputs {names}")
    try:
        first = sess.run(None, ort_feeds)[0]
    except Exception as e:
        raise InputError(f"--onnx: onnxruntime cannot run on the rnnrt model's feeds "
                         f"({', '.join(f'{k}{v.shape}' for k, v in ort_feeds.items())}): "
                         f"{e}") from None
    return (lambda: sess.run(None, ort_feeds)), first, None


BUSY_CORES = 0.5    # other processes' CPU use above which the output says it is noisy


def _agreement(ours: np.ndarray, theirs: np.ndarray) -> list:
    """Lines comparing rnnrt's and onnxruntime's first outputs (axes of size 1 dropped, as
    ONNX keeps a directions axis)."""
    a, b = np.squeeze(ours), np.squeeze(theirs)
    if a.shape != b.shape:
        return [f"WARNING: the first outputs differ in shape (rnnrt {ours.shape}, onnxruntime "
                f"{theirs.shape}): the two models do not compute the same thing on these "
                f"feeds, so the ratio compares different work"]
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    lines = [f"max |rnnrt - onnxruntime| on the first output: {diff:.2e}"]
    if diff > 1e-4:
        lines.append("WARNING: the outputs disagree: the two models do not compute the same "
                     "thing on these feeds (input layout?), so the ratio compares different "
                     "work")
    return lines


def engine_line(model, batch: int, time: int, threads: int) -> str:
    """Which kernel runs the gate products, and how each recurrent layer uses the threads
    (src_c/recurrent.c: rows, directions, units or ranges) in a run and in a step of this
    batch."""
    from ._engine import kernel_isa, l2_bytes

    def splits(T):
        layers = model._engine.thread_schedule(batch, T, threads)
        return ", ".join(f"{how} on {n}" for _, how, n in layers) or "none"
    return (f"engine: {kernel_isa()} gate kernel, L2 {l2_bytes() // 1024} KiB; recurrent "
            f"layers split by "
            f"{splits(time)} thread(s) in a run, {splits(1)} in a step")


def main(args) -> None:
    """The `rnnrt bench` subcommand: measure, then print the table (and write JSON)."""
    from . import load

    model = load(args.model, num_threads=args.threads)
    threads = model.num_threads
    feeds = random_feeds(model, args.batch, args.time, args.seed)
    run_feeds = feeds if len(feeds) != 1 else next(iter(feeds.values()))
    fns, notes = {"rnnrt run": lambda: model.run(run_feeds)}, []
    flops = {"rnnrt run": flops_per_run(model, args.batch, args.time)}
    if not args.no_step:
        try:
            stream = model.stream(args.batch)
        except InputError as e:
            notes.append(f"step not timed: {e}")
        else:
            x_t = step_feeds(model, stream, feeds)
            out = stream.step(x_t)
            fns["rnnrt step"] = lambda: stream.step(x_t, out=out)
            flops["rnnrt step"] = flops_per_run(model, args.batch, 1)
    first_ort = None
    if args.onnx:
        fn, first_ort, note = _onnxruntime_runner(args.onnx, threads, feeds)
        if fn is None:
            notes.append(note)
        else:
            fns["onnxruntime run"] = fn
            flops["onnxruntime run"] = flops["rnnrt run"]
            notes += _agreement(model.run(run_feeds)[0], first_ort)

    # Estimate first, so the bar knows whether the run is long.
    est = {n: estimate_call_s(f, args.warmup) for n, f in fns.items()}
    reps = {n: args.reps or reps_for(est[n], args.target, 5, 200_000) for n in fns}
    expected_s = args.rounds * sum(reps[n] * est[n] for n in fns)
    show = (args.progress if args.progress is not None
            else expected_s > 2.0 and sys.stderr.isatty())
    bar = ProgressBar(args.rounds * len(fns), "rnnrt bench", enabled=show)
    try:
        m = measure(fns, rounds=args.rounds, warmup=args.warmup, reps=reps, progress=bar)
    finally:
        bar.close()

    print(f"{args.model}: batch {args.batch}, time {args.time}, {threads} thread(s); "
          f"{args.rounds} interleaved rounds ({m.redone} redone, {m.disturbed_kept} disturbed "
          f"kept); time per call")
    print(engine_line(model, args.batch, args.time, threads))
    print(f"{'':<18}{'median':>11}{'p10':>12}{'p90':>12}{'GFLOP/s':>10}  calls")
    for name, st in m.stats.items():
        gf = flops[name] / st.median / 1e9 if st.median > 0 else float("nan")
        print(f"{name:<18}{_fmt_time(st.median):>11}{_fmt_time(st.p10):>12}"
              f"{_fmt_time(st.p90):>12}{gf:10.2f}  {args.rounds}x{reps[name]}")
    if "onnxruntime run" in m.stats:
        r = m.stats["rnnrt run"].median / m.stats["onnxruntime run"].median
        print(f"rnnrt run / onnxruntime run: {r:.2f} "
              f"({'rnnrt faster' if r < 1 else 'onnxruntime faster'})")
    busy = m.others_cores
    if busy is not None and busy > BUSY_CORES:
        notes.append(f"note: other processes used {busy:.1f} core(s) of this machine's "
                     f"{os.cpu_count()} while it was measured: the times are noisy")
    for note in notes:
        print(note)
    if args.json:
        doc = {"model": args.model, "batch": args.batch, "time": args.time,
               "threads": threads, "flops_per_call": flops, "notes": notes, **m.to_dict()}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
