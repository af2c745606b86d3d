"""Fault injection: processes killed, nats-server stopped, restarted or cut short."""
