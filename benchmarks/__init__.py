"""Benchmarks: each prints figures and asserts nothing (see the Makefile targets)."""
