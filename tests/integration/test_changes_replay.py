"""`fleet replay graph --emit-diff` end to end: CLI processes, a real stream, the example subscriber."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from projections.model.ontology import VERSION as V
from projections.model.records import KINDS
from tests.support.changes import (
    append_events,
    graph_env,
    graph_settings,
    load_example,
    projection_graph,
    read_stream,
    run_example,
    start_projection,
    workload,
)
from tests.support.cli import fleet_cmd
from tests.support.paths import ROOT
from workers.natsio.client import connect

pytestmark = pytest.mark.slow

#: `fleet` as deployed after a change that bumped projections.model.ontology.VERSION
NEXT = V + 1
_BUMPED = [sys.executable, "-c",
           f"import projections.model.ontology as o; o.VERSION = {NEXT}; from ops.cli import main; main()"]


def _fleet(s, *args: str, command: list[str] | None = None) -> dict:
    result = subprocess.run([*(command or fleet_cmd()), *args, "--json"], env=graph_env(s),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_replay_with_emit_diff_turns_a_subscribers_copy_into_the_new_version(settings, tmp_path):
    """After a version bump, `fleet replay graph --emit-diff` then `fleet changes publish`: the
    subscriber gets v1's last changes, v2's `rebuilt`, then the diff as ordinary changes, and its
    copy equals v2 without a resync."""
    s = graph_settings(settings)
    start_projection(s)
    db = tmp_path / "copy.sqlite"
    append_events(s, workload(1500), traced={3, 700})
    _fleet(s, "project", "--until-caught-up")
    _fleet(s, "changes", "publish", "--until-drained")
    run_example(s, db)  # the copy follows v1
    append_events(s, workload(1800, start=1500))
    _fleet(s, "project", "--until-caught-up")  # v1 moves on; not published yet
    append_events(s, workload(2200, start=1800))  # v1 never applies these: they reach v2 as the diff

    replay = _fleet(s, "replay", "graph", "--emit-diff", command=_BUMPED)
    publish = _fleet(s, "changes", "publish", "--until-drained")

    diff = replay["diff"]
    assert replay["version"] == NEXT and replay["promoted"] and diff["previous"] == V
    counts = ("nodes_upserted", "nodes_deleted", "edges_added", "edges_updated", "edges_removed")
    assert diff["first_seq"] == 2 and sum(diff[k] for k in counts) == diff["changes"] == diff["last_seq"] - 1 > 100
    assert diff["nodes_upserted"] and diff["edges_added"]
    assert publish["backlog"] == 0 and publish["version"] == NEXT
    assert publish["watermark"] == diff["last_seq"] + 1  # the diff, then its `synced`

    async def read():
        nc = await connect(s.nats_url, name="t")
        messages = await read_stream(nc, s)
        await nc.close()
        return messages

    messages = asyncio.run(read())  # read_stream decodes each one with the contract
    versions = [c["version"] for _, _, c in messages]
    assert versions == sorted(versions)  # every v1 change before any v2 change
    v1 = [c["seq"] for _, _, c in messages if c["version"] == V]
    assert v1 == list(range(1, len(v1) + 1))
    v2 = [(headers, c) for _, headers, c in messages if c["version"] == NEXT]
    assert v2[0][1]["kind"] == "rebuilt" and v2[0][1]["previous"] == V
    assert [c["seq"] for _, c in v2] == list(range(1, diff["last_seq"] + 2))
    assert v2[-1][1]["kind"] == "synced" and v2[-1][1]["changes"] == diff["changes"]
    for headers, change in v2[1:-1]:
        assert change["diff"] and change["kind"] in KINDS
        assert headers["Nats-Msg-Id"] == f"graph@v{NEXT}:{change['seq']}"

    run_example(s, db)
    copy = load_example().GraphCopy(db)
    nodes, edges = copy.graph()
    position = copy.position()
    assert copy.digest() == v2[-1][1]["digest"]  # what the example checked on the way
    copy.close()
    assert position[:2] == (NEXT, diff["last_seq"] + 1)
    assert (nodes, edges) == projection_graph(s, NEXT)



def test_the_example_starts_from_the_export_and_resyncs_when_told(settings, tmp_path):
    """With --api-url an empty copy loads GET /graph/export and follows on; a version change
    whose diff is above FLEET_CHANGES_DIFF_MAX says resync, and the copy loads the new export."""
    import urllib.request

    from ops.embedded import free_port
    from projections.store.graph import GraphStore
    from projections.versions.digest import digest
    from tests.support.changes import example_cmd, project, publish_and_read
    from tests.support.wait import wait_until

    s = graph_settings(settings)
    start_projection(s)
    append_events(s, workload(600))
    project(s)
    publish_and_read(s)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    api = subprocess.Popen(fleet_cmd("api"), env=graph_env(s, FLEET_API_PORT=str(port)),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = tmp_path / "copy.sqlite"

    def up() -> bool:
        try:
            return urllib.request.urlopen(base + "/graph/counts", timeout=2).status == 200
        except OSError:
            return False

    def follow() -> str:
        result = subprocess.run(example_cmd(s, db, "--api-url", base, "--until-idle", "0.5"),
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stderr

    def digest_of(version: int) -> str:
        with GraphStore(s.projections_dir / "graph" / f"v{version}") as store:
            return digest(store).hexdigest

    try:
        asyncio.run(wait_until(up, timeout_secs=30, interval_secs=0.2, message="api not up"))
        log = follow()
        assert "loaded the export of v2" in log.replace(f"v{V}", "v2") and "0 resyncs" in log
        append_events(s, workload(300, start=600))
        project(s)
        publish_and_read(s)
        log = follow()
        example = load_example()
        copy = example.GraphCopy(db)
        assert copy.position()[0] == V and copy.digest() == digest_of(V)
        copy.close()

        # The next release (label names upper-cased) with a bound its diff is above.
        env = graph_env(s, FLEET_CHANGES_DIFF_MAX="5",
                        PYTHONPATH=str(ROOT / "tests" / "support" / "next_release"))
        replay = subprocess.run(fleet_cmd("replay", "graph", "--json"), env=env, capture_output=True,
                                text=True, timeout=120)
        assert replay.returncode == 0, replay.stderr[-3000:]
        diff = json.loads(replay.stdout)["diff"]
        assert diff["resync"] and diff["resync_changes"] == 6 and diff["changes"] == 0
        publish_and_read(s)
        log = follow()
        assert "resync: " in log and "1 resyncs" in log, log[-3000:]
        copy = example.GraphCopy(db)
        assert copy.position()[0] == NEXT and copy.digest() == digest_of(NEXT)
        copy.close()
    finally:
        api.terminate()
        api.wait(timeout=20)
