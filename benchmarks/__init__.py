"""Benchmarks: each figure is measured next to a raw baseline from the same run on the same machine.

Run with `make bench`; results go to benchmarks/results/latest.json and a table on the terminal.
"""
