"""rnnrt against onnxruntime and PyTorch, side by side in one run.

    python benchmarks/compare.py [--quick] [--scenarios A,B,C,D] [--cells lstm,gru,rnn]
                                 [--threads 1,2] [--out DIR]
    python benchmarks/compare.py --load 0,1,2 [--quick] ...   (latency under load:
                                 benchmarks/loaded.py)

For each case of benchmarks/scenarios.py: one model (random weights, fixed seed) given to
each engine; every engine's output checked against the NumPy oracle of tests/reference.py
(max abs error <= 1e-5) before anything is timed; then all engines timed in interleaved
rounds by rnnrt.bench.measure (warm-up, many calls, rounds disturbed by other load run
again). Prints one table (latency, GFLOP/s and fraction of the measured sgemm rate,
distance to the floor, rnnrt's time over each peer's), and writes DIR/compare.json (every
raw figure), DIR/compare.txt (the table), DIR/compare.md (the README's tables) and
DIR/compare.png (latency against size).

A peer that is not installed is skipped with a note. The exit status is 1 when an engine
disagrees with the oracle or fails, 0 otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile

if __package__ in (None, ""):          # run as a script: make `benchmarks` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# NumPy's own OpenBLAS (the oracle's float64 products) on one thread: its idle worker spins
# on a core for ~0.1 s after each product, inside this process, where the check for rounds
# disturbed by other processes cannot see it, while the next engine is being timed.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

import rnnrt
from rnnrt.bench import ProgressBar, measure

from benchmarks import engines, machine, report, scenarios, startup

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOLERANCE = 1e-5

# (rounds, warm-up calls, seconds of timed calls per engine per round, min calls, D repeats)
# A full run takes ~7 minutes on the 2-core development VM when it is quiet.
SETTINGS = {"full": (7, 3, 0.15, 5, 5), "quick": (2, 1, 0.01, 2, 1)}


def _oracle():
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from reference import run_reference
    return run_reference


def _csv(choices):
    def parse(text):
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in choices]
        if not items or bad:
            raise argparse.ArgumentTypeError(f"expected a comma-separated subset of "
                                             f"{','.join(choices)}, got {text!r}")
        return [c for c in choices if c in items]
    return parse


def _counts(least, example):
    """A parser of comma-separated integers >= least, like `example`."""
    def parse(text):
        try:
            items = sorted({int(t) for t in text.split(",") if t.strip()})
        except ValueError:
            items = []
        if not items or items[0] < least:
            raise argparse.ArgumentTypeError(f"expected {example}, got {text!r}")
        return items
    return parse


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="few repetitions: a smoke run")
    ap.add_argument("--scenarios", type=_csv(scenarios.SCENARIOS), default=list("ABCD"),
                    help="subset of A,B,C,D (default all)")
    ap.add_argument("--cells", type=_csv(scenarios.CELLS), default=list(scenarios.CELLS),
                    help="subset of lstm,gru,rnn (default all)")
    ap.add_argument("--threads", type=_counts(1, "positive thread counts like 1,2"),
                    default=[1, 2], help="thread counts for every engine (default 1,2)")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"),
                    help="folder for compare.json, compare.txt, compare.png")
    ap.add_argument("--rounds", type=int, default=None, help="override the rounds per case")
    ap.add_argument("--load", type=_counts(0, "busy process counts like 0,1,2"), default=None,
                    help="latency under load instead: with 0, 1, 2... busy competitor "
                         "processes beside, rnnrt and onnxruntime at default and 1 thread, "
                         "p50 and p99 (benchmarks/loaded.py)")
    ap.add_argument("--load-kind", choices=("spin", "rnnrt"), default="spin",
                    help="with --load: spinning Python processes, or rnnrt processes running "
                         "a model at their default threads")
    bar = ap.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="draw the progress bar even when stderr is not a terminal")
    bar.add_argument("--no-progress", dest="progress", action="store_false")
    return ap.parse_args(argv)


def _versions(skip) -> dict:
    v = {"python": platform.python_version(), "numpy": np.__version__,
         "rnnrt": rnnrt.__version__}
    if "onnxruntime" not in skip:
        import onnxruntime
        v["onnxruntime"] = onnxruntime.__version__
    if "torch" not in skip:
        import torch
        v["torch"] = torch.__version__
    return v


def run_case(case, weights, rnnrt_path, reference, settings, skip, progress):
    """Check every engine against the oracle, time those that agree, return the record."""
    rounds, warmup, target, min_reps, _ = settings
    steps = scenarios.STEP_CHECK_STEPS if case.streaming else case.time
    x = scenarios.make_inputs(case.batch, steps, case.input)
    ref = reference(case.model_key, x)
    record = {**case.to_dict(), "label": case.label, "agreement": {}, "failed": {}}
    runners = {}
    for cls in engines.runner_classes(case, skip):
        try:
            r = engines.make_runner(cls, case, weights, rnnrt_path, x)
            diff = float(np.max(np.abs(r.outputs(x) - ref)))
        except Exception as e:   # a peer's own error: reported, the run goes on
            record["failed"][getattr(cls, "name", cls.__name__)] = f"{type(e).__name__}: {e}"
            continue
        record["agreement"][r.name] = diff
        if diff <= TOLERANCE:
            runners[r.name] = r
        else:
            record["failed"][r.name] = (f"max abs difference {diff:.2e} from the NumPy "
                                        f"oracle exceeds {TOLERANCE:g}: not timed")
    n_blocks = len(engines.runner_classes(case, skip))
    if progress is not None:
        progress.set_label(case.label)
        progress.grow(rounds * len(runners) - rounds * n_blocks)
    if runners:
        # At most about half the rounds again: bounds the run time on a busy machine.
        m = measure(runners, rounds=rounds, warmup=warmup, target_s=target,
                    min_reps=min_reps, max_redo=rounds // 2 + 1, progress=progress)
        record["measurement"] = m.to_dict()
        record["families"] = {name: r.family for name, r in runners.items()}
        record["keys"] = {name: r.key for name, r in runners.items()}
    return record


def summarize(record, case, mach) -> None:
    """Add GFLOP/s, fraction of sgemm, distance to the floor and ratios to a case record."""
    record["floor_s"] = floor = mach.floor_s(case)
    if "measurement" not in record:
        return
    sgemm = mach.sgemm_rate(case.threads)
    engines_ = record["measurement"]["engines"]
    fams = record["families"]
    ours = [n for n in engines_ if fams[n] == "rnnrt"]
    rnnrt_s = engines_[ours[0]]["median_s"] if ours else None
    rows, best = {}, {}
    for name, st in engines_.items():
        med = st["median_s"]
        gflops = case.flops / med / 1e9 if med > 0 else float("nan")
        rows[name] = {"family": fams[name], **st, "gflops": gflops,
                      "fraction_of_sgemm": gflops / sgemm, "x_floor": med / floor,
                      "rnnrt_over_this": (rnnrt_s / med) if rnnrt_s and fams[name] != "rnnrt"
                      else None}
        if fams[name] != "rnnrt" and (fams[name] not in best or med < best[fams[name]][1]):
            best[fams[name]] = (name, med)
    record["engines"] = rows
    record["ratios"] = {f"rnnrt/{fam}": {"peer": name, "ratio": rnnrt_s / med}
                        for fam, (name, med) in best.items() if rnnrt_s}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.load is not None:
        from benchmarks import loaded
        return loaded.run(args)
    settings = SETTINGS["quick" if args.quick else "full"]
    if args.rounds:
        settings = (args.rounds,) + settings[1:]
    os.makedirs(args.out, exist_ok=True)
    missing = engines.missing_peers()
    skip = set(missing)
    notes = list(missing.values())
    timed = [s for s in args.scenarios if s != "D"]
    cases = scenarios.cases(timed, args.cells, args.threads)

    show = args.progress if args.progress is not None else sys.stderr.isatty()
    n_blocks = sum(settings[0] * len(engines.runner_classes(c, skip)) for c in cases)
    n_startup = settings[4] * len(args.cells) * (3 - len(skip)) if "D" in args.scenarios else 0
    progress = ProgressBar(n_blocks + n_startup, "machine limits", enabled=show)
    progress.set_label("machine limits")
    mach = machine.Machine(args.threads, quick=args.quick)
    mach.measure_grid()

    run_reference = _oracle()
    weights, paths, oracle = {}, {}, {}
    results = []
    with tempfile.TemporaryDirectory(prefix="rnnrt-compare-") as tmp:
        def reference(key, x):
            k = (key, x.shape)
            if k not in oracle:
                oracle[k] = run_reference(scenarios.rnnrt_graph(weights[key]), {"x": x})[0]
            return oracle[k]

        for case in cases:
            key = case.model_key
            if key not in weights:
                weights[key] = scenarios.make_weights(*key)
                paths[key] = scenarios.save_rnnrt(
                    weights[key], os.path.join(tmp, "{}_{}_{}.rnnrt".format(*key)))
            results.append(run_case(case, weights[key], paths[key], reference, settings,
                                    skip, progress))
        start = None
        if "D" in args.scenarios:
            progress.set_label("D start-up")
            families = [f for f in engines.FAMILIES if f not in skip]
            start = startup.measure(args.cells, tmp, families, reps=settings[4],
                                    progress=progress)
    progress.close()
    if cases:   # floors and fractions from the best sgemm rate seen, before or after
        mach.measure_sgemm()
    for case, record in zip(cases, results):
        summarize(record, case, mach)

    doc = {"created": datetime.datetime.now().isoformat(timespec="seconds"),
           "mode": "quick" if args.quick else "full",
           "cpu": machine.cpu_name(), "cores": os.cpu_count(),
           "versions": _versions(skip), "settings": dict(zip(
               ("rounds", "warmup_calls", "target_s_per_engine_round", "min_calls",
                "startup_repeats"), settings)),
           "tolerance": TOLERANCE, "notes": notes, "machine": mach.to_dict(),
           "cases": results, "startup": start}
    text = report.table(doc)
    print(text)
    with open(os.path.join(args.out, "compare.json"), "w") as f:
        json.dump(doc, f, indent=1)
    with open(os.path.join(args.out, "compare.txt"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(args.out, "compare.md"), "w") as f:
        f.write(report.markdown(doc) + "\n")
    png = report.plot(doc, os.path.join(args.out, "compare.png"))
    print(f"\nwrote {os.path.join(args.out, 'compare.json')}, compare.txt, compare.md"
          + (", compare.png" if png else " (no plot: matplotlib is not installed)"))
    failed = [(r["label"], name, why) for r in results for name, why in r["failed"].items()]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
