"""How much a call may allocate: sizes beyond what the machine can hold are refused before
NumPy or C is asked for the memory (a MemoryError, or the kernel's OOM killer, is not an
answer a caller can act on).

The limit is the machine's physical memory, or the memory limit of this process's cgroup
when that is lower (a container). A call that fits may still fail when other processes hold
the memory; a call that cannot fit is refused whatever they do.
"""

from __future__ import annotations

import contextlib
import os

from .errors import InputError

C_INT_MAX = 2 ** 31 - 1     # batch, time and sizes reach the kernels as C ints
_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max",                      # cgroup v2
                  "/sys/fs/cgroup/memory/memory.limit_in_bytes")     # cgroup v1


def memory_limit() -> int:
    """Bytes this process could ever get: physical memory, or its cgroup's limit if lower."""
    try:
        limit = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        limit = 2 ** 62     # unknown here: only the size checks of C ints apply
    for path in _CGROUP_LIMITS:
        try:
            with open(path) as f:
                value = f.read().strip()
        except OSError:
            continue
        if value.isdigit():
            limit = min(limit, int(value))
    return limit


def _gib(n: int) -> str:
    return f"{n / 2 ** 30:.3g} GiB"


def check_fits(nbytes: int, what: str, error=InputError) -> None:
    """Refuse (`error`, InputError by default) an allocation of nbytes for `what` (e.g.
    "a stream of batch 1000000000") that exceeds memory_limit()."""
    limit = memory_limit()
    if nbytes > limit:
        raise error(f"{what} needs {_gib(nbytes)} of buffers and workspace, more than this "
                    f"machine's {_gib(limit)} of memory")


def check_c_int(value: int, what: str) -> None:
    """InputError unless 0 <= value <= C_INT_MAX (a batch or time length the kernels take)."""
    if not 0 <= value <= C_INT_MAX:
        raise InputError(f"{what} must be at most {C_INT_MAX} (2**31 - 1), got {value}")


def out_of_memory(what: str, error: MemoryError) -> InputError:
    """The InputError for allocations that fit this machine but found too little memory free
    now (other processes hold it), instead of a bare MemoryError."""
    return InputError(f"{what}: this machine has too little free memory now for its buffers "
                      f"({error}); it has {_gib(memory_limit())} in all")


@contextlib.contextmanager
def allocating(what: str):
    """The block's MemoryError as out_of_memory's InputError."""
    try:
        yield
    except MemoryError as e:
        raise out_of_memory(what, e) from None
