import os
import sys

from hypothesis import HealthCheck, settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# CI runs a fixed, reproducible set of examples; locally hypothesis explores anew each run.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def workers_take_part():
    """Calls on more than one thread share their work with workers whatever the load of the
    machine the suite runs on (src_c/cpu_load.c would keep them on their caller when it is
    busy), so that every test of a thread split runs the split. tests/test_threads.py tests
    the load probe itself."""
    from rnnrt.model import _engine
    _engine.fix_free_cores(4)
    yield
    _engine.fix_free_cores(0)
    _engine.hold_workers(False)
