"""Every input a fuzz campaign ever saw fail (tests/fuzz/corpus/) must now be refused with a
typed rnnrt error, or load and run consistently (tests/fuzz/oracle.py says how that is
judged). Each case runs in a worker process, so a case that crashes or hangs is a failed
test, not a dead suite.

The cases of defects not fixed yet are listed in corpus/KNOWN_FAILURES.txt: those must still
fail (a case that passes says its defect is fixed: take it off the list), and no other may.
"""

import os

import pytest

from fuzz import corpus, oracle
from fuzz.workers import Workers

CASES = corpus.cases()
KNOWN = corpus.known_failures()
NOTES = corpus.notes()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """{case name: outcome} of the whole corpus, judged by two workers at once."""
    scratch = str(tmp_path_factory.mktemp("fuzz-corpus"))
    requests = [{"op": "file", "path": os.path.join(corpus.CORPUS, name)} for name in CASES]
    with Workers(min(2, os.cpu_count() or 1), scratch) as workers:
        judged = list(workers.run(requests))
    return {os.path.basename(r["request"]["path"]): r for r in judged}


def test_corpus_is_listed_and_small():
    assert CASES, "the corpus is empty"
    assert sorted(NOTES) == CASES, "every corpus file needs one line in corpus/NOTES.txt"
    stale = sorted(set(KNOWN) - set(CASES))
    assert not stale, f"KNOWN_FAILURES.txt names cases the corpus does not hold: {stale}"
    total = sum(os.path.getsize(os.path.join(corpus.CORPUS, n)) for n in CASES)
    assert total < 2 << 20, f"the corpus holds {total} bytes: minimize its inputs"


@pytest.mark.parametrize("name", CASES)
def test_corpus_case(results, name):
    r = results[name]
    what = f"{name}: {r['outcome']} at {r['site']}: {r['detail'][:500]}"
    if name in KNOWN:
        defect = KNOWN[name][0]
        assert r["outcome"] not in oracle.FINE, (
            f"{name} (defect {defect}) now ends {r['outcome']}: if defect {defect} is "
            f"fixed, take the case off corpus/KNOWN_FAILURES.txt")
        assert r["outcome"] != oracle.HARNESS, what
    else:
        assert r["outcome"] in oracle.FINE, what


def test_a_crash_or_hang_is_reported_and_the_worker_replaced(tmp_path):
    requests = [{"op": "selftest", "what": "crash"}, {"op": "selftest", "what": "hang"},
                {"op": "file", "path": os.path.join(corpus.CORPUS, CASES[0])}]
    with Workers(1, str(tmp_path), timeout=2) as workers:
        outcomes = [r["outcome"] for r in workers.run(requests)]
        assert workers.restarts == 2
    assert outcomes[:2] == ["crash", "hang"] and outcomes[2] not in ("crash", "hang")
