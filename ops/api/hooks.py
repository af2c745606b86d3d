"""``POST /hooks/gitlab`` and ``POST /hooks/github``: webhooks in, canonical events out.

A request goes through these steps; the first that fails answers:

====  =========================================================================
503   the platform's secret is not configured (the body names the variable)
401   GitLab: ``X-Gitlab-Token`` is missing or is not FLEET_GITLAB_TOKEN
413   the body is over FLEET_MAX_BODY_BYTES (Content-Length first, then while
      reading, so an oversized body is never held in memory)
401   GitHub: ``X-Hub-Signature-256`` is missing or is not the HMAC-SHA256 of
      the body under FLEET_GITHUB_SECRET
400   no ``X-GitHub-Event``; a delivery id that is not ASCII; the body is not
      JSON (or GitHub's form-encoded ``payload=``) or nests past 100 levels;
      the adapter rejects the payload
202   ``{"status": "ignored", "reason": ...}``: nothing the graph uses
503   JetStream did not acknowledge every event (the platform redelivers)
200   ``{"status": "accepted", "events": N, "event_ids": [...], ...}``
====  =========================================================================

Errors are ``{"error": <code>, "detail": <what is wrong and the fix>}``.
Secrets are compared in constant time. A redelivery carries the same delivery
id (``X-GitHub-Delivery``; GitLab's ``Idempotency-Key``, else
``X-Gitlab-Event-UUID``), so the adapters give it the same event ids and
JetStream's dedup window, then the log's unique ids, drop it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from opentelemetry import metrics, propagate, trace

from events.adapters import Mapped, map_github, map_gitlab
from events.adapters.payload import decode_payload
from events.errors import InvalidEvent

from ..settings import Settings
from .app import context

__all__ = ["Rejected", "github_signature", "parse_body", "setup", "verify_github_signature",
           "verify_gitlab_token"]

log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)
_meter = metrics.get_meter(__name__)
_requests = _meter.create_counter(
    "fleet.api.webhook.requests", unit="{request}",
    description="Webhook requests by platform and outcome")
_events = _meter.create_counter(
    "fleet.api.webhook.events", unit="{event}",
    description="Canonical events published from webhooks, by platform")
_context_skipped = _meter.create_counter(
    "fleet.api.webhook.context_skipped", unit="{fact}",
    description="Context facts about related objects left out because the payload got them wrong")
_duration = _meter.create_histogram(
    "fleet.api.webhook.duration", unit="s", description="Webhook request handling time")


class Rejected(Exception):
    """A request answered with an error: HTTP status, error code, detail, metric outcome."""

    def __init__(self, status: int, error: str, detail: str, outcome: str) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status, self.error, self.detail, self.outcome = status, error, detail, outcome

    def response(self) -> web.Response:
        """The JSON error response."""
        response = web.json_response({"error": self.error, "detail": self.detail}, status=self.status)
        if self.status == 413:
            response.force_close()  # the unread rest of the body makes the connection unusable
        return response


@dataclass(frozen=True)
class _Platform:
    name: str
    secret_var: str
    event_header: str
    delivery_headers: tuple[str, ...]
    adapter: Callable[..., Mapped]

    def secret(self, settings: Settings) -> str | None:
        return settings.gitlab_token if self.name == "gitlab" else settings.github_secret


GITLAB = _Platform("gitlab", "FLEET_GITLAB_TOKEN", "X-Gitlab-Event",
                   ("Idempotency-Key", "X-Gitlab-Event-UUID"), map_gitlab)
GITHUB = _Platform("github", "FLEET_GITHUB_SECRET", "X-GitHub-Event", ("X-GitHub-Delivery",),
                   map_github)


def setup(app: web.Application) -> None:
    """Mount the webhook endpoints on the api application."""
    for platform in (GITLAB, GITHUB):
        app.router.add_post(f"/hooks/{platform.name}", _endpoint(platform))


def github_signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_github_signature(secret: str, body: bytes, header: str | None) -> None:
    """Raise :class:`Rejected` (401) unless ``header`` signs ``body`` with ``secret``."""
    if not header:
        raise _unauthorized("X-Hub-Signature-256 header is missing - set a secret on the GitHub "
                            "webhook (the SHA-1 X-Hub-Signature is not accepted)")
    algorithm, _, digest = header.strip().partition("=")
    if algorithm.lower() != "sha256" or not digest:
        raise _unauthorized(f"X-Hub-Signature-256 must be `sha256=<hex digest>`, "
                            f"got an {algorithm[:16]!r} signature")
    expected = github_signature(secret, body).encode()
    if not hmac.compare_digest(expected, b"sha256=" + digest.lower().encode(errors="replace")):
        raise _unauthorized("X-Hub-Signature-256 does not match the body signed with "
                            "FLEET_GITHUB_SECRET - check the webhook's secret")


def verify_gitlab_token(token: str, header: str | None) -> None:
    """Raise :class:`Rejected` (401) unless ``header`` is ``token`` (constant time)."""
    if not header:
        raise _unauthorized("X-Gitlab-Token header is missing - set the secret token on the "
                            "GitLab webhook")
    if not hmac.compare_digest(token.encode(), header.encode(errors="replace")):
        raise _unauthorized("X-Gitlab-Token does not match FLEET_GITLAB_TOKEN - check the "
                            "webhook's secret token")


def _unauthorized(detail: str) -> Rejected:
    return Rejected(401, "unauthorized", detail, "unauthorized")


def _endpoint(platform: _Platform) -> Callable[[web.Request], Any]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        with _tracer.start_as_current_span(
            f"POST /hooks/{platform.name}", context=propagate.extract(request.headers),
            kind=trace.SpanKind.SERVER, attributes={"fleet.webhook.platform": platform.name},
        ) as span:
            try:
                response, outcome = await _receive(request, platform)
            except Rejected as e:
                response, outcome = e.response(), e.outcome
                log.warning("webhook rejected", extra={
                    "platform": platform.name, "status": e.status, "error": e.error,
                    "detail": e.detail, "delivery": _delivery_header(request, platform)[1]})
            except Exception:
                log.exception("webhook failed", extra={"platform": platform.name})
                response, outcome = Rejected(
                    500, "internal", "the gateway failed on this payload; see the api logs",
                    "error").response(), "error"
            span.set_attribute("http.response.status_code", response.status)
            span.set_attribute("fleet.webhook.outcome", outcome)
            if response.status >= 500:
                span.set_status(trace.Status(trace.StatusCode.ERROR, outcome))
        attributes = {"platform": platform.name, "outcome": outcome}
        _requests.add(1, attributes)
        _duration.record(time.monotonic() - started, attributes)
        return response

    endpoint.__doc__ = f"``POST /hooks/{platform.name}``: one {platform.name} webhook delivery."
    return endpoint


async def _receive(request: web.Request, platform: _Platform) -> tuple[web.Response, str]:
    ctx = context(request.app)
    secret = platform.secret(ctx.settings)
    if not secret:
        raise Rejected(503, "not_configured",
                       f"{platform.secret_var} is not set - set it to the webhook's secret "
                       f"and restart the api; unsigned {platform.name} webhooks are refused",
                       "not_configured")
    if platform is GITLAB:
        verify_gitlab_token(secret, request.headers.get("X-Gitlab-Token"))
    body = await _read_body(request, ctx.settings.max_body_bytes)
    if platform is GITHUB:
        verify_github_signature(secret, body, request.headers.get("X-Hub-Signature-256"))
    event_name = request.headers.get(platform.event_header) or None
    if platform is GITHUB and event_name is None:
        raise Rejected(400, "missing_header", "X-GitHub-Event header is missing - it names the "
                       "webhook event (issues, push ...)", "bad_request")
    delivery_id = _delivery_id(request, platform)
    trace.get_current_span().set_attributes(
        {"fleet.webhook.event": event_name or "", "fleet.webhook.delivery": delivery_id or ""})
    try:
        payload = parse_body(body, request.content_type)
        mapped = platform.adapter(event_name, payload, delivery_id=delivery_id,
                                  received_at=datetime.now(UTC))
    except InvalidEvent as e:
        raise Rejected(400, e.reason, e.detail, "bad_request") from e
    where = {"platform": platform.name, "event": event_name, "delivery": delivery_id}
    if not mapped.events:
        reason = mapped.ignored or "the payload maps to no event"
        log.info("webhook ignored", extra={**where, "reason": reason})
        return web.json_response({"status": "ignored", "reason": reason}, status=202), "ignored"
    if ctx.sink is None:
        raise Rejected(503, "unavailable", "the api is not connected to NATS yet - retry",
                       "unavailable")
    headers: dict[str, str] = {}
    propagate.inject(headers)  # traceparent of this request's span, when tracing is on
    report = await ctx.sink.publish(mapped.events, headers=headers)
    if report.errors:
        raise Rejected(503, "unavailable",
                       f"{len(report.errors)} of {len(mapped.events)} events were not stored: "
                       f"{report.errors[0]} - the delivery can be retried safely",
                       "unavailable")
    _events.add(len(mapped.events), {"platform": platform.name})
    ids = [e.event_id for e in mapped.events]
    answer = {"status": "accepted", "events": len(ids), "event_ids": ids,
              "duplicates": report.duplicates}
    if mapped.context_skipped:
        # Best effort: the events are stored; what the payload said wrong about related objects is not.
        _context_skipped.add(mapped.context_skipped, {"platform": platform.name})
        answer["context_skipped"] = mapped.context_skipped
        log.warning("webhook context left out", extra={**where, "context_skipped": mapped.context_skipped})
    log.info("webhook accepted", extra={**where, "events": len(ids), "duplicates": report.duplicates})
    return web.json_response(answer), "accepted"


def _delivery_header(request: web.Request, platform: _Platform) -> tuple[str, str | None]:
    """The first delivery id header present, and its value (None when there is none)."""
    for header in platform.delivery_headers:
        if value := request.headers.get(header, "").strip():
            return header, value
    return platform.delivery_headers[0], None


def _delivery_id(request: web.Request, platform: _Platform) -> str | None:
    """The delivery id, which the event ids derive from; :class:`Rejected` (400) unless ASCII."""
    header, value = _delivery_header(request, platform)
    if value is not None and not value.isascii():
        raw = value.encode("utf-8", "surrogateescape")  # the bytes as sent
        shown = repr(raw[:64]) + ("..." if len(raw) > 64 else "")
        raise Rejected(400, "bad_header", f"{header} {shown} is not ASCII - send the delivery id "
                       f"{platform.name} generated (a UUID), or no {header} at all", "bad_request")
    return value


async def _read_body(request: web.Request, limit: int) -> bytes:
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(f"Content-Length is {declared} bytes", limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise _too_large(f"the body is over {limit} bytes", limit)
            chunks.append(chunk)
    except (ConnectionError, HttpProcessingError) as e:
        raise Rejected(400, "incomplete_body",
                       f"the body ended before it was complete ({size} bytes read): {e}",
                       "bad_request") from e
    return b"".join(chunks)


def _too_large(what: str, limit: int) -> Rejected:
    return Rejected(413, "too_large", f"{what}, over the limit of {limit} bytes "
                    "(FLEET_MAX_BODY_BYTES)", "too_large")


def parse_body(body: bytes, content_type: str) -> Any:
    """The decoded JSON payload of a webhook body, JSON or GitHub's form encoding.

    Raises :class:`~events.errors.InvalidEvent` saying what is wrong:
    ``not_json`` (truncated, not JSON, a form without its ``payload`` field),
    ``too_deep`` (nested past :data:`~events.codec.MAX_DEPTH`).
    """
    if content_type == "application/x-www-form-urlencoded":
        fields = urllib.parse.parse_qs(body.decode("utf-8", errors="replace"))
        if not fields.get("payload"):
            raise InvalidEvent("not_json", "form-encoded body has no `payload` field - set the "
                               "webhook's content type to application/json")
        body = fields["payload"][0].encode()
    return decode_payload(body)
