"""Benchmarks that run against real splitkey servers. How to run them: docs/benchmarks.md."""
