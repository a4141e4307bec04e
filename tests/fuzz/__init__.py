"""The fuzz harness: hostile .rnnrt and ONNX files, judged in worker processes.

    make fuzz MINUTES=10                      a campaign (FUZZ_ARGS=--save-corpus to keep
                                              minimized new failures in the corpus)
    make fuzz-ci                              the bounded campaign `make test` runs
    pytest tests/test_fuzz_corpus.py          the corpus replay (part of `make test`)
    PYTHONPATH=tests python -m fuzz --help    every option

One concern a module:
    rnnrt_doc.py       a .rnnrt file as an editable document, encoded back checksum-valid
    rnnrt_mutators.py  edits of the graph, the tensor table and the bytes of a .rnnrt file
    onnx_mutators.py   edits of an ONNX model's protobuf, and of its bytes
    values.py          the hostile values the mutators write
    seeds.py           the valid models mutations start from
    cases.py           case number -> (seed, mutations) -> bytes, the same in every process
    oracle.py          one case judged: its outcome and failure site
    checks.py          the checks on a model rnnrt accepted
    worker.py          the child process that judges case after case
    workers.py         the parent's side: timeouts, crashes, restarts
    minimize.py        shrink a failing case
    corpus.py          the corpus of failing inputs, its notes and its known failures
    campaign.py        a campaign: counts, failures saved, minimized, reported
"""
