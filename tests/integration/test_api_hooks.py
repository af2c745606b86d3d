"""The webhook gateway against a real nats-server: verify, map, publish, answer."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import signal
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest
from aiohttp.test_utils import TestClient, TestServer

from events.adapters import map_github, map_gitlab
from ops.api import create_app, hooks, route_setups
from ops.api.hooks import github_signature
from ops.wiring import open_log
from tests.support.cli import fleet_cmd, settings_env
from tests.support.ingest import ingest_until_idle
from tests.support.paths import WEBHOOK_FIXTURES
from tests.support.wait import wait_until
from workers.natsio.client import connect

FIXTURES = WEBHOOK_FIXTURES
GITHUB_EXAMPLES = FIXTURES / "github" / "examples"
GITLAB_HEADERS = {
    "issue_hook.json": "Issue Hook",
    "merge_request_hook.json": "Merge Request Hook",
    "note_hook_issue.json": "Note Hook",
    "push_hook.json": "Push Hook",
    "system_project_create.json": "System Hook",
}
SECRET = "gh-secret"
TOKEN = "gl-token"


@pytest.fixture
def hook_settings(settings):
    """Settings with both webhook secrets configured."""
    return settings.with_overrides(github_secret=SECRET, gitlab_token=TOKEN)


@contextlib.asynccontextmanager
async def api(settings):
    """A test client of the api app with only the webhook routes mounted."""
    async with TestClient(TestServer(create_app(settings, setups=[hooks.setup]))) as client:
        yield client


def github_headers(event: str, body: bytes, *, delivery: str | None = None,
                   signature: str | None = None, **extra: str) -> dict[str, str]:
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
               "X-Hub-Signature-256": github_signature(SECRET, body) if signature is None else signature,
               "Content-Type": "application/json", **extra}
    return {k: v for k, v in headers.items() if v != ""}


def gitlab_headers(event: str, *, key: str | None = None, token: str = TOKEN) -> dict[str, str]:
    headers = {"X-Gitlab-Event": event, "Idempotency-Key": key or str(uuid.uuid4()),
               "Content-Type": "application/json", "X-Gitlab-Token": token}
    return {k: v for k, v in headers.items() if v != ""}


async def post_github(client, event: str, body: bytes, **kw):
    response = await client.post("/hooks/github", data=body, headers=github_headers(event, body, **kw))
    return response.status, await response.json()


async def stream_messages(settings) -> list:
    """Every message now in the test's SDLC stream (with headers)."""
    nc = await connect(settings.nats_url, name="test-read")
    try:
        js = nc.jetstream()
        state = (await js.stream_info(settings.stream)).state
        return [await js.get_msg(settings.stream, seq)
                for seq in range(state.first_seq, state.last_seq + 1) if state.messages]
    finally:
        await nc.drain()


def logged_events(settings) -> dict[str, str]:
    """Event id -> type of every event in the log."""
    with open_log(settings, readonly=True) as log:
        return {e.event_id: e.type for b in log.read() for e in b}


