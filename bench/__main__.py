"""`python -m bench`: every benchmark in turn (each prints its own table)."""

from __future__ import annotations

import importlib
import sys

SUITES = ("core", "export", "dlpack", "runtime", "serve")


def main() -> int:
    failed = []
    for name in SUITES:
        mod = importlib.import_module(f"bench.{name}")
        if mod.main() != 0:
            failed.append(name)
    if failed:
        print(f"\nbars missed in: {', '.join(failed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
