"""Benchmark scripts: they print figures against a running cluster, never assert."""
