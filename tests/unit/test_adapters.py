"""Webhook adapters: GitLab and GitHub payloads -> canonical events.

The payload examples are the platforms' own, copied into
``tests/fixtures/webhooks`` (licences and provenance in its README).
"""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from events.adapters import Mapped, map_github, map_gitlab, parse_timestamp
from events.adapters.common import NAMESPACES, event_id
from events.codec import decode_event, encode_event
from events.errors import InvalidEvent
from tests.support.paths import WEBHOOK_FIXTURES

FIXTURES = WEBHOOK_FIXTURES
GITHUB = FIXTURES / "github"
SCHEMAS = GITHUB / "schemas" / "api.github.com"
RECEIVED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
GL_ISSUE = "gitlab/issue_hook.json"
GH_ISSUE = "github/examples/issues/opened.payload.json"
GH_PULL = "github/examples/pull_request/opened.payload.json"
GH_PUSH = "github/examples/push/payload.json"
GITHUB_EVENTS = (
    "issues", "issue_comment", "pull_request", "push", "create", "delete",
    "repository", "label", "milestone", "member", "fork", "public",
)


def load(path: str) -> dict[str, Any]:
    return json.loads((FIXTURES / path).read_text())


def types_of(mapped: Mapped) -> list[str]:
    return [e.__struct_config__.tag for e in mapped.events]


def fields(event) -> dict[str, Any]:
    """Every field of an event as JSON values, defaults included."""
    return {name: msgspec.to_builtins(getattr(event, name)) for name in event.__struct_fields__}


def assert_well_formed(mapped: Mapped) -> None:
    """Events xor a reason; every event survives the codec unchanged; ids unique."""
    assert isinstance(mapped, Mapped)
    if mapped.events:
        assert mapped.ignored is None
    else:
        assert isinstance(mapped.ignored, str) and mapped.ignored
    for event in mapped.events:
        assert decode_event(encode_event(event)) == event
        assert event.occurred_at.utcoffset() == timedelta(0)
    assert len({e.event_id for e in mapped.events}) == len(mapped.events)


def assert_subset(event, expected: dict[str, Any]) -> None:
    actual = fields(event)
    assert {k: actual.get(k) for k in expected} == expected


# --- every fixture maps to the expected events ------------------------------

GITLAB_EXPECTED = {
    "gitlab/issue_hook.json": ("Issue Hook", [
        ("label.created", {"label_id": 206, "name": "API", "project_id": 14, "group_id": 41}),
        ("issue.opened", {
            "issue_id": 301, "project_id": 14, "iid": 23, "author_id": 51,
            "label_ids": [206], "assignee_ids": [51], "title": "New API: create/update/delete file",
            "occurred_at": "2013-12-03T17:15:43Z",
        }),
    ]),
    "gitlab/merge_request_hook.json": ("Merge Request Hook", [
        ("label.created", {"label_id": 206}),
        ("merge_request.opened", {
            "merge_request_id": 99, "project_id": 14, "iid": 1, "author_id": 51,
            "source_branch": "ms-viewport", "target_branch": "master", "source_project_id": 14,
            "assignee_ids": [6], "reviewer_ids": [6], "label_ids": [206],
        }),
    ]),
    "gitlab/note_hook_issue.json": ("Note Hook", [
        ("comment.created", {
            "comment_id": 1241, "project_id": 5, "target_type": "issue", "target_id": 92,
            "author_id": 1, "body": "Hello world", "occurred_at": "2015-05-17T17:06:40Z",
        }),
    ]),
    "gitlab/push_hook.json": ("Push Hook", [
        ("commits.pushed", {
            "project_id": 15, "ref": "refs/heads/master",
            "before": "95790bf891e76fee5e1747ab589903a6a1f80f22",
            "after": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
            "occurred_at": "2012-01-03T21:36:29Z",
        }),
    ]),
    "gitlab/system_project_create.json": ("System Hook", [
        ("project.created", {
            "project_id": 74, "name": "StoreCloud", "path": "jsmith/storecloud",
            "visibility": "private", "group_id": None, "occurred_at": "2012-07-21T07:30:54Z",
        }),
    ]),
}

GITHUB_EXPECTED: dict[str, list | str] = {
    "issue_comment/created": [
        ("comment.created", {
            "comment_id": 492700400, "project_id": 186853002, "target_type": "issue",
            "target_id": 444500041, "author_id": 21031067, "occurred_at": "2019-05-15T15:20:21Z",
        }),
    ],
    "issues/assigned": [("issue.assigned", {"issue_id": 444500041, "user_id": 21031067})],
    "issues/edited": "neither title nor body",
    "issues/labeled": [
        ("label.created", {"label_id": 1362934389, "name": "bug", "color": "#d73a4a"}),
        ("issue.labeled", {"issue_id": 444500041, "label_id": 1362934389}),
    ],
    "issues/milestoned": "pull request #2",
    "issues/opened": [
        ("label.created", {"label_id": 1362934389, "project_id": 186853002}),
        ("issue.opened", {
            "issue_id": 444500041, "project_id": 186853002, "iid": 1, "author_id": 21031067,
            "label_ids": [1362934389], "assignee_ids": [21031067], "milestone_id": 4317517,
            "occurred_at": "2019-05-15T15:20:18Z",
        }),
    ],
    "label/created": [
        ("label.created", {
            "label_id": 1362937026, "name": ":bug: Bugfix", "project_id": 186853002,
            "color": "#cb1f00",
        }),
    ],
    "milestone/created": [
        ("milestone.created", {
            "milestone_id": 4317517, "project_id": 186853002, "title": "v1.0",
            "state": "active", "due_date": "2019-05-23",
        }),
    ],
    "pull_request/opened": [
        ("label.created", {"label_id": 1362934389}),
        ("merge_request.opened", {
            "merge_request_id": 279147437, "project_id": 186853002, "iid": 2,
            "source_branch": "changes", "target_branch": "master", "author_id": 21031067,
            "source_project_id": 186853002, "reviewer_ids": [5346], "draft": False,
        }),
    ],
    "push/payload": [
        ("ref.deleted", {
            "project_id": 186853002, "ref": "simple-tag", "ref_type": "tag",
            "occurred_at": "2019-05-15T15:20:57Z",
        }),
    ],
    "repository/created": [
        ("project.created", {
            "project_id": 186853261, "name": "Hello-World", "path": "Octocoders/Hello-World",
            "group_id": 38302899, "default_branch": "master", "visibility": "public",
        }),
    ],
}


