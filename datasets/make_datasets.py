"""Regenerate the sample archives in this folder (deterministic seeds; see README.md here).

Usage: python datasets/make_datasets.py [NAME ...]     (default: all of them)
"""

import sys
import time
from pathlib import Path

from xlangevin import datasets


def main(names):
    here = Path(__file__).resolve().parent
    for name in names or list(datasets.REGISTRY):
        t0 = time.perf_counter()
        path = datasets.make_dataset(name, here / f"{name}.nc")
        print(f"{name:12s} {path.stat().st_size / 1e6:6.2f} MB  {time.perf_counter() - t0:6.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
