"""Scheduled benchmarks: speed and quality suites, the benchmark_results asset, its checks and schedule."""
