"""Synthetic exporter networks and their event streams, for benchmarks, examples and `monitor simulate`."""
