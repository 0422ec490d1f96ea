"""Helpers the tests and the benchmarks share that do not ship in the wheel."""
