"""The status page and the node pages, loaded in a real headless Chromium against a running fleet."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from html.parser import HTMLParser
from urllib.parse import quote, unquote

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ops.api import ui
from ops.api.app import create_app
from projections.read.reader import GraphReader
from tests.support.cli import fleet_cmd, settings_env
from tests.support.wait import wait_until

_CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--virtual-time-budget=8000", "--dump-dom"]


def _dom(url: str) -> str:
    """The page's DOM after its scripts ran, as Chromium dumps it (a fresh profile each time)."""
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run([_CHROMIUM, *_FLAGS, f"--user-data-dir={profile}", url],
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


class _Fields(HTMLParser):
    """The text of every element with a ``data-field``, keyed by (data-component or data-name, field);
    and every link's href and text."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[tuple[str | None, str], str] = {}
        self.attrs: dict[tuple[str | None, str], dict] = {}
        self.links: list[tuple[str | None, str, dict]] = []
        self._open: list[tuple[str, tuple | None, dict]] = []
        self._text: list[list[str]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        key = (a.get("data-component") or a.get("data-name"), a["data-field"]) if "data-field" in a else None
        self._open.append((tag, key, a))
        self._text.append([])

    def handle_endtag(self, tag):
        while self._open:
            open_tag, key, a = self._open.pop()
            text = "".join(self._text.pop())
            if self._text:
                self._text[-1].append(text)
            if key is not None:
                self.fields[key] = text.strip()
                self.attrs[key] = a
            if open_tag == "a":
                self.links.append((a.get("href"), text.strip(), a))
            if open_tag == tag:
                return

    def handle_data(self, data):
        if self._text:
            self._text[-1].append(data)


def _parse(dom: str) -> _Fields:
    parser = _Fields()
    parser.feed(dom)
    return parser


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fleet(settings, tmp_path):
    """ingest, worker and api running on a quiet fleet: 1,500 simulated events and one quarantined
    line, everything applied; yields (env, api base url)."""
    if _CHROMIUM is None:
        pytest.skip("chromium is not installed here (Debian: apt-get install chromium; .ci/run installs "
                    "it when it can)")
    port = _free_port()
    env = settings_env(settings, FLEET_HEARTBEAT_INTERVAL_SECS="1", FLEET_API_PORT=str(port),
                       FLEET_EXPECTED_PROCESSES="ingest,worker,api")
    procs = []
    try:
        for name in ("ingest", "worker", "api"):
            with open(tmp_path / f"{name}.log", "wb") as err:
                procs.append(subprocess.Popen(fleet_cmd(name), env=env, stdout=subprocess.DEVNULL,
                                              stderr=err))
        published = subprocess.run(fleet_cmd("simulate", "--events", "1500", "--seed", "3"), env=env,
                                   capture_output=True, timeout=120)
        assert published.returncode == 0, published.stderr[-2000:]
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"type": "no.such.event", "event_id": "x"}\n')
        subprocess.run(fleet_cmd("publish", "--raw", str(bad)), env=env, capture_output=True, timeout=60)

        def quiet():
            result = subprocess.run(fleet_cmd("health", "--json"), env=env, capture_output=True, timeout=30)
            report = json.loads(result.stdout)
            by_name = {c["name"]: c for c in report["components"]}
            log = next(c for c in report["components"] if c["kind"] == "log")["data"]
            projections = [c for c in report["components"] if c["kind"] == "projection"]
            settled = (report["ok"] and log["head"] == 1500 and log["quarantine_open"] == 1
                       and projections and all(c["data"].get("lag") == 0 for c in projections)
                       and all(by_name.get(p, {}).get("state") == "ok" for p in ("ingest", "worker", "api")))
            return report if settled else None

        asyncio.run(wait_until(quiet, timeout_secs=90, interval_secs=0.5,
                               message=lambda: [p.poll() for p in procs]))
        yield env, f"http://127.0.0.1:{port}"
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.mark.slow
def test_the_status_page_shows_what_fleet_health_reports(fleet, settings):
    """Each process's state and heartbeat age, ingest lag, every projection's state, position and
    lag, the log head and the open quarantine: the numbers `fleet health --json` gives."""
    env, base = fleet
    health = json.loads(subprocess.run(fleet_cmd("health", "--json"), env=env, capture_output=True,
                                       timeout=30).stdout)
    page = _parse(_dom(base + "/"))
    assert page.fields[(None, "summary")].startswith("fleet healthy at"), page.fields
    if "ready" in health:
        assert page.fields[(None, "readiness")] == ("ready to serve reads" if health["ready"] else
                                                    "not ready: " + "; ".join(health["not_ready"]))
    head = next(c for c in health["components"] if c["kind"] == "log")["data"]["head"]
    seen_projection = False
    for c in health["components"]:
        data = c["data"]
        if c["kind"] == "process":
            assert page.fields[(c["name"], "state")] == c["state"]
            age = float(page.fields[(c["name"], "heartbeat_age")])
            assert 0 <= age < settings.heartbeat_stale_secs
        if c["kind"] == "projection":
            seen_projection = True
            assert page.fields[(c["name"], "state")] == c["state"]
            assert _number(page.fields[(c["name"], "position")]) == data["checkpoint"] == head
            assert _number(page.fields[(c["name"], "lag")]) == data["lag"] == 0
        if c["kind"] == "consumer":
            assert _number(page.fields[(c["name"], "pending")]) == data["pending"] == 0
        if c["kind"] == "log":
            assert _number(page.fields[(c["name"], "head")]) == data["head"] == 1500
            assert _number(page.fields[(c["name"], "quarantine_open")]) == data["quarantine_open"] == 1
    assert seen_projection
    assert page.fields[("ingest", "appended")]  # the ingest line is there, with its count


@pytest.mark.slow
def test_node_pages_show_props_and_page_through_neighbors(fleet, settings):
    """A project's page lists its properties and 50 neighbours with a next-page link that leads
    to the others; the search box resolves a path; an id full of markup stays text."""
    _, base = fleet
    with GraphReader(settings.projections_dir) as reader:
        projects = reader.find("Project", {}, limit=100).items
        project = max(projects, key=lambda p: reader.neighbor_page(p.id, limit=1).total)
        total = reader.neighbor_page(project.id, limit=1).total
        every = {n.id for n in reader.neighbors(project.id, limit=100_000)}
        segments, node = [project.props["path"]], project.id
        while parents := reader.neighbors(node, edges="IN_GROUP", direction="out"):
            node = parents[0].id
            segments.insert(0, reader.node(node).props["path"])
        path = f"{project.id.split(':')[1]}:{'/'.join(segments)}"  # simulate-3:group/project
        assert reader.node(path).id == project.id
    assert total > 50
    first = _parse(_dom(f"{base}/ui/nodes/{quote(project.id, safe='')}"))
    assert first.fields[(None, "id")] == project.id
    for name, value in project.props.items():
        if isinstance(value, str):
            assert first.fields[(name, "prop")] == value
    neighbors = [text for href, text, a in first.links if a.get("data-field") == "neighbor"]
    assert len(neighbors) == 50 and all(n in every for n in neighbors)
    assert all(href == "/ui/nodes/" + quote(text, safe="") for href, text, a in first.links
               if a.get("data-field") == "neighbor")
    next_link = next(href for href, _, a in first.links if a.get("id") == "next")
    assert next_link.startswith(f"/ui/nodes/{quote(project.id, safe='')}?after=")
    second = _parse(_dom(base + next_link))
    more = [text for _, text, a in second.links if a.get("data-field") == "neighbor"]
    assert more and not set(more) & set(neighbors) and all(n in every for n in more)
    assert second.fields[(None, "id")] == project.id

    found = _parse(_dom(f"{base}/ui/search?q={quote(path)}"))  # the form's GET
    assert found.fields[(None, "id")] == project.id

    evil = "<img src=x onerror=alert(1)>\"'&<script>alert(2)</script>"
    dom = _dom(f"{base}/ui/nodes/{quote(evil, safe='')}")
    assert "<img" not in dom and "<script>alert" not in dom
    assert "&lt;img src=x onerror=alert(1)&gt;" in dom  # shown, as text


def test_pages_are_static_files_with_a_strict_policy_and_search_redirects(settings):
    """The pages and their scripts come from the package, with a CSP allowing only this origin;
    /ui/health.json is a health report; /ui/search sends any text, escaped, to its node page."""

    async def scenario():
        async with TestClient(TestServer(create_app(settings, setups=[ui.setup]))) as client:
            out = {}
            for path in ("/", "/ui/nodes/issue:gitlab:1", "/ui/static/status.js", "/ui/static/node.js",
                         "/ui/static/common.js", "/ui/static/ui.css", "/ui/health.json"):
                response = await client.get(path)
                out[path] = (response.status, response.headers, await response.read())
            for q in ("gitlab:group/project#12", "<b>\"x\"</b>", ""):
                response = await client.get("/ui/search", params={"q": q}, allow_redirects=False)
                out[q] = (response.status, response.headers.get("Location"))
            response = await client.get("/ui/search", params={"q": "x" * 2000})
            out["long"] = (response.status, await response.json())
            return out

    out = asyncio.run(scenario())
    for path in ("/", "/ui/nodes/issue:gitlab:1"):
        status, headers, body = out[path]
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert b"<script src=\"/ui/static/" in body and b"http" not in body.replace(b"http-equiv", b"")
    assert all(out[p][0] == 200 for p in out if isinstance(p, str) and p.startswith("/ui/static/"))
    status, _, body = out["/ui/health.json"]
    report = json.loads(body)
    assert status == 200 and set(report) >= {"ok", "at", "components", "culprits"}
    assert {c["kind"] for c in report["components"]} >= {"nats", "log"}
    for q in ("gitlab:group/project#12", "<b>\"x\"</b>"):
        status, location = out[q]
        segment = location.removeprefix("/ui/nodes/")
        assert status == 302 and unquote(segment) == q and not set(segment) & set("/#<>\"")
    assert out[""] == (302, "/")
    assert out["long"][0] == 400 and "over the limit" in out["long"][1]["detail"]


async def _dom_async(url: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        proc = await asyncio.create_subprocess_exec(
            _CHROMIUM, *_FLAGS, f"--user-data-dir={profile}", url,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0
    return out.decode()


@pytest.mark.slow
def test_a_rebuilding_version_shows_its_progress_rate_and_eta(settings):
    """A worker's heartbeat that says a version is rebuilding (position 400 of 1,000, 200 events/s,
    ETA 3 s) shows as such on the page, beside the version's position and lag."""
    if _CHROMIUM is None:
        pytest.skip("chromium is not installed here (Debian: apt-get install chromium; .ci/run installs "
                    "it when it can)")
    from aiohttp import web

    from workers.natsio.client import connect
    from workers.natsio.heartbeat import Heartbeat

    async def scenario():
        nc = await connect(settings.nats_url, name="test-status-page")
        try:
            now = time.time()
            projection = {"name": "graph", "version": 9, "state": "rebuilding", "checkpoint": 400,
                          "head": 1000, "lag": 600, "events_per_sec": 200.0, "eta_secs": 3.0,
                          "progress_at": now}
            # It keeps beating while the browser loads (a busy machine may take longer than the
            # heartbeat's staleness bound to start one).
            beat = Heartbeat(nc.jetstream(), "worker-rebuild", lambda: (
                "rebuilding", {"progress_at": now, "backlog": 600, "projections": [projection]}),
                interval_secs=1.0)
            await beat.beat()
            beat.start()
            runner = web.AppRunner(create_app(settings, nc=nc, setups=[ui.setup]))
            await runner.setup()
            port = _free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            try:
                return _parse(await _dom_async(f"http://127.0.0.1:{port}/"))
            finally:
                await runner.cleanup()
                await beat.stop()
        finally:
            await nc.close()

    page = asyncio.run(scenario())
    name = "projection graph v9"
    assert (name, "state") in page.fields, page.fields
    assert page.fields[(name, "state")] == "rebuilding"
    assert (page.fields[(name, "position")], page.fields[(name, "lag")]) == ("400", "600")
    assert page.fields[(name, "progress")] == "40.0 %, 200 events/s, ETA 3 s"