def test_every_fixture_has_an_expectation():
    """No fixture file goes untested: each has an entry in the expectation tables."""
    gitlab = {str(p.relative_to(FIXTURES)) for p in (FIXTURES / "gitlab").glob("*.json")}
    github = {
        str(p.relative_to(GITHUB / "examples")).removesuffix(".payload.json").removesuffix(".json")
        for p in (GITHUB / "examples").rglob("*.json")
    }
    assert gitlab == set(GITLAB_EXPECTED)
    assert github == set(GITHUB_EXPECTED)


@pytest.mark.parametrize("path", sorted(GITLAB_EXPECTED))
def test_gitlab_fixture_maps_to_expected_events(path):
    """Each GitLab example maps to the expected canonical events and ids."""
    header, expected = GITLAB_EXPECTED[path]
    mapped = map_gitlab(header, load(path), delivery_id="delivery-1")
    assert_well_formed(mapped)
    assert types_of(mapped) == [tag for tag, _ in expected]
    for event, (_, subset) in zip(mapped.events, expected, strict=True):
        assert event.source == "gitlab"
        assert_subset(event, subset)


def test_gitlab_fixture_actors_and_commits():
    """GitLab actors come from ``user`` (or ``user_*`` on pushes); commits are kept."""
    issue = map_gitlab("Issue Hook", load("gitlab/issue_hook.json")).events[-1]
    assert fields(issue)["actor"] == {"id": 1, "username": "root", "name": "Administrator"}
    push = map_gitlab("Push Hook", load("gitlab/push_hook.json")).events[0]
    assert fields(push)["actor"] == {"id": 4, "username": "jsmith", "name": "John Smith"}
    assert [c.sha[:7] for c in push.commits] == ["b6568db", "da15608"]
    assert push.commits[0].timestamp == datetime(2011, 12, 12, 12, 27, 31, tzinfo=UTC)
    assert push.commits[1].author_email == "gitlabdev@dv6700.(none)"


@pytest.mark.parametrize("name", sorted(GITHUB_EXPECTED))
def test_github_fixture_maps_to_expected_events(name):
    """Each GitHub example maps to the expected canonical events, or is ignored with a reason."""
    event_name = name.split("/")[0]
    file = "payload.json" if name == "push/payload" else f"{name.split('/')[1]}.payload.json"
    mapped = map_github(event_name, load(f"github/examples/{event_name}/{file}"), delivery_id="d")
    assert_well_formed(mapped)
    expected = GITHUB_EXPECTED[name]
    if isinstance(expected, str):
        assert mapped.events == [] and expected in mapped.ignored
        return
    assert types_of(mapped) == [tag for tag, _ in expected]
    for event, (_, subset) in zip(mapped.events, expected, strict=True):
        assert event.source == "github"
        assert fields(event)["actor"] == {"id": 21031067, "username": "Codertocat"}
        assert_subset(event, subset)


# --- every documented GitHub action maps or is ignored ----------------------


def schema_actions(event: str) -> list[str]:
    """The action enums of every schema of ``event`` (empty: the event has no action)."""
    actions: list[str] = []
    for path in sorted((SCHEMAS / event).glob("*.schema.json")):
        schema = json.loads(path.read_text())
        for variant in (schema, *schema.get("oneOf", ())):
            for action in variant.get("properties", {}).get("action", {}).get("enum", ()):
                if action not in actions:
                    actions.append(action)
    return actions


def github_payloads(event: str) -> list[dict[str, Any]]:
    """The examples of ``event``, or payloads built from other examples when it has none."""
    examples = sorted((GITHUB / "examples" / event).glob("*.json")) if event else []
    if examples:
        return [json.loads(p.read_text()) for p in examples]
    opened = load("github/examples/issues/opened.payload.json")
    created = load("github/examples/repository/created.payload.json")
    repo, sender = opened["repository"], opened["sender"]
    if event == "member":
        return [{"action": "added", "member": sender, "repository": repo, "sender": sender}]
    if event == "create":
        return [{"ref": "feature", "ref_type": "branch", "master_branch": "master",
                 "description": None, "pusher_type": "user", "repository": repo, "sender": sender}]
    if event == "delete":
        return [{"ref": "v1", "ref_type": "tag", "pusher_type": "user",
                 "repository": repo, "sender": sender}]
    if event == "fork":
        return [{"forkee": created["repository"], "repository": repo, "sender": sender}]
    if event == "public":  # GitHub's docs: repository (now public) and sender, no action
        return [{"repository": {**repo, "private": False, "visibility": "public"}, "sender": sender}]
    raise AssertionError(f"no payload for {event}")


def swapped(event: str) -> list[tuple[str, str | None, dict[str, Any]]]:
    cases = []
    for i, payload in enumerate(github_payloads(event)):
        for action in schema_actions(event) or [None]:
            body = copy.deepcopy(payload)
            if action is not None:
                body["action"] = action
            cases.append((f"{event}-{action}-{i}", action, body))
    return cases


@pytest.mark.parametrize("event", GITHUB_EVENTS)
def test_schemas_document_the_listed_events(event):
    """The schemas folder covers each listed event (so the swap test is not vacuous)."""
    assert (SCHEMAS / event).is_dir()
    assert schema_actions(event) or event in ("push", "create", "delete", "fork", "public")


@pytest.mark.parametrize(
    ("event", "action", "payload"),
    [(event, action, body) for event in GITHUB_EVENTS for _, action, body in swapped(event)],
    ids=[case_id for event in GITHUB_EVENTS for case_id, _, _ in swapped(event)],
)
def test_every_documented_github_action_maps_or_is_ignored(event, action, payload):
    """An example payload with any documented action swapped in never raises."""
    mapped = map_github(event, payload, delivery_id="swap")
    assert_well_formed(mapped)


def rich(event: str) -> dict[str, Any]:
    """An example payload holding every action-specific key, so that every action can map."""
    base = load(GH_ISSUE) if event == "issues" else github_payloads(event)[0]
    issue = base.get("issue") or base.get("pull_request") or {}
    label = load("github/examples/issues/labeled.payload.json")["label"]
    return {
        **base,
        "assignee": base["sender"],
        "label": label,
        "milestone": load("github/examples/milestone/created.payload.json")["milestone"],
        "requested_reviewer": base["sender"],
        "changes": {
            "title": {"from": "old title"},
            "new_repository": {**base["repository"], "id": 99},
            "new_issue": {**issue, "number": 7},
        },
    }


