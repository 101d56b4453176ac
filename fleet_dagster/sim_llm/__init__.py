"""A small OpenAI-compatible server with fixed latency and injectable faults, for tests and benchmarks."""
