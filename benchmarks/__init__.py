"""Benchmarks: ``make bench`` prints one JSON object merged from every ``benchmarks/bench_*.py``.

Each module defines ``run() -> dict`` (its keys go into the object at top level; a module whose key is
already taken is an error). Progress and logs go to stderr; stdout holds only the JSON. Machine facts
(CPU, cores) are recorded under ``"machine"`` so every figure says where it was measured.
``python -m benchmarks --only rtl`` runs the modules whose name contains ``rtl``.
"""