DOCUMENTED = {
    "issues": {
        "opened": ["label.created", "issue.opened"], "edited": ["issue.edited"],
        "closed": ["issue.closed"], "reopened": ["issue.reopened"],
        "deleted": ["issue.deleted"],
        "transferred": ["label.created", "issue.opened", "issue.transferred"],
        "assigned": ["issue.assigned"], "unassigned": ["issue.unassigned"],
        "labeled": ["label.created", "issue.labeled"], "unlabeled": ["issue.unlabeled"],
        "milestoned": ["issue.milestoned"], "demilestoned": ["issue.demilestoned"],
        "locked": None, "unlocked": None, "pinned": None, "unpinned": None,
    },
    "issue_comment": {
        "created": ["comment.created"], "edited": ["comment.edited"],
        "deleted": ["comment.deleted"],
    },
    "pull_request": {
        "opened": ["label.created", "merge_request.opened"],
        "edited": ["merge_request.updated"], "closed": ["merge_request.closed"],
        "reopened": ["merge_request.reopened"],
        "assigned": ["merge_request.assigned"], "unassigned": ["merge_request.unassigned"],
        "labeled": ["label.created", "merge_request.labeled"],
        "unlabeled": ["merge_request.unlabeled"],
        "milestoned": ["merge_request.milestoned"],
        "demilestoned": ["merge_request.demilestoned"],
        "review_requested": ["merge_request.review_requested"],
        "review_request_removed": ["merge_request.review_request_removed"],
        "converted_to_draft": ["merge_request.updated"],
        "ready_for_review": ["merge_request.updated"],
        "synchronize": None, "locked": None, "unlocked": None, "auto_merge_enabled": None,
        "auto_merge_disabled": None, "enqueued": None, "dequeued": None,
    },
    "repository": {
        "created": ["project.created"], "deleted": ["project.deleted"],
        "archived": ["project.archived"], "unarchived": ["project.unarchived"],
        "renamed": ["project.renamed"], "transferred": ["project.transferred"],
        "edited": None, "privatized": ["project.updated"], "publicized": ["project.updated"],
    },
    "label": {"created": ["label.created"], "edited": ["label.updated"],
              "deleted": ["label.deleted"]},
    "milestone": {
        "created": ["milestone.created"], "opened": ["milestone.updated"],
        "closed": ["milestone.updated"], "edited": ["milestone.updated"],
        "deleted": ["milestone.deleted"],
    },
    "member": {"added": ["member.added"], "edited": ["member.updated"],
               "removed": ["member.removed"]},
}


@pytest.mark.parametrize("event", sorted(DOCUMENTED))
def test_documented_actions_table_is_complete(event):
    """The mapping table below names exactly the actions the schemas document."""
    assert set(DOCUMENTED[event]) == set(schema_actions(event))


@pytest.mark.parametrize(
    ("event", "action"),
    [(event, action) for event, actions in sorted(DOCUMENTED.items()) for action in actions],
)
def test_documented_github_action_maps_to(event, action):
    """Each documented action maps to its canonical events, or is ignored with a reason."""
    mapped = map_github(event, {**rich(event), "action": action}, received_at=RECEIVED)
    assert_well_formed(mapped)
    expected = DOCUMENTED[event][action]
    if expected is None:
        assert mapped.events == [] and action in mapped.ignored
    else:
        assert types_of(mapped) == expected


@pytest.mark.parametrize(
    ("event", "expected"),
    [("push", ["ref.deleted"]), ("create", ["ref.created"]), ("delete", ["ref.deleted"]),
     ("fork", ["project.forked"])],
)
def test_actionless_github_events_map(event, expected):
    """push, create, delete and fork (no action) map to ref and project events."""
    mapped = map_github(event, github_payloads(event)[0])
    assert_well_formed(mapped)
    assert types_of(mapped) == expected


# --- GitHub details -----------------------------------------------------------


def test_github_push_of_a_new_branch_with_commits():
    """A push creating a branch yields ref.created then commits.pushed, dated by pushed_at."""
    payload = load("github/examples/push/payload.json")
    commit = {"id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", "message": "Fix #1",
              "timestamp": "2019-05-15T15:20:30-07:00",
              "author": {"name": "Codertocat", "email": "c@example.com", "username": "Codertocat"}}
    payload.update(ref="refs/heads/feature", before="0" * 40, after=commit["id"],
                   created=True, deleted=False, commits=[commit], head_commit=commit)
    mapped = map_github("push", payload)
    assert types_of(mapped) == ["ref.created", "commits.pushed"]
    created, pushed = mapped.events
    assert (created.ref, created.ref_type, created.sha) == ("feature", "branch", commit["id"])
    assert pushed.ref == "refs/heads/feature" and pushed.before is None
    assert pushed.commits[0].timestamp == datetime(2019, 5, 15, 22, 20, 30, tzinfo=UTC)
    assert pushed.occurred_at == datetime.fromtimestamp(1557933657, tz=UTC)


def test_github_merged_pull_request_maps_to_merged():
    """A closed pull request that was merged maps to merge_request.merged with its sha."""
    payload = load("github/examples/pull_request/opened.payload.json")
    payload["action"] = "closed"
    payload["pull_request"].update(merged=True, merged_at="2019-05-16T10:00:00Z",
                                   closed_at="2019-05-16T10:00:00Z", merge_commit_sha="abc123")
    (event,) = map_github("pull_request", payload).events
    assert event.__struct_config__.tag == "merge_request.merged"
    assert event.merge_commit_sha == "abc123"
    assert event.occurred_at == datetime(2019, 5, 16, 10, tzinfo=UTC)


def test_github_comment_on_pull_request_targets_merge_request():
    """A comment on a pull request targets a merge request (its id is not in the payload)."""
    payload = load("github/examples/issue_comment/created.payload.json")
    payload["issue"]["pull_request"] = {"url": "https://api.github.com/repos/o/r/pulls/1"}
    (event,) = map_github("issue_comment", payload).events
    assert (event.target_type, event.target_id) == ("merge_request", None)


def test_github_issue_edit_maps_only_changed_fields():
    """issues 'edited' carries the new title only when only the title changed."""
    payload = load("github/examples/issues/edited.payload.json")
    payload["changes"] = {"title": {"from": "Speling error"}}
    (event,) = map_github("issues", payload).events
    assert (event.title, event.description) == ("Spelling error in the README file", None)


def test_github_team_review_request_is_ignored():
    """A review requested from a team names no user and is ignored."""
    payload = load("github/examples/pull_request/opened.payload.json")
    payload.update(action="review_requested", requested_team={"id": 1, "slug": "core"})
    mapped = map_github("pull_request", payload)
    assert mapped.events == [] and "team" in mapped.ignored


