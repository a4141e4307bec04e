"""A worker process: runs case after case for the parent (tests/fuzz/workers.py), one JSON
request a line on stdin, one JSON reply a line on the reply pipe.

    {"op": "gen", "kind": "rnnrt", "campaign": 1, "index": 42}   draw, build and judge a case
    {"op": "file", "path": "/x/case.onnx"}                        judge a file
    {"op": "selftest", "what": "crash" | "hang"}                  die, or hang (harness tests)

Before it judges a case the worker writes the file and its description to its scratch
directory (case.rnnrt / case.onnx, case.json), so that when the case kills the process the
parent still has the input. A fatal signal, or the parent's SIGABRT for a hang, dumps the
Python stack into the scratch directory's fault.txt (faulthandler): where it died.

Memory is limited (RLIMIT_AS) so that a model asking for terabytes gets MemoryError (an
untyped exception: a defect) instead of the machine's swap.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import resource
import signal
import sys
import time
import warnings

MEMORY_LIMIT = 6 << 30     # bytes of address space; RNNRT_FUZZ_MEMORY_LIMIT=0: no limit


def _memory_limit() -> int:
    """The limit to set: none under AddressSanitizer, which reserves terabytes of shadow
    address space (make test-asan preloads libasan)."""
    if "asan" in os.environ.get("LD_PRELOAD", ""):
        return 0
    return int(os.environ.get("RNNRT_FUZZ_MEMORY_LIMIT", MEMORY_LIMIT))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--scratch", required=True)
    ap.add_argument("--seeds", default=None)
    args = ap.parse_args(argv)
    # Replies go to the original stdout; anything a library prints goes to stderr.
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    os.makedirs(args.scratch, exist_ok=True)
    fault = open(os.path.join(args.scratch, "fault.txt"), "w")
    faulthandler.enable(file=fault, all_threads=False)   # SIGSEGV, SIGBUS, SIGABRT...
    limit = _memory_limit()
    if limit:
        try:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ValueError, OSError):
            pass
    warnings.simplefilter("ignore")

    from . import oracle     # after the limits: importing is part of what is limited
    generators = {}
    reply.write('{"ready": true}\n')
    for line in sys.stdin:
        started, cpu = time.perf_counter(), time.process_time()
        req = json.loads(line)
        if req["op"] == "gen":
            kind = req["kind"]
            gen = generators.get(kind)
            if gen is None:
                from . import cases     # the mutators (and onnx): only for campaigns
                gen = generators[kind] = cases.Generator(args.seeds, kind)
            case = gen.draw(req["campaign"], req["index"])
            try:
                raw, notes = gen.build(case)
            except Exception as e:      # a mutator's own bug: report it, do not die of it
                reply.write(json.dumps({"outcome": oracle.HARNESS,
                                        "site": f"harness:mutate:{type(e).__name__}",
                                        "detail": f"{type(e).__name__}: {e}"[:400],
                                        **case.to_json(), "request": req}) + "\n")
                continue
            path = os.path.join(args.scratch, f"case.{kind}")
            with open(path, "wb") as f:
                f.write(raw)
            desc = {**case.to_json(), "notes": notes}
        elif req["op"] == "selftest":       # tests of the harness: die or hang on request
            if req["what"] == "crash":
                # The default action, past any handler (a sanitizer's would report it).
                signal.signal(signal.SIGSEGV, signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGSEGV)
            time.sleep(3600)
        else:
            path, desc = req["path"], {}
        with open(os.path.join(args.scratch, "case.json"), "w") as f:
            json.dump({"request": req, **desc}, f)
        fault.seek(0)
        fault.truncate()
        result = oracle.run_case(path, args.scratch)
        reply.write(json.dumps({**result, **desc, "request": req,
                                "seconds": time.perf_counter() - started,
                                "cpu_seconds": time.process_time() - cpu}) + "\n")


if __name__ == "__main__":
    main()
