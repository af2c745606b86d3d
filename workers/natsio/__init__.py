"""NATS client code every process shares: the connection, streams, publishing, heartbeats."""
