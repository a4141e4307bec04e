#!/usr/bin/env python3
"""Convert a model to .rnnrt:  python tools/convert.py SRC -o DST [--config F] [--spec F]"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from rnnrt.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["convert"] + sys.argv[1:]))