def test_github_fork_and_user_owned_repository():
    """A fork names its source; a user's repository has no group."""
    (forked,) = map_github("fork", github_payloads("fork")[0]).events
    assert (forked.project_id, forked.forked_from_id) == (186853261, 186853002)
    assert forked.group_id == 38302899
    payload = load("github/examples/repository/created.payload.json")
    payload["repository"]["owner"]["type"] = "User"
    (created,) = map_github("repository", payload).events
    assert created.group_id is None


# --- GitLab details -----------------------------------------------------------


def gitlab_issue(action: str, changes: dict[str, Any] | None = None) -> dict[str, Any]:
    payload = load("gitlab/issue_hook.json")
    payload["object_attributes"]["action"] = action
    payload["changes"] = changes or {"updated_at": {"previous": "x", "current": "y"}}
    return payload


def test_gitlab_issue_update_emits_one_event_per_change():
    """An update of title, labels, assignees, milestone and state emits each, state last."""
    changes = load("gitlab/issue_hook.json")["changes"]
    changes.update(
        title={"previous": "Old", "current": "New API"},
        assignees={"previous": [{"id": 51, "username": "a"}], "current": [{"id": 7}]},
        milestone_id={"previous": None, "current": 3},
        state_id={"previous": 1, "current": 2},
    )
    mapped = map_gitlab("Issue Hook", gitlab_issue("update", changes))
    assert_well_formed(mapped)
    assert types_of(mapped) == [
        "label.created", "label.created", "issue.edited", "issue.unlabeled", "issue.labeled",
        "issue.unassigned", "issue.assigned", "issue.milestoned", "issue.closed",
    ]
    labels = [e for e in mapped.events if e.__struct_config__.tag == "label.created"]
    assert [(e.label_id, e.name) for e in labels] == [(206, "API"), (205, "Platform")]
    edited, unlabeled, labeled, unassigned, assigned, milestoned, _ = mapped.events[2:]
    assert (edited.title, edited.description) == ("New API", None)
    assert (unlabeled.label_id, labeled.label_id) == (206, 205)
    assert (unassigned.user_id, assigned.user_id, milestoned.milestone_id) == (51, 7, 3)
    assert {e.issue_id for e in mapped.events[2:]} == {301}


@pytest.mark.parametrize(
    ("action", "tag"), [("close", "issue.closed"), ("reopen", "issue.reopened")]
)
def test_gitlab_issue_state_actions(action, tag):
    """close and reopen map to issue.closed and issue.reopened, dated by updated_at."""
    mapped = map_gitlab("Issue Hook", gitlab_issue(action))
    assert types_of(mapped) == [tag]
    assert mapped.events[0].occurred_at == datetime(2013, 12, 3, 17, 15, 43, tzinfo=UTC)


def test_gitlab_issue_update_of_unmodelled_fields_is_ignored():
    """An update that only touches fields the graph does not model is ignored, naming them."""
    changes = {"weight": {"previous": 1, "current": 2}}
    mapped = map_gitlab("Issue Hook", gitlab_issue("update", changes))
    assert mapped.events == [] and "weight" in mapped.ignored


@pytest.mark.parametrize("header", ["Issue Hook", "Confidential Issue Hook", None])
def test_gitlab_work_item_maps_like_an_issue(header):
    """A project work item (a task) maps to issue.opened, with or without the header."""
    payload = load("gitlab/issue_hook.json")
    payload["object_kind"] = "work_item"
    payload["object_attributes"]["type"] = "Task"
    assert types_of(map_gitlab(header, payload)) == ["label.created", "issue.opened"]


def test_gitlab_group_work_item_is_ignored():
    """A group-level work item (an epic) has no project and is ignored."""
    payload = load("gitlab/issue_hook.json")
    payload.update(object_kind="work_item")
    payload["object_attributes"].update(type="Epic", project_id=None)
    del payload["project"]
    mapped = map_gitlab("Issue Hook", payload)
    assert mapped.events == [] and "group" in mapped.ignored


def gitlab_mr(action: str, **attrs: Any) -> dict[str, Any]:
    payload = load("gitlab/merge_request_hook.json")
    payload["object_attributes"].update(action=action, **attrs)
    return payload


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("close", ["label.created", "label.created", "merge_request.updated",
                   "merge_request.unlabeled", "merge_request.labeled", "merge_request.closed"]),
        ("reopen", ["label.created", "label.created", "merge_request.updated",
                    "merge_request.unlabeled", "merge_request.labeled", "merge_request.reopened"]),
        ("merge", ["label.created", "label.created", "merge_request.updated",
                   "merge_request.unlabeled", "merge_request.labeled", "merge_request.merged"]),
        ("update", ["label.created", "label.created", "merge_request.updated",
                    "merge_request.unlabeled", "merge_request.labeled"]),
    ],
)
def test_gitlab_merge_request_actions(action, expected):
    """close, reopen, merge and update map the fixture's changes, then the state change."""
    mapped = map_gitlab("Merge Request Hook", gitlab_mr(action, merge_commit_sha="f00d"))
    assert_well_formed(mapped)
    assert types_of(mapped) == expected
    updated = mapped.events[2]
    assert updated.draft is False and updated.title is None
    if action == "merge":
        assert mapped.events[-1].merge_commit_sha == "f00d"


@pytest.mark.parametrize("action", ["approved", "unapproved", "approval", "unapproval"])
def test_gitlab_merge_request_approvals_are_ignored(action):
    """Approval actions have no canonical event and are ignored with a reason."""
    mapped = map_gitlab("Merge Request Hook", gitlab_mr(action))
    assert mapped.events == [] and "approval" in mapped.ignored


def test_gitlab_merge_request_reviewers_and_commit_only_updates():
    """Reviewer changes map to review requests; an update that only pushed commits is ignored."""
    payload = gitlab_mr("update")
    payload["changes"] = {"reviewers": {"previous": [{"id": 6}], "current": [{"id": 8}]}}
    assert types_of(map_gitlab("Merge Request Hook", payload)) == [
        "merge_request.review_request_removed", "merge_request.review_requested"
    ]
    payload = gitlab_mr("update", oldrev="95790bf891e76fee5e1747ab589903a6a1f80f22")
    payload["changes"] = {}
    mapped = map_gitlab("Merge Request Hook", payload)
    assert mapped.events == [] and "push hooks" in mapped.ignored


