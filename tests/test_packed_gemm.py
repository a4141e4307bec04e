"""The packed GEMM (src_c/packed_gemm.c), through its C harness benchmarks/packed_gemm_bench.c.

The harness checks every instruction-set variant the CPU has against a naive triple loop in
double precision (error relative to sum |a||b| within 1e-6, NaN-filled output for beta 0,
untouched columns past the window). Here it is built with gcc and run in its `check` mode,
then on shapes hypothesis draws (`case` mode). Skipped without gcc or scipy-openblas32.
"""
import os
import re
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnrt.panels import PANEL   # RNNRT_PANEL in src_c/rnnrt.h

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUMMARY = re.compile(r"checked (\d+) cases on ([a-z0-9 ]+) \(in use: (\w+)\); (\d+) failed")


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not available")
    openblas = pytest.importorskip("scipy_openblas32")
    exe = str(tmp_path_factory.mktemp("packed_gemm") / "packed_gemm_bench")
    cmd = [gcc, "-O3", "-std=c11", "-pthread", "-ffp-contract=fast", "-Wall",   # setup.py's
           "-Wno-unused-function", "-I" + os.path.join(ROOT, "src_c"), "-I" + openblas.get_include_dir(),
           os.path.join(ROOT, "benchmarks", "packed_gemm_bench.c"),
           "-L" + openblas.get_lib_dir(), "-Wl,-rpath," + openblas.get_lib_dir(),
           "-l" + openblas.get_library(), "-lm", "-o", exe]
    built = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    return exe


def run(exe, *args):
    done = subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr


def test_check_mode_passes_every_case(harness):
    rc, out = run(harness, "check")
    assert rc == 0, out
    found = SUMMARY.search(out)
    assert found, out
    cases, variants, in_use, failed = found.groups()
    # 16 row counts x 3 shapes + 2 whole-width shapes per variant, and 2 with k = 0.
    assert int(cases) >= 50 * len(variants.split()) + 2, out
    assert "portable" in variants.split() and in_use in variants.split(), out
    assert int(failed) == 0, out


@st.composite
def shapes(draw):
    n = draw(st.integers(1, 130))
    n0 = draw(st.integers(0, (n - 1) // PANEL)) * PANEL
    n1 = draw(st.integers(n0 + 1, n))
    return (draw(st.integers(1, 40)), draw(st.integers(0, 90)), n, n0, n1,
            draw(st.sampled_from([0.0, 1.0, 0.5, -2.0])), draw(st.integers(0, 2**63)))


@settings(max_examples=40, deadline=None)
@given(shape=shapes())
def test_drawn_shapes_match_the_naive_product(harness, shape):
    rc, out = run(harness, "case", *shape)
    assert rc == 0, out
    found = SUMMARY.search(out)
    assert found and int(found.group(4)) == 0, out
    assert int(found.group(1)) == len(found.group(2).split()), out


def test_bad_window_is_refused(harness):
    # The harness's own argument check (the library trusts its callers, which pass whole
    # panels): a case it cannot run must say why, not report a wrong product.
    rc, out = run(harness, "case", 4, 8, 70, 31, 69, 0.0, 1)    # n0 not a panel multiple
    assert rc == 2
    assert "n0 a multiple of 32" in out and "n0=31" in out
