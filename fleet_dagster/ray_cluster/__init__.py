"""Ray: the shared cluster, and the actors that run councils and agent calls."""
