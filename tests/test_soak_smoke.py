"""benchmarks/soak.py in a few thousand iterations (the full soak is not part of make test):
no phase leaks a file descriptor or a memory mapping and RSS stays bounded; and the soak's
checks do catch a leak."""
import mmap
import os

from benchmarks import soak

SMOKE = {"steps": 5000, "pool_steps": 1000, "churn": 500, "snapshots": 500, "loads": 200}
RSS_BOUND = 16 * 2**20
# Under make test-asan, ASan's quarantine keeps freed memory (up to 256 MiB): RSS grows by
# design there, so only descriptors and mappings are checked.
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")


def test_soak_phases_leak_nothing(tmp_path):
    results = soak.soak(SMOKE, str(tmp_path))
    assert [r.phase for r in results] == ["steps", "pool steps", "pool churn", "snapshots",
                                          "loads"]
    assert [r.count for r in results] == list(SMOKE.values())
    problems = [p for r in results for p in r.problems(RSS_BOUND)
                if not (UNDER_ASAN and "RSS grew" in p)]
    assert problems == [], "\n" + soak.table(results)


def test_soak_reports_leaked_fds_and_memory():
    kept = []

    def leaky(n):
        for _ in range(n):
            kept.append(open(os.devnull))               # one fd
            # 512 KiB, touched, mapped afresh: memory from the allocator could be pages
            # it already holds (under ASan, what earlier tests freed), which RSS counts.
            block = mmap.mmap(-1, 2**19)
            block.write(b"\x01" * 2**19)
            kept.append(block)
    try:
        r = soak.run_phase("leaky", 100, leaky)
    finally:
        for f in kept:
            f.close()
    problems = r.problems(RSS_BOUND)
    assert f"leaky: {r.fds_end - r.fds_start} file descriptor(s) leaked" in problems
    assert r.fds_end - r.fds_start == 95                # all but the 5 warm-up iterations
    assert any(p.startswith("leaky: RSS grew") and "bound 16.0 MiB" in p for p in problems)
