"""Earshot's benchmarks, run with `python -m bench` (`make bench`); see BENCHMARKS.md.

A benchmark measures and reports; it never passes or fails on speed. Nothing under tests/
asserts a timing.
"""
