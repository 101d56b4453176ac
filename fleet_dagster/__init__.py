"""fleet-dagster: multi-agent LLM deliberations on Dagster, Ray and vLLM."""

__version__ = "0.1.0"
