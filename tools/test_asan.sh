#!/usr/bin/env bash
# `make test-asan`: the test suite (tests/, the fuzz corpus included) against the engine built
# with -fsanitize=address,undefined. Exits non-zero on a failing test or on any sanitizer
# report: ASan's go to files (from child processes too), checked at the end; UBSan's (gcc's
# libubsan beside ASan ignores log_path) go to stderr, and any UBSan report aborts its process.
#
# The sanitized build lives in a copy of the working tree (build/asan/tree), so the normal
# in-place build is never replaced. usage: tools/test_asan.sh PYTHON [pytest args; default tests]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
py=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
shift
dir=$root/build/asan
tree=$dir/tree
logs=$dir/reports

# The working tree as git sees it: tracked and untracked-but-not-ignored files that exist.
rm -rf "$tree" "$logs"
mkdir -p "$tree" "$logs"
git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done |
    xargs -0 cp --parents -t "$tree"

cc=$("$py" -c "import sysconfig; print(sysconfig.get_config_var('CC').split()[0])")
echo "test-asan: building the engine with -fsanitize=address,undefined ($cc) in $tree"
(cd "$tree" && RNNRT_SANITIZE=address,undefined "$py" setup.py -q build_ext --inplace \
    > "$dir/build.log" 2>&1) || { cat "$dir/build.log"; exit 1; }

# CPython is not built with ASan: its runtime must be loaded first, and libstdc++ beside it
# so that ASan's C++ interceptors find the real __cxa_throw (onnxruntime throws).
lib() { readlink -f "$("$cc" -print-file-name="$1")"; }
preload="$(lib libasan.so) $(lib libubsan.so) $(lib libstdc++.so)"
for f in $preload; do
    [ -f "$f" ] || { echo "test-asan: $f not found (install the compiler's libasan)"; exit 1; }
done

# detect_leaks=0: CPython keeps its interned objects and caches alive until exit.
# allocator_may_return_null=1: a huge numpy allocation is a MemoryError (as without ASan),
# not a sanitizer abort.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:allocator_may_return_null=1:log_path=$logs/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# PYTHONMALLOC=malloc: Python objects get ASan's red zones too, not pymalloc's arenas.
export PYTHONMALLOC=malloc
# A process a sanitizer kills can leave a test waiting for it (a Dask worker): a test that
# runs 5 minutes dumps every thread's stack, and the whole run ends after LIMIT seconds
# (it takes ~2 minutes).
limit=${RNNRT_ASAN_LIMIT:-900}
status=0
(cd "$tree" && LD_PRELOAD="$preload" timeout -k 30 "$limit" "$py" -m pytest -q \
    -p no:cacheprovider -o faulthandler_timeout=300 "${@:-tests}") 2>&1 |
    tee "$dir/pytest.log" || status=$?

reports=$(find "$logs" -type f | sort)
ubsan=$(grep -cE '^[^ ]+:[0-9]+:[0-9]+: runtime error: ' "$dir/pytest.log" || true)
if [ -n "$reports" ] || [ "$ubsan" -gt 0 ]; then
    for f in $reports; do echo "== sanitizer report $f"; cat "$f"; done
    echo "test-asan: FAILED: $(echo -n "$reports" | grep -c .) ASan report(s) in $logs," \
         "$ubsan UBSan report(s) in $dir/pytest.log"
    exit 1
fi
[ "$status" -ne 124 ] || { echo "test-asan: FAILED: the suite ran past ${limit} s"; exit 1; }
[ "$status" -eq 0 ] || { echo "test-asan: FAILED: pytest exited $status"; exit "$status"; }
echo "test-asan: passed, no sanitizer reports"
