"""dramatiq brokers for the fleet, chosen by URL.

``nats://`` (the default: the embedded fleet needs only NATS) selects
:class:`~workers.broker.jetstream.JetStreamBroker`; ``redis://`` and
``amqp://`` select dramatiq's own RedisBroker and RabbitmqBroker; ``stub://``
selects dramatiq's in-memory StubBroker for tests.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from dramatiq.broker import Broker

from events.errors import ConfigError
from workers.natsio.client import redact_url

__all__ = ["broker_from_url"]

_SCHEMES = {
    "nats": "jetstream", "tls": "jetstream",
    "redis": "redis", "rediss": "redis", "unix": "redis",
    "amqp": "rabbitmq", "amqps": "rabbitmq",
    "stub": "stub",
}


def broker_from_url(url: str, **kw: Any) -> Broker:
    """The dramatiq broker for ``url``; ``kw`` goes to the broker's constructor.

    >>> broker_from_url("nats://127.0.0.1:4222", stream="DRAMATIQ")  # doctest: +SKIP

    Raises :class:`~events.errors.ConfigError` for an unknown scheme or when
    the client library of the chosen broker is not installed.
    """
    scheme = urlparse(url).scheme.lower()
    kind = _SCHEMES.get(scheme)
    if kind == "jetstream":
        from workers.broker.jetstream import JetStreamBroker

        return JetStreamBroker(url, **kw)
    if kind == "stub":
        from dramatiq.brokers.stub import StubBroker

        return StubBroker(**kw)
    if kind == "redis":
        try:
            from dramatiq.brokers.redis import RedisBroker
        except ImportError as e:
            raise ConfigError(f"broker URL {redact_url(url)!r} needs the redis client"
                              " - pip install 'dramatiq[redis]'") from e
        return RedisBroker(url=url, **kw)
    if kind == "rabbitmq":
        try:
            from dramatiq.brokers.rabbitmq import RabbitmqBroker
        except ImportError as e:
            raise ConfigError(f"broker URL {redact_url(url)!r} needs pika - pip install 'dramatiq[rabbitmq]'") from e
        return RabbitmqBroker(url=url, **kw)
    raise ConfigError(f"broker URL {redact_url(url)!r} has scheme {scheme!r}; expected one of"
                      f" {', '.join(sorted(_SCHEMES))} (e.g. nats://127.0.0.1:4222)")
