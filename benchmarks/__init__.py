"""Benchmarks of rnnrt against onnxruntime and PyTorch (see compare.py)."""
