"""A fuzz campaign: mutated .rnnrt and ONNX cases judged in worker processes, outcomes
counted, failures saved and minimized.

    python -m fuzz --minutes 10                  (make fuzz MINUTES=10)
    python -m fuzz --cases 40000 --seed 0 --ci   (make fuzz-ci: the bounded CI campaign)

Results go to --results (default tests/fuzz/results/<time>/): summary.json, failures.jsonl
(the first 100 failing cases of each site: seed, mutations, outcome), failures/<site>/ (the
inputs of the first few), minimized/ (one small input per site the corpus does not hold
yet). --save-corpus also adds those to tests/fuzz/corpus/ with their notes. --ci exits 1
when a failure's site is not one of the known failures' (corpus/KNOWN_FAILURES.txt).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import sys
import time

from . import corpus, oracle, seeds
from .cases import Case, Generator
from .minimize import Minimizer
from .workers import Workers

HERE = os.path.dirname(os.path.abspath(__file__))
LOGGED_PER_SITE = 100     # failures.jsonl keeps this many cases of each site


def _requests(kinds, share, campaign, deadline, total, counters):
    """Case requests, kinds interleaved (a `share` of them ONNX when both run), until the
    deadline or `total` cases."""
    j = 0
    while (total is None or j < total) and (deadline is None or time.monotonic() < deadline):
        if len(kinds) == 1:
            kind = kinds[0]
        else:
            kind = "onnx" if int((j + 1) * share) > int(j * share) else "rnnrt"
        yield {"op": "gen", "kind": kind, "campaign": campaign, "index": counters[kind]}
        counters[kind] += 1
        j += 1


class Campaign:
    def __init__(self, args):
        self.args = args
        self.kinds = [k for k in args.kinds.split(",") if k]
        self.campaign = args.seed if args.seed is not None else random.randrange(2 ** 31)
        self.out = args.results or os.path.join(HERE, "results",
                                                time.strftime("%Y%m%d-%H%M%S"))
        os.makedirs(self.out, exist_ok=True)
        self.seed_dir = os.path.join(self.out, "seeds")
        seeds.make_seed_dir(self.seed_dir, self.kinds)
        self.generators = {k: Generator(self.seed_dir, k) for k in self.kinds}
        self.counts = {k: collections.Counter() for k in self.kinds}
        self.busy = collections.Counter()            # worker seconds per kind
        self.cpu = collections.Counter()             # worker CPU seconds per kind
        self.sites = {}                              # site -> {kind, count, examples}
        self.known = corpus.known_sites()
        self.in_corpus = corpus.sites()

    def run(self):
        a = self.args
        deadline = time.monotonic() + 60 * a.minutes if a.minutes is not None else None
        counters = collections.Counter()
        started, cpu = time.monotonic(), time.process_time()
        with Workers(a.workers, os.path.join(self.out, "scratch"), self.seed_dir,
                     a.timeout) as w, \
                open(os.path.join(self.out, "failures.jsonl"), "w") as log:
            for r in w.run(_requests(self.kinds, a.onnx_share, self.campaign, deadline,
                                     a.cases, counters)):
                self._record(r, log)
            self.wall = time.monotonic() - started
            self.parent_cpu = time.process_time() - cpu
            self.restarts = w.restarts
            minimized = self._minimize(w)
        return self._report(minimized)

    def _record(self, r, log):
        kind = r["request"]["kind"]
        self.counts[kind][r["outcome"]] += 1
        self.busy[kind] += r.get("seconds", self.args.timeout if r["outcome"] == "hang" else 0)
        self.cpu[kind] += r.get("cpu_seconds", 0.0)
        if r["outcome"] in oracle.FINE:
            return
        s = self.sites.setdefault(r["site"], {"kind": kind, "count": 0, "examples": []})
        s["count"] += 1
        if s["count"] <= LOGGED_PER_SITE:
            log.write(json.dumps(r) + "\n")
        if len(s["examples"]) < self.args.keep:
            gen = self.generators[kind]
            case = gen.draw(self.campaign, r["request"]["index"])   # as the worker drew it
            try:
                raw, notes = gen.build(case)
            except Exception:      # a mutator's bug (reported as a harness error)
                raw, notes = b"", []
            d = os.path.join(self.out, "failures", corpus.slug(r["site"]))
            os.makedirs(d, exist_ok=True)
            path = os.path.join(d, f"{kind}-{r['request']['index']}.{kind}")
            with open(path, "wb") as f:
                f.write(raw)
            s["examples"].append({"path": path, "case": case.to_json(), "size": len(raw),
                                  "detail": r["detail"][:400], "notes": notes})

    def _minimize(self, workers):
        """One minimized input per failure site the corpus does not hold yet."""
        out = {}
        if self.args.no_minimize:
            return out
        mdir = os.path.join(self.out, "minimized")
        os.makedirs(mdir, exist_ok=True)
        for site, s in sorted(self.sites.items()):
            # A harness error is a bug of the mutators, not a defect to keep an input of.
            if site in self.in_corpus or not s["examples"] or site.startswith("harness:"):
                continue
            ex = min(s["examples"], key=lambda e: e["size"])
            case = Case(ex["case"]["kind"], ex["case"]["seed"],
                        [tuple(x) for x in ex["case"]["steps"]])
            m = Minimizer(workers, self.generators[case.kind], mdir)
            try:
                raw = m.minimize(case, site)
            except Exception as e:      # a harness bug must not cost the campaign's report
                print(f"minimizing failed, not minimized: {site}: {type(e).__name__}: {e}")
                continue
            if raw is None:
                print(f"not reproduced, not minimized: {site} ({case.to_json()})")
                continue
            path = os.path.join(mdir, f"{corpus.slug(site)}.{case.kind}")
            with open(path, "wb") as f:
                f.write(raw)
            out[site] = path
            if self.args.save_corpus:
                note = f"{ex['detail']} [from {case.seed}: {'; '.join(ex['notes'])}]"
                corpus.add(path, case.kind, site, note)
        return out

    def _report(self, minimized):
        summary = {"campaign_seed": self.campaign, "wall_seconds": round(self.wall, 1),
                   "workers": self.args.workers, "worker_restarts": self.restarts,
                   "kinds": {}, "sites": {}}
        summary["parent_cpu_seconds"] = round(self.parent_cpu, 1)
        lines = [f"campaign seed {self.campaign}, {self.args.workers} workers, "
                 f"{self.wall:.0f} s (the parent: {self.parent_cpu:.0f} CPU s); results in "
                 f"{self.out}"]
        for kind in self.kinds:
            n = sum(self.counts[kind].values())
            # Per core: cases per CPU second of the workers (what a free core would do), and
            # per worker second of wall time (what this machine did, as loaded as it was).
            rate = n / self.cpu[kind] if self.cpu[kind] else 0.0
            wall_rate = n / self.busy[kind] if self.busy[kind] else 0.0
            summary["kinds"][kind] = {"cases": n, "per_cpu_second": round(rate, 1),
                                      "per_worker_second": round(wall_rate, 1),
                                      "outcomes": dict(self.counts[kind])}
            lines.append(f"{kind}: {n} cases, {rate:.0f} per CPU second ({wall_rate:.0f} per "
                         f"worker second); " +
                         ", ".join(f"{o} {c}" for o, c in self.counts[kind].most_common()))
        new = []
        for site, s in sorted(self.sites.items(), key=lambda kv: -kv[1]["count"]):
            tag = "known" if site in self.known else \
                "in corpus" if site in self.in_corpus else "NEW"
            if tag != "known":
                new.append(site)
            summary["sites"][site] = {**s, "status": tag, "minimized": minimized.get(site)}
            if self.args.ci and tag == "known":
                continue      # CI shows what is new; summary.json has every site
            detail = " ".join(s["examples"][0]["detail"].split())
            lines.append(f"  {s['count']:7d}  {tag:9s}  {s['kind']:5s}  {site}\n"
                         f"                 {detail[:160]}")
        with open(os.path.join(self.out, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        print("\n".join(lines))
        if self.args.ci and new:
            print(f"FAIL: {len(new)} failure site(s) no known failure has: {new}")
            return 1
        return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, help="how long to generate cases")
    ap.add_argument("--cases", type=int, help="how many cases (with or without --minutes)")
    ap.add_argument("--kinds", default="rnnrt,onnx", help="rnnrt, onnx or both (default)")
    ap.add_argument("--onnx-share", type=float, default=0.25,
                    help="share of ONNX cases when both kinds run (default 0.25)")
    ap.add_argument("--seed", type=int, help="campaign seed (default: a random one)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--results", help="results directory")
    ap.add_argument("--keep", type=int, default=3, help="inputs kept per failure site")
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds per case")
    ap.add_argument("--save-corpus", action="store_true",
                    help="add a minimized input of each new failure site to the corpus")
    ap.add_argument("--no-minimize", action="store_true")
    ap.add_argument("--ci", action="store_true",
                    help="exit 1 on a failure at a site no known failure has")
    args = ap.parse_args(argv)
    if args.minutes is None and args.cases is None:
        ap.error("give --minutes or --cases")
    sys.exit(Campaign(args).run())