def gitlab_note(noteable_type: str, **attrs: Any) -> dict[str, Any]:
    payload = load("gitlab/note_hook_issue.json")
    payload["object_attributes"].update(noteable_type=noteable_type, **attrs)
    return payload


@pytest.mark.parametrize(
    ("noteable_type", "attrs", "target"),
    [
        ("MergeRequest", {"noteable_id": 7}, {"target_type": "merge_request", "target_id": 7}),
        ("Snippet", {"noteable_id": 53}, {"target_type": "snippet", "target_id": 53}),
        ("Commit", {"noteable_id": None, "commit_id": "cfe32cf61b73a0d5e9f13e774abde7ff789b1660"},
         {"target_type": "commit", "target_sha": "cfe32cf61b73a0d5e9f13e774abde7ff789b1660"}),
    ],
)
def test_gitlab_notes_on_every_target(noteable_type, attrs, target):
    """Notes on merge requests, snippets and commits name their target."""
    (event,) = map_gitlab("Note Hook", gitlab_note(noteable_type, **attrs)).events
    assert_subset(event, {"comment_id": 1241, "project_id": 5, **target})


def test_gitlab_note_update_and_other_targets():
    """An edited note maps to comment.edited; notes on designs are ignored."""
    payload = gitlab_note("Issue", action="update", note="Hello again")
    (event,) = map_gitlab("Confidential Note Hook", payload).events
    assert (event.__struct_config__.tag, event.body) == ("comment.edited", "Hello again")
    mapped = map_gitlab("Note Hook", gitlab_note("DesignManagement::Design"))
    assert mapped.events == [] and "DesignManagement::Design" in mapped.ignored


def gitlab_push(**changes: Any) -> dict[str, Any]:
    payload = load("gitlab/push_hook.json")
    payload.update(changes)
    return payload


def test_gitlab_push_creating_a_branch():
    """A push whose before sha is zero creates the branch, then pushes its commits."""
    mapped = map_gitlab("Push Hook", gitlab_push(before="0" * 40, ref="refs/heads/feature"))
    assert types_of(mapped) == ["ref.created", "commits.pushed"]
    assert (mapped.events[0].ref, mapped.events[0].ref_type) == ("feature", "branch")
    assert mapped.events[1].before is None


def test_gitlab_push_deleting_a_branch_needs_a_time():
    """A branch deletion has no timestamp: received_at dates it, else it is rejected."""
    payload = gitlab_push(after="0" * 40, commits=[], total_commits_count=0)
    with pytest.raises(InvalidEvent, match="received_at") as info:
        map_gitlab("Push Hook", payload)
    assert info.value.reason == "schema"
    (event,) = map_gitlab("Push Hook", payload, received_at=RECEIVED).events
    assert (event.__struct_config__.tag, event.ref) == ("ref.deleted", "master")
    assert event.occurred_at == RECEIVED


def test_gitlab_tag_push_and_system_hook_push():
    """A tag push creates the tag; a system hook push (project id at the top) maps too."""
    tag = gitlab_push(object_kind="tag_push", event_name="tag_push", before="0" * 40,
                      ref="refs/tags/v1.0.0", commits=[])
    (event,) = map_gitlab("Tag Push Hook", tag, received_at=RECEIVED).events
    assert (event.ref, event.ref_type, event.sha) == ("v1.0.0", "tag", tag["after"])
    system = gitlab_push()
    del system["object_kind"], system["project"]["id"]
    mapped = map_gitlab("System Hook", system)
    assert types_of(mapped) == ["commits.pushed"] and mapped.events[0].project_id == 15


SYSTEM_HOOKS = [
    ({"event_name": "project_destroy", "project_id": 73}, "project.deleted", {"project_id": 73}),
    ({"event_name": "project_rename", "name": "Underscore", "path": "underscore",
      "path_with_namespace": "jsmith/underscore", "project_id": 73,
      "old_path_with_namespace": "jsmith/overscore"},
     "project.renamed", {"project_id": 73, "path": "jsmith/underscore"}),
    ({"event_name": "project_update", "name": "StoreCloud", "path": "storecloud",
      "path_with_namespace": "jsmith/storecloud", "project_id": 74, "project_visibility": "internal"},
     "project.updated", {"name": "StoreCloud", "visibility": "internal"}),
    ({"event_name": "project_transfer", "name": "Underscore", "path": "underscore",
      "path_with_namespace": "scores/underscore", "project_id": 73},
     "project.transferred", {"path": "scores/underscore", "group_id": None}),
    ({"event_name": "group_create", "name": "StoreCloud", "path": "storecloud", "group_id": 78},
     "group.created", {"group_id": 78, "path": "storecloud", "parent_id": None}),
    ({"event_name": "subgroup_create", "name": "subgroup1", "path": "subgroup1",
      "full_path": "group1/subgroup1", "group_id": 10, "parent_group_id": 7},
     "group.created", {"group_id": 10, "path": "group1/subgroup1", "parent_id": 7}),
    ({"event_name": "group_destroy", "name": "StoreCloud", "path": "storecloud", "group_id": 78},
     "group.deleted", {"group_id": 78}),
    ({"event_name": "group_rename", "name": "Better Name", "path": "better-name",
      "full_path": "parent-group/better-name", "group_id": 64},
     "group.updated", {"name": "Better Name", "path": "parent-group/better-name"}),
    ({"event_name": "user_create", "email": "js@gitlabhq.com", "name": "John Smith",
      "username": "js", "user_id": 41}, "user.created", {"user_id": 41, "username": "js"}),
    ({"event_name": "user_destroy", "name": "John Smith", "username": "js", "user_id": 41},
     "user.deleted", {"user_id": 41}),
    ({"event_name": "user_rename", "name": "new-name", "user_id": 58,
      "username": "new-exciting-name", "old_username": "old-boring-name"},
     "user.updated", {"username": "new-exciting-name"}),
    ({"event_name": "user_add_to_team", "access_level": "Maintainer", "project_id": 74,
      "user_id": 41, "user_username": "johnsmith"},
     "member.added", {"user_id": 41, "project_id": 74, "role": "Maintainer"}),
    ({"event_name": "user_update_for_team", "access_level": "Developer", "project_id": 74,
      "user_id": 41}, "member.updated", {"role": "Developer"}),
    ({"event_name": "user_remove_from_team", "access_level": "Maintainer", "project_id": 74,
      "user_id": 41}, "member.removed", {"user_id": 41, "project_id": 74}),
    ({"event_name": "user_add_to_group", "group_access": "Maintainer", "group_id": 78,
      "user_id": 41}, "member.added", {"group_id": 78, "role": "Maintainer"}),
    ({"event_name": "user_update_for_group", "group_access": "Guest", "group_id": 78,
      "user_id": 41}, "member.updated", {"group_id": 78, "role": "Guest"}),
    ({"event_name": "user_remove_from_group", "group_access": "Maintainer", "group_id": 78,
      "user_id": 41}, "member.removed", {"group_id": 78, "user_id": 41}),
]


