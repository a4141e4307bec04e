"""A loaded model survives its file being changed under it (issue 16, defects 3 and 4).

`cp new.rnnrt live.rnnrt` truncates the live file, then writes into it. A file up to the
private-copy threshold is copied into memory the model owns: it runs on as loaded, and
verify() checks its own bytes. A larger one stays mmap'd under the SIGBUS guard
(src_c/mapguard.c): a fault on a truncated file is FormatError, and verify() checks the file
again. RNNRT_PRIVATE_COPY_MAX_BYTES=0 maps every file, so "mmap" below runs that path on a
small model. Scenarios that kill the interpreter when they go wrong (SIGBUS) run in a child
process, whose exit status and output are asserted.
"""
import io
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

import rnnrt
from rnnrt import cache, fileformat, ir, packing
from strategies import make_recurrent

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
F, H = 6, 24      # W and R: ~12 KiB, a few pages past the header
MODES = ("copy", "mmap")
ENV = "RNNRT_PRIVATE_COPY_MAX_BYTES"    # 0: every file mapped (the mmap path on a small file)
TRUNCATED = ("the file was truncated while loaded; replace a live model by writing a new "
             "file and renaming it over the old one")


def forecast_graph(seed):
    """x (B, T, F) -> LSTM -> Dense -> y (B, T, F): runs, streams, pools and generates."""
    rng = np.random.default_rng(seed)
    rec = make_recurrent("rec", "lstm", "forward", H, F, rng, x="x", y="h")
    head = ir.Dense("head", "h", "y", rng.uniform(-1, 1, (H, F)).astype(np.float32))
    return ir.Graph([ir.TensorInfo("x", (None, None, F), "float32")], [rec, head], ["y"])


