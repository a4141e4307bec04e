"""The parent's side of the workers (tests/fuzz/worker.py): long-lived child processes that
judge many cases each, a per-case timeout, and a worker that dies or hangs replaced.

    with Workers(n, scratch_root, seed_dir) as w:
        for result in w.run(requests):     # requests: dicts of worker.py's protocol
            ...

A result is the worker's reply; for a case that killed its worker it is made here:
outcome "crash" (or "hang" past the timeout), the site from the stack faulthandler wrote,
and "input": a copy of the file the worker was judging.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
ROOT = os.path.dirname(TESTS)
CASE_TIMEOUT = 20.0     # seconds; a conversion or a run of a small model takes milliseconds


class _Worker:
    def __init__(self, k, scratch_root, seed_dir, env):
        self.scratch = os.path.join(scratch_root, f"worker{k}")
        os.makedirs(self.scratch, exist_ok=True)
        cmd = [sys.executable, "-m", "fuzz.worker", "--scratch", self.scratch]
        if seed_dir:
            cmd += ["--seeds", seed_dir]
        self.log = open(os.path.join(self.scratch, "stderr.txt"), "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, env=env, cwd=ROOT)
        self.request = None
        self.started = 0.0
        self.buf = b""
        ready = self.proc.stdout.readline()     # after its imports and limits
        if not ready.startswith(b'{"ready"'):
            self.proc.wait()
            with open(os.path.join(self.scratch, "stderr.txt"), errors="replace") as f:
                raise RuntimeError(f"a fuzz worker failed to start:\n{f.read()[-2000:]}")

    def send(self, req):
        self.request, self.started = req, time.monotonic()
        self.proc.stdin.write((json.dumps(req) + "\n").encode())
        self.proc.stdin.flush()

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (TESTS, ROOT, env.get("PYTHONPATH"))
                                        if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONFAULTHANDLER"] = "1"
    return env


_FRAME = re.compile(r'File "([^"]+)", line (\d+) in (\S+)')


def fault_site(text: str) -> tuple:
    """(file, function, line) of the innermost rnnrt frame of a faulthandler dump."""
    rnnrt_dir = os.path.join(ROOT, "rnnrt") + os.sep
    frames = _FRAME.findall(text)          # most recent call first
    for path, line, func in frames:
        if path.startswith(rnnrt_dir):
            return os.path.relpath(path, ROOT), func, int(line)
    if frames:
        path, line, func = frames[0]
        return os.path.relpath(path, ROOT), func, int(line)
    return "?", "?", 0


class Workers:
    def __init__(self, n, scratch_root, seed_dir=None, timeout=CASE_TIMEOUT):
        self.n, self.scratch_root, self.seed_dir = n, scratch_root, seed_dir
        self.timeout = timeout
        self.env = _env()
        self.sel = selectors.DefaultSelector()
        self.workers = [self._start(k) for k in range(n)]
        self.restarts = 0

    def _start(self, k):
        w = _Worker(k, self.scratch_root, self.seed_dir, self.env)
        w.k = k
        self.sel.register(w.proc.stdout, selectors.EVENT_READ, w)
        return w

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for w in self.workers:
            self.sel.unregister(w.proc.stdout)
            w.close()
        self.workers = []

    def _died(self, w, hang):
        """The result of the case w was judging when it died (or hung), and w restarted."""
        if hang:
            try:
                w.proc.send_signal(signal.SIGABRT)    # faulthandler dumps the stack
                w.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                w.proc.kill()
        rc = w.proc.wait()
        with open(os.path.join(w.scratch, "fault.txt"), errors="replace") as f:
            dump = f.read()
        try:
            with open(os.path.join(w.scratch, "case.json")) as f:
                desc = json.load(f)
        except (OSError, ValueError):
            desc = {}
        req = w.request
        path = req.get("path") or os.path.join(w.scratch, f"case.{req.get('kind')}")
        keep = os.path.join(self.scratch_root, f"died-{time.time_ns()}{os.path.splitext(path)[1]}")
        if os.path.exists(path):
            shutil.copyfile(path, keep)
        rel, func, line = fault_site(dump)
        if hang:
            outcome, what = "hang", f"no answer in {self.timeout:.0f} s"
        else:
            sig = -rc if rc < 0 else None
            what = signal.Signals(sig).name if sig else f"exit status {rc}"
            outcome = "crash"
        result = {"outcome": outcome,
                  "site": f"{outcome}:{what if outcome == 'crash' else 'timeout'}:{rel}:{func}",
                  "detail": f"{what} at {rel}:{line}; stack: {dump[-800:]}",
                  "input": keep, **{k: v for k, v in desc.items() if k != "request"},
                  "request": req}
        self._restart(w)
        return result

    def _restart(self, w):
        self.sel.unregister(w.proc.stdout)
        w.close()
        self.workers[w.k] = self._start(w.k)
        self.restarts += 1

    def run(self, requests):
        """Yield one result per request (in completion order), all workers busy."""
        requests = iter(requests)
        idle = list(self.workers)
        busy = 0
        exhausted = False
        while True:
            while idle and not exhausted:
                req = next(requests, None)
                if req is None:
                    exhausted = True
                    break
                idle.pop().send(req)
                busy += 1
            if busy == 0:
                return
            now = time.monotonic()
            waits = [w.started + self.timeout - now for w in self.workers if w.request]
            events = self.sel.select(timeout=max(0.0, min(waits)) if waits else None)
            done = []
            for key, _ in events:
                w = key.data
                chunk = os.read(w.proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    if w.request is None:       # died between cases: nothing was lost
                        self._restart(w)
                    else:
                        done.append((w, self._died(w, hang=False)))
                    continue
                w.buf += chunk
                while b"\n" in w.buf and w.request is not None:
                    line, w.buf = w.buf.split(b"\n", 1)
                    w.request = None
                    done.append((w, json.loads(line)))
            now = time.monotonic()
            for w in list(self.workers):
                if w.request is not None and now - w.started > self.timeout and \
                        all(d[0] is not w for d in done):
                    done.append((w, self._died(w, hang=True)))
            for w, result in done:
                busy -= 1
                # A dead worker's replacement sits at the same index in self.workers.
                idle.append(self.workers[w.k])
                yield result