def test_every_fixture_is_accepted_or_ignored_and_its_events_reach_the_log(hook_settings):
    """Each sample payload answers 200 with the adapter's event ids (or 202 ignored); ingest logs them all."""
    expected: dict[str, str] = {}
    ignored: list[str] = []

    async def main():
        async with api(hook_settings) as client:
            for path in sorted(GITHUB_EXAMPLES.rglob("*.json")):
                body, delivery, event = path.read_bytes(), str(uuid.uuid4()), path.parent.name
                status, answer = await post_github(client, event, body, delivery=delivery)
                mapped = map_github(event, json.loads(body), delivery_id=delivery)
                if mapped.events:
                    assert (status, answer["status"]) == (200, "accepted"), (path, answer)
                    assert answer["event_ids"] == [e.event_id for e in mapped.events]
                    expected.update({e.event_id: e.__struct_config__.tag for e in mapped.events})
                else:
                    assert (status, answer) == (202, {"status": "ignored", "reason": mapped.ignored})
                    ignored.append(f"{event}/{path.name}")
            for name, header in GITLAB_HEADERS.items():
                body, key = (FIXTURES / "gitlab" / name).read_bytes(), str(uuid.uuid4())
                response = await client.post("/hooks/gitlab", data=body,
                                             headers=gitlab_headers(header, key=key))
                answer = await response.json()
                mapped = map_gitlab(header, json.loads(body), delivery_id=key)
                assert response.status == 200 and answer["events"] == len(mapped.events) > 0, answer
                assert answer["event_ids"] == [e.event_id for e in mapped.events]
                expected.update({e.event_id: e.__struct_config__.tag for e in mapped.events})
        return await ingest_until_idle(hook_settings)

    stats = asyncio.run(main())
    assert ignored == ["issues/edited.payload.json", "issues/milestoned.payload.json"]
    assert stats.appended == len(expected) and stats.quarantined == 0
    assert logged_events(hook_settings) == expected


def test_published_messages_carry_the_event_id_and_the_callers_trace(hook_settings):
    """Nats-Msg-Id is the event id and traceparent continues the trace of the incoming request."""
    body = (GITHUB_EXAMPLES / "issues" / "opened.payload.json").read_bytes()
    trace_id = uuid.uuid4().hex
    incoming = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"

    async def main():
        async with api(hook_settings) as client:
            status, answer = await post_github(client, "issues", body, traceparent=incoming)
        return answer, await stream_messages(hook_settings)

    answer, messages = asyncio.run(main())
    assert [m.headers["Nats-Msg-Id"] for m in messages] == answer["event_ids"]
    assert all(m.headers["traceparent"].split("-")[1] == trace_id for m in messages)
    assert [m.subject for m in messages] == [
        f"{hook_settings.subject_prefix}.github.label.created",
        f"{hook_settings.subject_prefix}.github.issue.opened"]


def test_bad_or_missing_signatures_are_refused_with_401(hook_settings):
    """Missing, wrong, SHA-1 and tampered GitHub signatures and bad GitLab tokens get 401, publish nothing."""
    body = (GITHUB_EXAMPLES / "issues" / "opened.payload.json").read_bytes()
    gitlab_body = (FIXTURES / "gitlab" / "issue_hook.json").read_bytes()
    tampered = body.replace(b'"opened"', b'"closed"', 1)
    sha1 = "sha1=" + hmac.new(SECRET.encode(), body, "sha1").hexdigest()

    async def main():
        answers = {}
        async with api(hook_settings) as client:
            answers["missing"] = await post_github(client, "issues", body, signature="")
            answers["wrong"] = await post_github(client, "issues", body,
                                                 signature=github_signature("not-the-secret", body))
            answers["sha1"] = await post_github(client, "issues", body, signature=sha1)
            answers["tampered"] = await post_github(client, "issues", tampered,
                                                    signature=github_signature(SECRET, body))
            for name, token in (("gl-missing", ""), ("gl-wrong", "guess")):
                r = await client.post("/hooks/gitlab", data=gitlab_body,
                                      headers=gitlab_headers("Issue Hook", token=token))
                answers[name] = (r.status, await r.json())
        return answers, await stream_messages(hook_settings)

    answers, messages = asyncio.run(main())
    assert {k: (s, a["error"]) for k, (s, a) in answers.items()} == {
        k: (401, "unauthorized") for k in answers}
    assert "missing" in answers["missing"][1]["detail"]
    assert "sha256=" in answers["sha1"][1]["detail"] and "'sha1'" in answers["sha1"][1]["detail"]
    assert "FLEET_GITHUB_SECRET" in answers["tampered"][1]["detail"]
    assert "X-Gitlab-Token header is missing" in answers["gl-missing"][1]["detail"]
    assert "FLEET_GITLAB_TOKEN" in answers["gl-wrong"][1]["detail"]
    assert messages == []


