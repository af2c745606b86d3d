"""Broker errors: members of the fleet's exception tree that dramatiq also understands."""

from __future__ import annotations

from dramatiq.errors import BrokerError, ConnectionClosed

from events.errors import PermanentError, TransientError

__all__ = ["BrokerRejected", "BrokerUnavailable"]


class BrokerUnavailable(TransientError, ConnectionClosed):
    """NATS did not answer in time or the connection is gone.

    A dramatiq ``ConnectionClosed``, so dramatiq's worker restarts its
    consumer or retries the ack instead of dropping the message.
    """


class BrokerRejected(PermanentError, BrokerError):
    """JetStream refused an operation (limits, a stream bound elsewhere, oversized message)."""