@pytest.mark.parametrize(
    ("payload", "tag", "subset"), SYSTEM_HOOKS, ids=[p["event_name"] for p, _, _ in SYSTEM_HOOKS]
)
def test_gitlab_system_hooks(payload, tag, subset):
    """Each documented system hook maps to its directory event."""
    body = {"created_at": "2012-07-21T07:30:54Z", "updated_at": "2012-07-21T07:38:22Z", **payload}
    mapped = map_gitlab("System Hook", body)
    assert_well_formed(mapped)
    assert types_of(mapped) == [tag]
    assert_subset(mapped.events[0], subset)
    assert mapped.events[0].actor is None


def test_gitlab_system_deletions_prefer_the_delivery_time():
    """A deletion has no time of its own: received_at dates it before updated_at does."""
    body = {"event_name": "group_destroy", "group_id": 1, "updated_at": "2012-07-21T07:38:22Z"}
    assert map_gitlab("System Hook", body, received_at=RECEIVED).events[0].occurred_at == RECEIVED
    assert map_gitlab("System Hook", body).events[0].occurred_at == datetime(
        2012, 7, 21, 7, 38, 22, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("event_name", "reason"),
    [
        ("repository_update", "push"),
        ("user_failed_login", "login"),
        ("key_create", "SSH"),
        ("user_access_request_to_group", "access request"),
    ],
)
def test_gitlab_system_hooks_without_graph_meaning_are_ignored(event_name, reason):
    """System hooks that do not change the graph are ignored with a specific reason."""
    mapped = map_gitlab("System Hook", {"event_name": event_name, "user_id": 1})
    assert mapped.events == [] and reason in mapped.ignored


def test_gitlab_milestone_hook():
    """Milestone hooks map create, close and delete."""
    body = {"object_kind": "milestone", "action": "create", "object_attributes": {
        "id": 61, "iid": 10, "title": "v1.0", "state": "active", "project_id": 1,
        "created_at": "2025-06-16 14:10:57 UTC", "updated_at": "2025-06-16 14:10:57 UTC",
        "due_date": "2025-06-30"}}
    (created,) = map_gitlab("Milestone Hook", body).events
    assert_subset(created, {"milestone_id": 61, "project_id": 1, "due_date": "2025-06-30"})
    assert created.occurred_at == datetime(2025, 6, 16, 14, 10, 57, tzinfo=UTC)
    assert types_of(map_gitlab(None, {**body, "action": "close"})) == ["milestone.updated"]
    assert types_of(map_gitlab(None, {**body, "action": "delete"})) == ["milestone.deleted"]


# --- unknown events -------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "payload"),
    [
        ("Pipeline Hook", {"object_kind": "pipeline"}),
        ("Job Hook", {}),
        (None, {"object_kind": "wiki_page"}),
        ("System Hook", {"event_name": "something_new"}),
    ],
)
def test_unknown_gitlab_events_are_ignored(header, payload):
    """Hooks the graph does not use are ignored, naming the hook."""
    mapped = map_gitlab(header, payload)
    assert mapped.events == [] and "not used by the graph" in mapped.ignored


@pytest.mark.parametrize("event_name", ["star", "watch", "ping", "workflow_run"])
def test_unknown_github_events_are_ignored(event_name):
    """GitHub webhooks outside the listed events are ignored, naming the event."""
    mapped = map_github(event_name, {"action": "created"})
    assert mapped.ignored == f"github {event_name!r} events are not used by the graph"


def test_unknown_actions_are_ignored_not_raised():
    """An action newer than this adapter (issues 'typed') is ignored with a reason."""
    payload = load("github/examples/issues/opened.payload.json")
    mapped = map_github("issues", {**payload, "action": "typed"})
    assert mapped.events == [] and "'typed'" in mapped.ignored
    mapped = map_gitlab("Issue Hook", gitlab_issue("teleport"))
    assert mapped.events == [] and "'teleport'" in mapped.ignored


# --- malformed payloads ---------------------------------------------------------


def mutate(payload: dict[str, Any], path: tuple[str, ...], value: Any = ...) -> dict[str, Any]:
    body = copy.deepcopy(payload)
    node = body
    for key in path[:-1]:
        node = node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return body


def damaged(fixture: str, path: tuple, value: Any = ...) -> dict[str, Any]:
    return mutate(load(fixture), path, value)


MALFORMED = [
    (map_gitlab, "Issue Hook", damaged(GL_ISSUE, ("object_attributes",)),
     "Object missing required field `object_attributes` - at `$`"),
    (map_gitlab, "Issue Hook", damaged(GL_ISSUE, ("object_attributes", "id"), "301"),
     "Expected `int`, got `str` - at `$.object_attributes.id`"),
    (map_gitlab, "Issue Hook", damaged(GL_ISSUE, ("object_attributes", "iid"), -1),
     "Expected `int` >= 0, got -1 - at `$.object_attributes.iid`"),
    (map_gitlab, "Issue Hook", damaged(GL_ISSUE, ("object_attributes", "created_at"), "soon"),
     "unrecognised timestamp 'soon'"),
    (map_gitlab, "Issue Hook", damaged(GL_ISSUE, ("labels",), {"id": 1}),
     "Expected `array`, got `object` - at `$.labels`"),
    (map_gitlab, "Note Hook",
     damaged("gitlab/note_hook_issue.json", ("object_attributes", "noteable_type")),
     "`noteable_type`"),
    (map_gitlab, "Push Hook", damaged("gitlab/push_hook.json", ("commits", 0, "id"), None),
     "Object missing required field `id` - at `$.commits[0]`"),
    (map_gitlab, None, {"before": "x"}, "`object_kind`"),
    (map_gitlab, "Issue Hook", ["a", "list"], "Expected `object`, got `array` - at `$`"),
    (map_github, "issues", damaged(GH_ISSUE, ("repository",)),
     "Object missing required field `repository` - at `$`"),
    (map_github, "issues", damaged(GH_ISSUE, ("action",)),
     "Object missing required field `action` - at `$`"),
    (map_github, "pull_request", damaged(GH_PULL, ("pull_request", "head", "ref"), 5),
     "Expected `str`, got `int` - at `$.pull_request.head.ref`"),
    (map_github, "issues", damaged(GH_ISSUE, ("issue", "title"), "t" * 1001),
     "issue.opened built from this payload"),
    (map_github, "push", damaged(GH_PUSH, ("repository", "pushed_at"), True),
     "Expected `str | int`, got `bool` - at `$.repository.pushed_at`"),
    (map_github, "create", {**github_payloads("create")[0], "ref_type": "note"},
     "Expected `branch` or `tag`, got 'note' - at `$.ref_type`"),
    (map_github, "label", "{}", "Expected `object`, got `str` - at `$`"),
]


