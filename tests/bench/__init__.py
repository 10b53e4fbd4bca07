"""Benchmarks (``make bench``): each module ``bench_*.py`` here has ``run(args) -> list[Result]``.

They are not tests: nothing here asserts a time. Each prints its rate beside a reference measured
in the same run on the same machine, and the ratio between them.
"""