@pytest.fixture
def folder(tmp_path):
    """a.rnnrt and b.rnnrt (the same layers, other weights: the same size) and x.npy."""
    a = packing.save(forecast_graph(0), tmp_path / "a.rnnrt")
    b = packing.save(forecast_graph(1), tmp_path / "b.rnnrt")
    assert os.path.getsize(a) == os.path.getsize(b) > 4 * 4096
    x = np.random.default_rng(2).uniform(-1, 1, (2, 5, F)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    return tmp_path


def use_mode(monkeypatch, mode):
    if mode == "mmap":
        monkeypatch.setenv(ENV, "0")
    else:
        monkeypatch.delenv(ENV, raising=False)


def child(code, mode, folder, *python_args):
    """Run `code` (CHILD_PRELUDE first) in a fresh interpreter; the CompletedProcess."""
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    if "ASAN_OPTIONS" in env:
        # make test-asan: a SIGBUS these children meet is the test's (a file truncated on
        # purpose, a fault elsewhere that must still kill): ASan must not report it.
        env["ASAN_OPTIONS"] += ":handle_sigbus=0"
    env.pop("PYTHONFAULTHANDLER", None)
    env.pop(ENV, None)
    if mode == "mmap":
        env[ENV] = "0"
    return subprocess.run([sys.executable, *python_args, "-c", CHILD_PRELUDE + code,
                           str(folder)], capture_output=True, text=True, env=env, timeout=120,
                          check=False)


def child_result(proc):
    """The JSON the child printed last, once it is known to have exited normally."""
    assert proc.returncode == 0, f"child exited with {proc.returncode}:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


CHILD_PRELUDE = """
import json, os, shutil, sys, threading, time
import numpy as np
import rnnrt

folder = sys.argv[1]
A = os.path.join(folder, "a.rnnrt")
X = np.load(os.path.join(folder, "x.npy"))

def fresh_copy(name):
    path = os.path.join(folder, name)
    shutil.copyfile(A, path)
    return path

class Held:
    '''A model with a stream and a pool of its own; used once (after_use) or not yet.'''
    def __init__(self, path, used):
        self.model = rnnrt.load(path)
        if used:
            self.model.run(X)
            self.stream = self.model.stream(2)
            self.stream.step(X[:, 0])
            self.pool = self.model.stream_pool(4)
            self.ids = [self.pool.open(), self.pool.open()]
            self.pool.step(self.ids, X[:, 0])

# Each computation a service makes; a stream or pool is made on the spot unless held.
def stream(h):
    return h.stream if hasattr(h, "stream") else h.model.stream(2)
def pool(h):
    if not hasattr(h, "pool"):
        h.pool = h.model.stream_pool(4)
        h.ids = [h.pool.open(), h.pool.open()]
    return h.pool
CALLS = {
    "run": lambda h: h.model.run(X)[0],
    "step": lambda h: stream(h).step(X[:, 1]),                   # the C fast path
    "step_general": lambda h: stream(h).step(X[:, 1].tolist()),  # the checked path
    "pool_step": lambda h: pool(h).step(h.ids, X[:, 1]),
    "generate": lambda h: h.model.generate(X[0], 3),
    "verify": lambda h: h.model.verify(),
}

def outcome(fn, *args):
    try:
        value = fn(*args)
    except rnnrt.FormatError as e:
        return "FormatError: " + str(e)
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return value
"""

TRUNCATE = """
used = {used}
results = {{}}
for name, call in CALLS.items():
    path = fresh_copy(name + ".rnnrt")
    held, reference = Held(path, used), Held(fresh_copy("ref.rnnrt"), used)
    os.truncate(path, 0)            # what `cp new.rnnrt live.rnnrt` does first
    got = outcome(call, held)
    if isinstance(got, str):
        results[name] = got
    else:
        want = call(reference)
        results[name] = "same" if (got is None and want is None) or np.array_equal(got, want) \\
            else "differs"
print(json.dumps(results))
"""


@pytest.mark.parametrize("when", ["before_first_run", "after_use"])
@pytest.mark.parametrize("mode", MODES)
def test_a_file_truncated_under_a_loaded_model_never_kills_the_process(folder, mode, when):
    results = child_result(child(TRUNCATE.format(used=when == "after_use"), mode, folder))
    assert sorted(results) == ["generate", "pool_step", "run", "step", "step_general",
                               "verify"]
    for name, got in results.items():
        if mode == "copy":      # the model's own bytes: it runs on as loaded
            assert got == "same", name
        else:                   # the fault (in C, or in the deferred CRC pass) is refused
            assert got.startswith("FormatError") and TRUNCATED in got, (name, got)


THREADS = """
model = rnnrt.load(A)
want_run, want_step = model.run(X)[0], model.stream(2).step(X[:, 0])
truncated = threading.Event()
outcomes = []

def worker(kind):
    s = model.stream(2)
    after = 0                       # calls made once the file was truncated
    try:
        while after < 200:
            if truncated.is_set():
                after += 1
            if kind == "run":
                same = np.array_equal(model.run(X)[0], want_run)
            else:
                s.reset()
                same = np.array_equal(s.step(X[:, 0]), want_step)
            if not same and not truncated.is_set():
                outcomes.append("wrong before the truncation")
                return
        outcomes.append("ran on")
    except rnnrt.FormatError as e:
        outcomes.append("FormatError: " + str(e))

threads = [threading.Thread(target=worker, args=(k,)) for k in ("run", "step") * 2]
for t in threads:
    t.start()
time.sleep(0.05)
os.truncate(A, 0)
truncated.set()
for t in threads:
    t.join(60)
print(json.dumps(outcomes))
"""


@pytest.mark.parametrize("mode", MODES)
def test_threads_running_a_model_when_its_file_is_truncated(folder, mode):
    outcomes = child_result(child(THREADS, mode, folder))
    assert len(outcomes) == 4
    for got in outcomes:
        if mode == "copy":
            assert got == "ran on"
        else:
            assert got.startswith("FormatError") and TRUNCATED in got, got


@pytest.mark.parametrize("mode", MODES)
def test_an_in_place_overwrite_never_changes_a_model_silently(folder, mode, monkeypatch):
    use_mode(monkeypatch, mode)
    live, other = folder / "a.rnnrt", folder / "b.rnnrt"
    x = np.load(folder / "x.npy")
    model = rnnrt.load(live)
    before = model.run(x)[0]
    assert not np.array_equal(before, rnnrt.load(other).run(x)[0])
    shutil.copyfile(other, live)        # cp b.rnnrt a.rnnrt: the same size, other weights
    if mode == "copy":
        np.testing.assert_array_equal(model.run(x)[0], before)
        model.verify()                  # its own bytes, intact
    else:
        for _ in range(2):              # checked again at every call
            with pytest.raises(rnnrt.FormatError,
                               match=r"overwritten while loaded \(tensor .*data CRC32 "
                                     r"mismatch.*\); replace a live model .*renaming"):
                model.verify()


def test_a_mapped_file_is_checked_again_at_every_verify(folder, monkeypatch):
    use_mode(monkeypatch, "mmap")
    live = folder / "a.rnnrt"
    model = rnnrt.load(live)
    model.verify()
    data = bytearray(live.read_bytes())
    data[-1] ^= 1
    with open(live, "r+b") as f:        # one byte changed in place: no truncation at all
        f.write(data)
    with pytest.raises(rnnrt.FormatError, match="overwritten.*data CRC32 mismatch"):
        model.verify()


def test_replacing_by_rename_leaves_the_loaded_model_as_it_was(folder, monkeypatch):
    use_mode(monkeypatch, "mmap")       # the mapping keeps the old inode alive
    live, x = folder / "a.rnnrt", np.load(folder / "x.npy")
    model = rnnrt.load(live)
    before = model.run(x)[0]
    packing.save(forecast_graph(1), live)           # a temporary file renamed over it
    np.testing.assert_array_equal(model.run(x)[0], before)
    model.verify()
    assert not np.array_equal(rnnrt.load(live).run(x)[0], before)


ELSEWHERE = """
import mmap, signal
model = rnnrt.load(A)               # mapped: the guard is installed
model.run(X)
assert not model._file.private_copy
how = sys.argv[2]
if how == "sent":
    print("sending", flush=True)
    os.kill(os.getpid(), signal.SIGBUS)
else:
    other = os.path.join(folder, "other.bin")
    with open(other, "wb") as f:
        f.write(bytes(3 * 4096))
    with open(other, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    os.truncate(other, 0)
    print("reading", flush=True)
    mm[2 * 4096]                    # a SIGBUS in a mapping that is not a model's
print("survived", flush=True)
"""


@pytest.mark.parametrize("faulthandler", [False, True])
@pytest.mark.parametrize("how", ["fault", "sent"])
def test_a_sigbus_that_is_not_a_models_still_kills_the_process(folder, how, faulthandler):
    code = ELSEWHERE.replace("sys.argv[2]", repr(how))
    proc = child(code, "mmap", folder, *(["-X", "faulthandler"] if faulthandler else []))
    assert proc.returncode == -signal.SIGBUS, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout.split() == ["reading" if how == "fault" else "sending"]
    if faulthandler:                # the handler before ours still gets it
        assert "Fatal Python error: Bus error" in proc.stderr


DISPLACED = """
import faulthandler
first = rnnrt.load(A)
faulthandler.enable()               # a SIGBUS handler in front of the guard from now on
second = rnnrt.load(A)
print(json.dumps([first._file.private_copy, second._file.private_copy]))
"""


def test_a_load_copies_when_another_sigbus_handler_is_in_front_of_the_guard(folder):
    # A fault would reach that handler first, and the guard could not recover from it.
    assert child_result(child(DISPLACED, "mmap", folder)) == [False, True]


def test_the_threshold_decides_copy_or_mapping_at_each_load(folder, monkeypatch):
    path = folder / "a.rnnrt"
    size = os.path.getsize(path)
    monkeypatch.delenv(ENV, raising=False)
    assert fileformat.PRIVATE_COPY_ENV == ENV
    assert fileformat.private_copy_max_bytes() == fileformat.PRIVATE_COPY_MAX_BYTES == 256 << 20
    assert rnnrt.load(path)._file.private_copy
    for limit, copied in ((size, True), (size - 1, False), (0, False)):
        monkeypatch.setenv(ENV, str(limit))
        assert rnnrt.load(path)._file.private_copy is copied, limit


@pytest.mark.parametrize("value", ["lots", "-1", "1.5", ""])
def test_a_bad_threshold_setting_is_an_input_error(folder, monkeypatch, value):
    monkeypatch.setenv(ENV, value)
    with pytest.raises(rnnrt.InputError,
                       match=f"RNNRT_PRIVATE_COPY_MAX_BYTES must be a byte count.*{value!r}"):
        rnnrt.load(folder / "a.rnnrt")


def test_a_file_cut_while_it_is_copied_is_a_format_error(folder, monkeypatch):
    path = folder / "a.rnnrt"
    size = os.path.getsize(path)

    class CutAfterTheHeader(io.FileIO):
        """The file: truncated in place once its preamble and header are read."""
        reads = 0

        def readinto(self, b):
            n = super().readinto(b)
            CutAfterTheHeader.reads += 1
            if CutAfterTheHeader.reads == 2:
                os.truncate(path, size // 2)
            return n

    monkeypatch.setattr(fileformat, "open", lambda p, mode, buffering: CutAfterTheHeader(p),
                        raising=False)
    with pytest.raises(rnnrt.FormatError,
                       match=f"the file was cut to {size // 2} bytes while it was read "
                             f"\\(it had {size}\\); replace .*renaming"):
        fileformat.read(path)
    assert CutAfterTheHeader.reads > 2


def test_the_cache_loads_an_overwritten_file_anew_and_the_old_model_runs_on(folder):
    live, x = folder / "a.rnnrt", np.load(folder / "x.npy")
    cache.clear()
    old = cache.load(live)
    before = old.run(x)[0]
    stat = os.stat(live)
    shutil.copyfile(folder / "b.rnnrt", live)
    os.utime(live, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))   # even within a tick
    new = cache.load(live)
    assert new is not old and cache.stats()["loads"] == 2
    np.testing.assert_array_equal(old.run(x)[0], before)
    np.testing.assert_array_equal(new.run(x)[0], rnnrt.load(folder / "b.rnnrt").run(x)[0])
    cache.clear()
