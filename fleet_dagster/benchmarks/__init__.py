"""Scheduled benchmarks: speed, quality and code suites, the benchmark_results asset, its checks and schedule."""