def test_malformed_and_truncated_payloads_get_400_saying_what_is_wrong(hook_settings):
    """Broken, truncated, empty, non-object and schema-violating bodies get 400 with a precise detail."""
    good = (GITHUB_EXAMPLES / "issues" / "opened.payload.json").read_bytes()
    wrong_type = json.loads(good)
    wrong_type["issue"]["id"] = "four"
    cases = {
        "broken": ("issues", b"{not json"),
        "truncated": ("issues", good[: len(good) // 2]),
        "empty": ("issues", b""),
        "array": ("issues", b"[1, 2]"),
        "schema": ("issues", json.dumps(wrong_type).encode()),
    }

    async def main():
        answers = {}
        async with api(hook_settings) as client:
            for name, (event, body) in cases.items():
                answers[name] = await post_github(client, event, body)
            r = await client.post("/hooks/github", data=good, headers={
                "X-Hub-Signature-256": github_signature(SECRET, good)})
            answers["no event header"] = (r.status, await r.json())
        return answers, await stream_messages(hook_settings)

    answers, messages = asyncio.run(main())
    assert all(status == 400 for status, _ in answers.values()), answers
    assert answers["broken"][1]["error"] == "not_json"
    assert "truncated" in answers["truncated"][1]["detail"]
    assert "empty" in answers["empty"][1]["detail"]
    assert answers["array"][1] == {"error": "schema",
                                   "detail": "Expected `object`, got `array` - at `$`"}
    assert answers["schema"][1]["error"] == "schema" and "$.issue.id" in answers["schema"][1]["detail"]
    assert "X-GitHub-Event" in answers["no event header"][1]["detail"]
    assert messages == []


def test_context_the_payload_gets_wrong_is_left_out_said_and_the_event_stored(hook_settings):
    """Wrong facts about related objects do not cost the delivery: the answer says how many
    were left out, and the issue's own event is published."""
    payload = json.loads((GITHUB_EXAMPLES / "issues" / "opened.payload.json").read_bytes())
    payload["issue"]["milestone"] = {"id": 7, "number": 1, "title": "v" * 2000}
    body = json.dumps(payload).encode()

    async def main():
        async with api(hook_settings) as client:
            answer = await post_github(client, "issues", body)
        return answer, await stream_messages(hook_settings)

    (status, answer), messages = asyncio.run(main())
    assert status == 200 and answer["status"] == "accepted"
    assert answer["context_skipped"] == 1 and len(messages) == answer["events"] >= 1


def test_form_encoded_github_deliveries_are_read_like_json(hook_settings):
    """A delivery sent as application/x-www-form-urlencoded maps from its payload field."""
    payload = (GITHUB_EXAMPLES / "label" / "created.payload.json").read_text()
    form = urllib.parse.urlencode({"payload": payload}).encode()
    empty = b"other=1"
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}

    async def main():
        async with api(hook_settings) as client:
            return (await post_github(client, "label", form, delivery="form-1", **form_type),
                    await post_github(client, "label", empty, **form_type))

    (status, answer), (bad_status, bad) = asyncio.run(main())
    expected = map_github("label", json.loads(payload), delivery_id="form-1").events
    assert status == 200 and answer["event_ids"] == [e.event_id for e in expected]
    assert bad_status == 400 and "`payload` field" in bad["detail"]


def test_oversized_bodies_get_413_without_being_read(hook_settings):
    """A Content-Length over the limit is answered before the body is sent; a chunked one is cut off."""
    settings = hook_settings.with_overrides(max_body_bytes=2048)
    big = b'{"pad": "' + b"x" * 10_000 + b'"}'

    async def chunks():
        for i in range(0, len(big), 1000):
            yield big[i:i + 1000]

    async def main():
        async with api(settings) as client:
            server = client.server
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(b"POST /hooks/github HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                         b"X-GitHub-Event: issues\r\nContent-Length: 50000000\r\n\r\n{\"pad\": ")
            await writer.drain()  # the other 50 MB are never sent
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            writer.close()
            chunked = await client.post("/hooks/github", data=chunks(),
                                        headers=github_headers("issues", big))
            return head, (chunked.status, await chunked.json()), await stream_messages(settings)

    head, (status, answer), messages = asyncio.run(main())
    assert head.startswith(b"HTTP/1.1 413") and b"Connection: close" in head
    assert status == 413 and answer["error"] == "too_large"
    assert "FLEET_MAX_BODY_BYTES" in answer["detail"]
    assert messages == []


def test_duplicate_deliveries_add_nothing_to_the_log(hook_settings):
    """The same GitHub or GitLab delivery sent three times yields the same ids and is stored once."""
    body = (GITHUB_EXAMPLES / "pull_request" / "opened.payload.json").read_bytes()
    gitlab_body = (FIXTURES / "gitlab" / "merge_request_hook.json").read_bytes()
    delivery, key = str(uuid.uuid4()), str(uuid.uuid4())

    async def main():
        answers = []
        async with api(hook_settings) as client:
            for _ in range(3):
                answers.append(await post_github(client, "pull_request", body, delivery=delivery))
                r = await client.post("/hooks/gitlab", data=gitlab_body,
                                      headers=gitlab_headers("Merge Request Hook", key=key))
                answers.append((r.status, await r.json()))
        return answers, await ingest_until_idle(hook_settings)

    answers, stats = asyncio.run(main())
    github, gitlab = answers[0::2], answers[1::2]
    for repeats in (github, gitlab):
        assert {s for s, _ in repeats} == {200}
        assert len({tuple(a["event_ids"]) for _, a in repeats}) == 1
        assert [a["duplicates"] for _, a in repeats] == [0, repeats[0][1]["events"],
                                                         repeats[0][1]["events"]]
    stored = github[0][1]["events"] + gitlab[0][1]["events"]
    assert stats.appended == stored and len(logged_events(hook_settings)) == stored


def test_event_types_the_graph_does_not_use_are_ignored_with_202(hook_settings):
    """GitHub star and ping, and GitLab job hooks, are answered 202 with a reason and publish nothing."""
    star = json.dumps({"action": "created", "sender": {"id": 1, "login": "a"}}).encode()
    job = json.dumps({"object_kind": "build", "build_id": 1}).encode()

    async def main():
        async with api(hook_settings) as client:
            answers = [await post_github(client, "star", star), await post_github(client, "ping", star)]
            r = await client.post("/hooks/gitlab", data=job, headers=gitlab_headers("Job Hook"))
            answers.append((r.status, await r.json()))
        return answers, await stream_messages(hook_settings)

    answers, messages = asyncio.run(main())
    assert [(s, a["status"]) for s, a in answers] == [(202, "ignored")] * 3
    assert "'star'" in answers[0][1]["reason"] and "'Job Hook'" in answers[2][1]["reason"]
    assert messages == []


def test_an_endpoint_without_its_secret_refuses_everything_with_503(settings):
    """With no secret configured, even a correctly signed delivery is refused, naming the variable to set."""
    body = (GITHUB_EXAMPLES / "issues" / "opened.payload.json").read_bytes()

    async def main():
        async with api(settings) as client:
            github = await post_github(client, "issues", body)
            r = await client.post("/hooks/gitlab", data=body, headers=gitlab_headers("Issue Hook"))
            return github, (r.status, await r.json()), await stream_messages(settings)

    github, gitlab, messages = asyncio.run(main())
    assert github[0] == gitlab[0] == 503
    assert "FLEET_GITHUB_SECRET" in github[1]["detail"] and "FLEET_GITLAB_TOKEN" in gitlab[1]["detail"]
    assert messages == []


def test_a_delivery_jetstream_does_not_acknowledge_gets_503(hook_settings):
    """When the stream is gone the delivery is answered 503 (so the platform retries), not 2xx."""
    body = (GITHUB_EXAMPLES / "issues" / "opened.payload.json").read_bytes()

    async def main():
        async with api(hook_settings) as client:
            nc = await connect(hook_settings.nats_url, name="test-admin")
            await nc.jetstream().delete_stream(hook_settings.stream)
            await nc.drain()
            return await post_github(client, "issues", body)

    status, answer = asyncio.run(main())
    assert status == 503 and answer["error"] == "unavailable"
    assert "2 of 2 events were not stored" in answer["detail"] and "retried" in answer["detail"]


def test_the_app_serves_healthz_and_discovers_route_modules(hook_settings):
    """/healthz answers without I/O, and create_app mounts every route module it finds."""
    async def main():
        async with TestClient(TestServer(create_app(hook_settings))) as client:
            r = await client.get("/healthz")
            routes = {(route.method, route.resource.canonical) for route in client.app.router.routes()}
            return r.status, await r.json(), routes

    status, answer, routes = asyncio.run(main())
    assert (status, answer) == (200, {"status": "ok"})
    assert hooks.setup in route_setups()
    assert {("POST", "/hooks/gitlab"), ("POST", "/hooks/github")} <= routes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fleet_api_serves_webhooks_and_exits_0_on_sigterm(hook_settings):
    """The Procfile's `fleet api` accepts a signed delivery, then stops cleanly on SIGTERM."""
    port = _free_port()
    env = settings_env(hook_settings, FLEET_API_PORT=str(port), FLEET_GITHUB_SECRET=SECRET)
    proc = subprocess.Popen(fleet_cmd("api"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    body = (GITHUB_EXAMPLES / "label" / "created.payload.json").read_bytes()

    def healthy() -> bool:
        assert proc.poll() is None, proc.stderr.read().decode()
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1) as r:
                return r.status == 200
        except (urllib.error.URLError, ConnectionError):
            return False

    try:
        asyncio.run(wait_until(healthy, timeout_secs=20))
        request = urllib.request.Request(f"{base}/hooks/github", data=body, method="POST",
                                         headers=github_headers("label", body))
        with urllib.request.urlopen(request, timeout=10) as r:
            answer = json.loads(r.read())
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert answer["status"] == "accepted" and answer["events"] == 1
    assert proc.returncode == 0, err.decode()
    logs = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    assert [l["msg"] for l in logs if l["msg"].startswith("api ")] == [
        "api listening", "api stopping", "api stopped"]
    assert any(l["msg"] == "webhook accepted" and l["delivery"] for l in logs)


def test_deliveries_out_of_order_leave_the_issue_as_the_platform_has_it(hook_settings):
    """GitHub does not order deliveries: an issue's `closed` arriving before its `opened`
    (a retried delivery, or two in flight at once) leaves the issue closed in the graph."""
    from projections.read.reader import GraphReader
    from projections.versions.rebuild import rebuild

    opened = json.loads((GITHUB_EXAMPLES / "issues" / "opened.payload.json").read_bytes())
    closed = json.loads(json.dumps(opened))
    closed["action"] = "closed"
    closed["issue"].update(state="closed", closed_at="2019-05-15T16:00:00Z",
                           updated_at="2019-05-15T16:00:00Z")

    sent = []

    async def main():
        async with api(hook_settings) as client:
            for payload in (closed, opened):
                status, answer = await post_github(client, "issues", json.dumps(payload).encode())
                assert (status, answer["status"]) == (200, "accepted"), answer
                sent.extend(answer["event_ids"])
        return await ingest_until_idle(hook_settings)

    assert asyncio.run(main()).appended == len(sent)
    rebuild(hook_settings.log_path, hook_settings.projections_dir)
    with GraphReader(hook_settings.projections_dir) as reader:
        issue = reader.node(f"issue:github:{opened['issue']['id']}").props
    assert issue["state"] == "closed" and issue["title"] == opened["issue"]["title"]
