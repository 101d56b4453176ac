"""The `deliberation` asset: plan → one council per role on Ray → collect."""