@pytest.mark.parametrize(("mapper", "name", "payload", "message"), MALFORMED)
def test_malformed_payloads_raise_invalid_event(mapper, name, payload, message):
    """Missing keys, wrong types and bad values raise InvalidEvent naming the path."""
    with pytest.raises(InvalidEvent) as info:
        mapper(name, payload)
    assert info.value.reason == "schema"
    assert message in info.value.detail


def all_fixtures() -> list[tuple[str, Any, str, dict[str, Any]]]:
    cases = [(p, map_gitlab, header, load(p)) for p, (header, _) in GITLAB_EXPECTED.items()]
    for path in sorted((GITHUB / "examples").rglob("*.json")):
        rel = str(path.relative_to(FIXTURES))
        cases.append((rel, map_github, path.parent.name, json.loads(path.read_text())))
    return cases


def paths_of(value: Any, prefix: tuple = (), depth: int = 3) -> list[tuple]:
    if depth == 0 or not isinstance(value, dict):
        return []
    found = []
    for key, child in value.items():
        found.append((*prefix, key))
        found += paths_of(child, (*prefix, key), depth - 1)
    return found


def wrong_type(value: Any) -> Any:
    if isinstance(value, str):
        return 12345
    if value is None:
        return [1]
    return "not-what-you-expect"


@pytest.mark.parametrize(
    ("name", "mapper", "header", "payload"), all_fixtures(), ids=[c[0] for c in all_fixtures()]
)
def test_damaged_fixtures_raise_only_invalid_event(name, mapper, header, payload):
    """Deleting or retyping any key (to depth 3) yields a mapping or InvalidEvent, nothing else."""
    for path in paths_of(payload):
        retyped = mutate(payload, path, wrong_type(_get(payload, path)))
        for broken in (mutate(payload, path), retyped):
            try:
                assert_well_formed(mapper(header, broken, received_at=RECEIVED))
            except InvalidEvent as e:
                assert e.reason == "schema"
                assert "`$" in e.detail or "built from" in e.detail


def _get(payload: dict[str, Any], path: tuple) -> Any:
    for key in path:
        payload = payload[key]
    return payload


@pytest.mark.parametrize(
    ("name", "mapper", "header", "payload"), all_fixtures(), ids=[c[0] for c in all_fixtures()]
)
def test_truncated_fixtures_raise_invalid_event(name, mapper, header, payload):
    """A payload cut after its first key is rejected; any shorter prefix never crashes."""
    keys = list(payload)
    with pytest.raises(InvalidEvent):
        mapper(header, {keys[0]: payload[keys[0]]})
    for cut in range(len(keys)):
        try:
            assert_well_formed(mapper(header, {k: payload[k] for k in keys[:cut]}))
        except InvalidEvent as e:
            assert e.reason == "schema"


# --- deterministic ids --------------------------------------------------------------


def test_same_delivery_id_gives_same_event_ids():
    """A redelivery (same delivery id) maps to exactly the same events."""
    payload = load("gitlab/merge_request_hook.json")
    first = map_gitlab("Merge Request Hook", payload, delivery_id="abc")
    again = map_gitlab("Merge Request Hook", copy.deepcopy(payload), delivery_id="abc")
    other = map_gitlab("Merge Request Hook", payload, delivery_id="abd")
    assert first.events == again.events
    assert {e.event_id for e in first.events}.isdisjoint(e.event_id for e in other.events)


def test_event_ids_follow_the_documented_formula():
    """Event ``i`` of delivery ``d`` has id uuid5(namespace of the source, "d:i")."""
    mapped = map_github("issues", load(GH_ISSUE), delivery_id="d")
    for index, event in enumerate(mapped.events):
        assert event.event_id == str(uuid.uuid5(NAMESPACES["github"], f"d:{index}"))
    assert event_id("gitlab", "d", 0) != event_id("github", "d", 0)


def test_without_delivery_id_ids_hash_the_canonical_payload():
    """Without a delivery id, equal payloads (any key order) share ids; changed ones do not."""
    payload = load("github/examples/label/created.payload.json")
    reordered = dict(reversed(list(payload.items())))
    changed = mutate(payload, ("label", "name"), "renamed")
    ids = [map_github("label", p).events[0].event_id for p in (payload, reordered, changed)]
    assert ids[0] == ids[1] != ids[2]


# --- timestamps -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2013-12-03T17:15:43Z", datetime(2013, 12, 3, 17, 15, 43, tzinfo=UTC)),
        ("2012-01-03T23:36:29+02:00", datetime(2012, 1, 3, 21, 36, 29, tzinfo=UTC)),
        ("2019-06-05T14:32:20.211Z", datetime(2019, 6, 5, 14, 32, 20, 211000, tzinfo=UTC)),
        ("2019-06-05T14:32:20.2113456Z", datetime(2019, 6, 5, 14, 32, 20, 211345, tzinfo=UTC)),
        ("2013-12-03 17:15:43 UTC", datetime(2013, 12, 3, 17, 15, 43, tzinfo=UTC)),
        ("2013-12-03 17:15:43 +0100", datetime(2013, 12, 3, 16, 15, 43, tzinfo=UTC)),
        ("2013-12-03 17:15:43 -05", datetime(2013, 12, 3, 22, 15, 43, tzinfo=UTC)),
        ("2013-12-03T17:15:43", datetime(2013, 12, 3, 17, 15, 43, tzinfo=UTC)),
        (1557933565, datetime(2019, 5, 15, 15, 19, 25, tzinfo=UTC)),
        (1557933565.5, datetime(2019, 5, 15, 15, 19, 25, 500000, tzinfo=UTC)),
    ],
)
def test_timestamps_in_every_platform_format_parse_to_utc(raw, expected):
    """ISO 8601, GitLab's "UTC"/offset forms and epoch seconds all become aware UTC."""
    parsed = parse_timestamp(raw)
    assert parsed == expected and parsed.tzinfo == UTC


