"""Benchmarks: ``make bench`` (see the README's benchmark section)."""
