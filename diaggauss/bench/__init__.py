"""Benchmarks (python -m diaggauss bench)."""
