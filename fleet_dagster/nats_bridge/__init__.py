"""NATS JetStream bridge: requests in through a sensor, events out, nothing lost or duplicated."""
