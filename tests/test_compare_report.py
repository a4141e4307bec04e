"""The README tables that benchmarks/compare.py writes (compare.md), from a made-up run."""
import pytest

report = pytest.importorskip("benchmarks.report")


def engine(family, median, x_floor, over=None):
    return {"family": family, "median_s": median, "x_floor": x_floor, "rnnrt_over_this": over}


DOC = {
    "cases": [
        {"scenario": "A", "cell": "lstm", "hidden": 128, "input": 64, "batch": 1,
         "threads": 1, "engines": {
             "rnnrt step(out=)": engine("rnnrt", 3.5e-6, 2.0),
             "onnxruntime run(h, c fed)": engine("onnxruntime", 12e-6, 7.0, 0.29),
             "onnxruntime IOBinding": engine("onnxruntime", 9e-6, 5.0, 0.39),
             "torch nn.LSTM": engine("torch", 90e-6, 53.0, 0.04)}},
        {"scenario": "C", "cell": "gru", "hidden": 256, "input": 128, "batch": 64,
         "threads": 2, "engines": {
             "rnnrt": engine("rnnrt", 5.2e-3, 1.2),
             "onnxruntime": engine("onnxruntime", 7.6e-3, 1.75, 0.68)}},
    ],
    "startup": {"numpy_alone": {"peak_rss_kib": 25 * 1024}, "cells": {"rnn": {"rnnrt": {
        "import_s": 3e-4, "load_s": 11e-3, "second_load_s": 2e-4,
        "peak_rss_kib": 28 * 1024}}}},
}


def test_rows_quote_the_plain_call_of_each_peer_and_mark_what_is_missing():
    lines = report.markdown(DOC).splitlines()
    assert lines[2] == ("| A | LSTM H=128 I=64 1t | 3.5 µs | 2.00 | 12 µs | 0.29 | 90 µs "
                        "| 0.04 |")
    # Distance to the floor is quoted at 1 thread only; an absent peer is a dash.
    assert lines[3] == "| C | GRU B=64 2t | 5.2 ms | - | 7.6 ms | 0.68 | - | - |"
    assert "| SimpleRNN rnnrt | 300 µs | 11 ms | 200 µs | 28 MiB |" in lines
    assert lines[-1] == "| numpy alone | - | - | - | 25 MiB |"
