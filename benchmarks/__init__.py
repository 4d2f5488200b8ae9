"""Measurement scripts of neurossm; run them through ``python -m benchmarks <name> [args]``.

They are not part of the package or of the tests: each prints JSON (or a markdown table) and the
records that the docs quote are kept under ``benchmarks/results/``. benchmarks/README.md maps
every table in docs/ to the command that made it.
"""
