"""Run the benchmarks: ``python -m tests.bench [--rows N] [--only NAME ...]``."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from pathlib import Path

import django


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the generated feed")
    parser.add_argument("--only", nargs="*", default=[], help="benchmark module names to run")
    parser.add_argument("--workdir", default="", help="where to write generated files")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    django.setup()
    package = Path(__file__).parent
    names = sorted(
        module.name
        for module in pkgutil.iter_modules([str(package)])
        if module.name.startswith("bench_")
    )
    selected = [name for name in names if not args.only or name.removeprefix("bench_") in args.only]
    failed = 0
    for name in selected:
        module = importlib.import_module(f"tests.bench.{name}")
        print(f"\n=== {name}", flush=True)
        try:
            module.run(args)
        except Exception as exc:  # one broken benchmark must not hide the others' numbers
            failed += 1
            print(f"{name} failed: {type(exc).__name__}: {exc}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
