"""Benchmarks (``python -m utils bench ...``): a ratio against a baseline, in one run."""
