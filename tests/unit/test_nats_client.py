"""The fleet's NATS client parses the protocol and headers exactly as nats-py does, only faster."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.client import Client
from nats.errors import ProtocolError
from nats.protocol.parser import Parser

from workers.natsio.client import FleetClient, FleetParser, hpub_frame


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


class _Recorder:
    """Stands in for the client: records what a parser dispatches."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.stats = {"in_msgs": 0}

    async def _process_msg(self, sid, subject, reply, data, headers):
        self.calls.append(("msg", sid, bytes(subject), bytes(reply), bytes(data),
                           bytes(headers) if headers else None))

    async def _process_ping(self):
        self.calls.append(("ping",))

    async def _process_pong(self):
        self.calls.append(("pong",))

    async def _process_info(self, info):
        self.calls.append(("info", info))

    async def _process_err(self, err):
        self.calls.append(("err", err))


def _hmsg(subject: bytes, sid: int, reply: bytes, headers: bytes, payload: bytes) -> bytes:
    reply_part = b" " + reply if reply else b""
    return (b"HMSG %s %d%s %d %d\r\n" % (subject, sid, reply_part, len(headers),
                                        len(headers) + len(payload)) + headers + payload + b"\r\n")


_STREAM = (
    b'INFO {"server_id":"x","max_payload":1048576}\r\n'
    b"+OK\r\n"
    b"MSG a.b 1 5\r\nhello\r\n"
    b"MSG a.b 1 _INBOX.r 0\r\n\r\n"
    b"PING\r\n"
    + _hmsg(b"$JS.ACK.x", 2, b"$JS.ACK.SDLC.ingest.1.7.7.1.0", b"NATS/1.0\r\nA: b\r\n\r\n", b"hello")
    + _hmsg(b"_INBOX.z", 3, b"", b"NATS/1.0 408 Request Timeout\r\n\r\n", b"")
    + b"PONG\r\n"
    b"MSG big 4 2000\r\n" + b"x" * 2000 + b"\r\n"
    b"-ERR 'Unknown Protocol Operation'\r\n"
)


def _run_parser(parser_cls, chunks):
    async def main():
        nc = _Recorder()
        parser = parser_cls(nc)
        for chunk in chunks:
            await parser.parse(chunk)
        return nc.calls
    return asyncio.run(main())


@pytest.mark.parametrize("split", [1, 7, 64, 1000, len(_STREAM)])
def test_fleet_parser_dispatches_exactly_what_nats_py_does(split):
    """Every protocol op, framed at any read boundary, reaches the client as with nats-py."""
    chunks = [_STREAM[i:i + split] for i in range(0, len(_STREAM), split)]
    expected = _run_parser(Parser, [_STREAM])
    assert len(expected) == 9  # every op but +OK
    assert _run_parser(FleetParser, chunks) == expected


def test_a_tap_gets_raw_frames_and_other_subscriptions_are_untouched():
    """Frames of a tapped sid go to the tap as bytes; others take the normal path."""
    tapped: list[tuple] = []

    async def main():
        nc = _Recorder()
        parser = FleetParser(nc)
        parser.taps[2] = lambda *frame: tapped.append(frame)
        await parser.parse(_STREAM)
        return nc

    nc = asyncio.run(main())
    assert tapped == [(b"$JS.ACK.x", b"$JS.ACK.SDLC.ingest.1.7.7.1.0", b"hello", b"NATS/1.0\r\nA: b\r\n\r\n")]
    assert [c[1] for c in nc.calls if c[0] == "msg"] == [1, 1, 3, 4]
    assert nc.stats["in_msgs"] == 1


@pytest.mark.parametrize("garbage", [b"BOGUS op\r\n", b"MSG a.b\r\n", b"HMSG a 1 x 5\r\n"])
def test_fleet_parser_refuses_malformed_protocol(garbage):
    """A line the protocol does not know is a ProtocolError (nats-py reconnects on it)."""
    with pytest.raises((ProtocolError, ValueError)):
        _run_parser(FleetParser, [garbage])


def test_fleet_parser_refuses_an_overlong_control_line():
    """No line end within the protocol's limit: the stream is broken, not split."""
    with pytest.raises(ProtocolError):
        _run_parser(FleetParser, [b"MSG " + b"a" * 5000])


# -- the publish side: ready-made frames -----------------------------------------------


class _Capture(Client):
    """nats-py's client, stopped where it hands a frame to its pending buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []

    async def _send_command(self, cmd, priority=False):
        self.sent.append(bytes(cmd))


@pytest.mark.parametrize("subject,reply,headers,payload", [
    ("graph.graph.node.upserted", "", {"Nats-Msg-Id": "graph@v1:1"}, b'{"seq":1}'),
    ("graph.graph.edge.added", "_INBOX.abc.3-7",
     {"Nats-Msg-Id": "graph@v1:2", "Nats-Expected-Last-Msg-Id": "graph@v1:1",
      "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, b""),
    ("s", "r", {}, "café".encode()),
])
def test_hpub_frames_are_byte_for_byte_what_nats_py_sends(subject, reply, headers, payload):
    nc = _Capture()
    asyncio.run(nc._send_publish(subject, reply, payload, len(payload), headers))
    assert hpub_frame(subject, reply, headers, payload) == nc.sent[0]


@pytest.mark.parametrize("headers", [
    {"Nats-Msg-Id": "a\r\nX-Injected: 1"}, {"k": "line\nbreak"}, {"bad name": "v"}, {"a:b": "v"}, {"": "v"},
])
def test_an_hpub_frame_refuses_headers_that_would_break_it(headers):
    with pytest.raises(ValueError, match="cannot go into a NATS frame"):
        hpub_frame("s", "", headers, b"x")
