"""The deliberation itself: plain Python, no Dagster or Ray import."""