@pytest.mark.parametrize(
    "raw", ["2015-04-08T21: 00:25-07:00", "yesterday", "2013-12-03", "", True, 10**20]
)
def test_bad_timestamps_raise_value_error(raw):
    """Malformed times, bare dates, booleans and absurd epochs are rejected."""
    with pytest.raises(ValueError):
        parse_timestamp(raw)


def test_received_at_must_be_aware():
    """A naive received_at is a caller bug and is refused."""
    with pytest.raises(ValueError, match="timezone-aware"):
        map_gitlab("Push Hook", load("gitlab/push_hook.json"), received_at=datetime(2024, 1, 1))


# --- context facts ----------------------------------------------------------------


def test_github_context_names_the_repository_organization_people_and_milestone():
    """An issue payload's first event carries the repository (full path, default branch,
    visibility), an organization owner as a group, the people and the milestone."""
    payload = load(GH_ISSUE)
    payload["repository"]["owner"].update(type="Organization", id=9919, login="octo-org")
    mapped = map_github("issues", payload)
    first, *rest = mapped.events
    assert all(e.context is None for e in rest)
    ctx = first.context
    (project,) = ctx.projects
    assert (project.id, project.path, project.group_id, project.default_branch, project.visibility) == (
        186853002, "Codertocat/Hello-World", 9919, "master", "public")
    assert [(g.id, g.path) for g in ctx.groups] == [(9919, "octo-org")]
    assert [(u.id, u.username) for u in ctx.users] == [(21031067, "Codertocat")]
    assert [(m.id, m.title, m.state, m.project_id) for m in ctx.milestones] == [
        (4317517, "v1.0", "closed", 186853002)]


def test_github_pull_request_context_leaves_teams_out_and_names_both_repositories():
    """Requested reviewers that are teams are not users; the head repository of a fork is
    a project of its own."""
    payload = load(GH_PULL)
    pr = payload["pull_request"]
    pr["requested_reviewers"] = [{"id": 5, "login": "rev"}, {"id": 6, "name": "core", "slug": "core"}]
    pr["head"]["repo"] = {**pr["head"]["repo"], "id": 77, "full_name": "fork/Hello-World"}
    ctx = map_github("pull_request", payload).events[0].context
    assert {u.id for u in ctx.users} == {21031067, 5}
    assert {p.id: p.path for p in ctx.projects} == {186853002: "Codertocat/Hello-World",
                                                    77: "fork/Hello-World"}


def test_gitlab_context_pairs_assignees_with_their_ids_and_reads_visibility_levels():
    """GitLab lists issue assignees without ids, in the order of `assignee_ids`; visibility
    levels 0/10/20 are private/internal/public."""
    ctx = map_gitlab("Issue Hook", load(GL_ISSUE)).events[0].context
    assert {(u.id, u.username) for u in ctx.users} == {(1, "root"), (51, "user1")}
    (project,) = ctx.projects
    assert (project.path, project.visibility, project.group_id) == ("gitlabhq/gitlab-test", "public", None)
    note = map_gitlab("Note Hook", load("gitlab/note_hook_issue.json")).events[0].context
    assert [(i.id, i.iid, i.project_id, i.state) for i in note.issues] == [(92, 17, 5, "closed")]


def test_context_a_payload_gets_wrong_is_left_out_not_fatal():
    """A wrong type or an out-of-bounds value in a related object drops that fact only."""
    payload = load(GH_ISSUE)  # what the issue itself needs stays right; the rest is context
    payload["assignee"] = {"id": "seven", "login": "x"}
    payload["requested_reviewer"] = {"id": 8, "login": "y" * 2000}
    payload["issue"]["milestone"]["title"] = "v" * 2000
    mapped = map_github("issues", payload)
    assert_well_formed(mapped)
    ctx = mapped.events[0].context
    assert [u.id for u in ctx.users] == [21031067] and ctx.milestones == []
    assert mapped.context_skipped == 3
    payload = load(GL_ISSUE)
    payload["assignees"] = {"not": "a list"}
    assert_well_formed(map_gitlab("Issue Hook", payload))


def test_a_comment_on_a_pull_request_names_it_by_number():
    """issue_comment on a pull request: target merge_request, no id, the number in target_iid."""
    payload = load("github/examples/issue_comment/created.payload.json")
    payload["issue"]["pull_request"] = {"url": "https://api.github.com/repos/x/y/pulls/1"}
    (event,) = map_github("issue_comment", payload).events
    assert (event.target_type, event.target_id, event.target_iid) == ("merge_request", None, 1)
    assert event.context.issues == []  # the issue copy is the pull request's: not an issue


def test_repository_settings_changes_map_to_project_updated():
    """edited with changes.default_branch, privatized, publicized and the public webhook."""
    repo = load(GH_ISSUE)["repository"]
    edited = map_github("repository", {"action": "edited", "repository": {**repo, "default_branch": "dev"},
                                       "changes": {"default_branch": {"from": "master"}}},
                        received_at=RECEIVED)
    assert [(e.__struct_config__.tag, e.default_branch) for e in edited.events] == [
        ("project.updated", "dev")]
    topics = map_github("repository", {"action": "edited", "repository": repo,
                                       "changes": {"topics": {"from": []}}}, received_at=RECEIVED)
    assert topics.events == [] and "topics" in topics.ignored
    private = map_github("repository", {"action": "privatized", "repository": {**repo, "private": True,
                                                                              "visibility": "private"}},
                         received_at=RECEIVED)
    assert private.events[0].visibility == "private"
    public = map_github("public", {"repository": repo}, received_at=RECEIVED)
    assert public.events[0].visibility == "public"


def test_an_issue_transfer_opens_the_new_issue_and_names_it():
    """issues.transferred: issue.opened of changes.new_issue in the new repository, then
    issue.transferred of the old one with new_issue_id."""
    payload = load(GH_ISSUE)
    new_repo = {**payload["repository"], "id": 99, "full_name": "Codertocat/Other"}
    new_issue = {**payload["issue"], "id": 555, "number": 3, "labels": [], "state": "open"}
    payload.update(action="transferred", changes={"new_repository": new_repo, "new_issue": new_issue})
    opened, moved = map_github("issues", payload).events
    assert (opened.issue_id, opened.project_id, opened.iid) == (555, 99, 3)
    assert (moved.issue_id, moved.project_id, moved.to_project_id, moved.iid, moved.new_issue_id) == (
        payload["issue"]["id"], payload["repository"]["id"], 99, 3, 555)
