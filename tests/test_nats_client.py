"""The fleet's NATS client parses headers exactly as nats-py does, only faster."""

from __future__ import annotations

import pytest
from nats.aio.client import Client

from workers.nats import FleetClient


@pytest.mark.parametrize(
    "raw",
    [
        b"Nats-Msg-Id: 5f0c\r\n\r\n",
        b"Nats-Msg-Id: a\r\nX-Test: 1\r\ntraceparent: 00-ab-cd-01\r\n\r\n",
        b"Bad Name: x\r\nok:v\r\nnocolon\r\n\xff\xfe: y\r\nk:  spaced value  \r\n",
        b"k: caf\xc3\xa9\r\nbroken: \xff\r\n",
        b"",
    ],
)
def test_header_parsing_matches_nats_py(raw):
    """Same dict for well-formed, malformed and non-UTF-8 header blocks."""
    assert FleetClient._parse_header_lines(raw) == Client._parse_header_lines(raw)
