"""What the graph holds after real webhook deliveries: facts read back by query.

Each test posts payloads through the gateway (valid signatures and tokens),
ingests them into the log, builds the graph with the fold engine (rebuild)
and queries it; the live apply path (the projector's precise overlay) must
come to the same digest.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import uuid

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ops.api import create_app, hooks
from ops.api.hooks import github_signature
from projections.errors import UnknownNode
from projections.read.reader import GraphReader
from projections.store.graph import GraphStore
from projections.versions.digest import digest
from projections.versions.rebuild import rebuild
from tests.support.ingest import ingest_until_idle
from tests.support.payloads import (
    github_example,
    github_issue_transferred,
    github_pr_comment,
    github_push,
    github_repository_action,
    gitlab_example,
    gitlab_project_create,
    gitlab_project_transfer,
    gitlab_project_update,
    gitlab_system,
)
from tests.support.projection import apply_log

SECRET = "gh-secret"
TOKEN = "gl-token"
ISSUE = "issue:github:444500041"  # #1 of Codertocat/Hello-World in GitHub's examples
REPO = "project:github:186853002"


@pytest.fixture
def hook_settings(settings):
    return settings.with_overrides(github_secret=SECRET, gitlab_token=TOKEN)


async def _post(client, platform: str, event: str, payload: dict) -> dict:
    body = json.dumps(payload).encode()
    if platform == "github":
        headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4()),
                   "X-Hub-Signature-256": github_signature(SECRET, body)}
    else:
        headers = {"X-Gitlab-Event": event, "Idempotency-Key": str(uuid.uuid4()),
                   "X-Gitlab-Token": TOKEN}
    response = await client.post(f"/hooks/{platform}", data=body,
                                 headers={**headers, "Content-Type": "application/json"})
    answer = await response.json()
    assert response.status == 200 and answer["status"] == "accepted", (event, answer)
    return answer


def deliver(settings, *deliveries: tuple[str, str, dict]) -> None:
    """POST each (platform, event, payload) in order through the gateway, then ingest them."""

    async def main():
        async with TestClient(TestServer(create_app(settings, setups=[hooks.setup]))) as client:
            for platform, event, payload in deliveries:
                await _post(client, platform, event, payload)
        return await ingest_until_idle(settings)

    assert asyncio.run(main()).appended > 0


@contextlib.contextmanager
def graph(settings, tmp_path):
    """The graph of the log as rebuilt by the fold engine, checked against live apply."""
    built = rebuild(settings.log_path, tmp_path / "projections")
    with GraphStore(tmp_path / "live", create=True) as live:
        apply_log(live, settings.log_path)
        assert digest(live).hexdigest == built.digest, "live apply and the rebuild differ"
    with GraphReader(tmp_path / "projections") as reader:
        yield reader


def edges(reader, ref: str, edge: str, direction: str = "out") -> set[str]:
    return {n.id for n in reader.neighbors(ref, edges=edge, direction=direction)}


def test_an_issue_event_alone_makes_its_project_findable_by_path(hook_settings, tmp_path):
    """The context of issue and comment payloads: the project by path, its settings, the
    people and the milestone; a comment's copy of its issue; cross-project references."""
    opened = github_example("issues", "opened.payload.json")
    push = github_push(opened["repository"], "docs", "Explain it\n\nsee Codertocat/Hello-World#1",
                       sha="c" * 40)
    deliver(hook_settings, ("github", "issues", opened), ("github", "push", push),
            ("gitlab", "Issue Hook", gitlab_example("issue_hook.json")),
            ("gitlab", "Note Hook", gitlab_example("note_hook_issue.json")))
    with graph(hook_settings, tmp_path) as reader:
        assert reader.node("github:Codertocat/Hello-World#1").id == ISSUE
        repo = reader.node("github:Codertocat/Hello-World")
        assert repo.id == REPO
        assert {k: repo.props[k] for k in ("name", "path", "default_branch", "visibility")} == {
            "name": "Hello-World", "path": "Codertocat/Hello-World", "default_branch": "master",
            "visibility": "public"}
        assert reader.node("milestone:github:4317517").props["title"] == "v1.0"
        assert edges(reader, ISSUE, "IN_MILESTONE") == {"milestone:github:4317517"}
        assert reader.node("user:github:21031067").props["username"] == "Codertocat"
        assert edges(reader, f"commit:github:{'c' * 40}", "MENTIONS") == {ISSUE}
        gitlab = reader.node("gitlab:gitlabhq/gitlab-test")
        assert (gitlab.id, gitlab.props["name"], gitlab.props["visibility"]) == (
            "project:gitlab:1", "Gitlab Test", "public")
        assert reader.node("user:gitlab:51").props["username"] == "user1"
        commented = reader.node("gitlab:gitlab-org/gitlab-test#17")
        assert (commented.id, commented.props["title"], commented.props["state"]) == (
            "issue:gitlab:92", "test", "closed")


def test_visibility_follows_privatized_publicized_public_and_gitlab_updates(hook_settings, tmp_path):
    """repository privatized/publicized, the public webhook and GitLab's project_update set
    Project.visibility; an older payload's context does not set it back."""
    opened = github_example("issues", "opened.payload.json")
    repo = opened["repository"]
    private = {**repo, "private": True, "visibility": "private"}
    deliver(hook_settings, ("github", "issues", opened),
            ("github", "repository", github_repository_action("privatized", private)),
            ("gitlab", "System Hook", gitlab_project_create(74, "StoreCloud", "jsmith/storecloud")),
            ("gitlab", "System Hook", gitlab_project_update(74, "StoreCloud", "jsmith/storecloud",
                                                            "internal")))
    with graph(hook_settings, tmp_path) as reader:
        assert reader.node(REPO).props["visibility"] == "private"
        assert reader.node("gitlab:jsmith/storecloud").props["visibility"] == "internal"
    deliver(hook_settings, ("github", "issues", {**opened, "action": "reopened"}))  # says public
    with graph(hook_settings, tmp_path / "2") as reader:
        assert reader.node(REPO).props["visibility"] == "private"
    deliver(hook_settings, ("github", "repository", github_repository_action("publicized", repo)))
    with graph(hook_settings, tmp_path / "3") as reader:
        assert reader.node(REPO).props["visibility"] == "public"
    deliver(hook_settings, ("github", "repository", github_repository_action("privatized", private)),
            ("github", "public", {"repository": repo, "sender": opened["sender"]}))
    with graph(hook_settings, tmp_path / "4") as reader:
        assert reader.node(REPO).props["visibility"] == "public"


def test_a_transferred_issue_is_a_new_issue_in_the_new_repository(hook_settings, tmp_path):
    """issues.transferred: the new issue is #1 of the new repository, the old one leaves its
    repository pointing at it, and "Fixes #1" pushed there closes the new one."""
    opened = github_example("issues", "opened.payload.json")
    transferred, other = github_issue_transferred(new_repo_id=186853099, new_repo_name="Other",
                                                  new_issue_id=444500099, new_number=1)
    fix = github_push(other, "main", "Fix the spelling\n\nFixes #1", sha="d" * 40)
    deliver(hook_settings, ("github", "issues", opened), ("github", "issues", transferred),
            ("github", "push", fix))
    new = "issue:github:444500099"
    with graph(hook_settings, tmp_path) as reader:
        assert reader.node("github:Codertocat/Other#1").id == new
        assert edges(reader, new, "IN_PROJECT") == {"project:github:186853099"}
        assert reader.node(new).props["project_id"] == 186853099
        old = reader.node(ISSUE).props
        assert (old["state"], old["project_id"]) == ("transferred", 186853002)
        assert edges(reader, ISSUE, "IN_PROJECT") == set()
        assert edges(reader, ISSUE, "TRANSFERRED_TO") == {new}
        in_other = edges(reader, "project:github:186853099", "IN_PROJECT", "in")
        assert [k for k in in_other if k.startswith("issue:")] == [new]
        assert edges(reader, f"commit:github:{'d' * 40}", "CLOSES") == {new}


def test_a_default_branch_change_decides_which_pushes_close(hook_settings, tmp_path):
    """repository.edited with changes.default_branch: "Fixes #1" pushed to the new default
    branch closes the issue; pushed to the old one, it only mentions it."""
    opened = github_example("issues", "opened.payload.json")
    repo = {**opened["repository"], "default_branch": "develop", "master_branch": "develop"}
    edited = github_repository_action("edited", repo, changes={"default_branch": {"from": "master"}})
    on_new = github_push(repo, "develop", "Fix the README\n\nFixes #1", sha="e" * 40)
    on_old = github_push(repo, "master", "Fix it there too\n\nFixes #1", sha="f" * 40)
    deliver(hook_settings, ("github", "issues", opened), ("github", "repository", edited),
            ("github", "push", on_new), ("github", "push", on_old))
    with graph(hook_settings, tmp_path) as reader:
        assert reader.node(REPO).props["default_branch"] == "develop"
        assert edges(reader, f"commit:github:{'e' * 40}", "CLOSES") == {ISSUE}
        assert edges(reader, f"commit:github:{'f' * 40}", "CLOSES") == set()
        assert edges(reader, f"commit:github:{'f' * 40}", "MENTIONS") == {ISSUE}


def test_a_gitlab_project_transfer_joins_the_group_the_graph_has(hook_settings, tmp_path):
    """project_transfer names the new full path only: the project joins the group at its
    namespace and is found at the new path, no longer at the old one."""
    deliver(hook_settings,
            ("gitlab", "System Hook", gitlab_system("group_create", name="Acme", path="acme",
                                                    group_id=78)),
            ("gitlab", "System Hook", gitlab_system("subgroup_create", name="Web", path="web",
                                                    full_path="acme/web", group_id=79,
                                                    parent_group_id=78)),
            ("gitlab", "System Hook", gitlab_project_create(74, "StoreCloud", "jsmith/storecloud")),
            ("gitlab", "System Hook", gitlab_project_transfer(74, "StoreCloud", "acme/storecloud",
                                                              "jsmith/storecloud")),
            ("gitlab", "System Hook", gitlab_project_create(75, "API", "jsmith/api")),
            ("gitlab", "System Hook", gitlab_project_transfer(75, "API", "acme/web/api", "jsmith/api")))
    with graph(hook_settings, tmp_path) as reader:
        api = reader.node("gitlab:acme/web/api")
        assert (api.id, api.props["group_id"]) == ("project:gitlab:75", 79)
        assert reader.node("gitlab:acme/web").id == "group:gitlab:79"
        assert edges(reader, "group:gitlab:79", "IN_GROUP") == {"group:gitlab:78"}
        project = reader.node("gitlab:acme/storecloud")
        assert (project.id, project.props["group_id"]) == ("project:gitlab:74", 78)
        assert edges(reader, "project:gitlab:74", "IN_GROUP") == {"group:gitlab:78"}
        with pytest.raises(UnknownNode):
            reader.node("gitlab:jsmith/storecloud")


def test_a_comment_on_a_pull_request_is_linked_to_it(hook_settings, tmp_path):
    """issue_comment on a pull request (issue.pull_request set) is COMMENTED_ON the pull
    request, found by its number."""
    pr = github_example("pull_request", "opened.payload.json")
    comment = github_pr_comment(pr, comment_id=492700999, issue_id=444500777, body="Looks good")
    deliver(hook_settings, ("github", "pull_request", pr), ("github", "issue_comment", comment))
    mr = f"merge_request:github:{pr['pull_request']['id']}"
    with graph(hook_settings, tmp_path) as reader:
        assert edges(reader, "comment:github:492700999", "COMMENTED_ON") == {mr}
        assert reader.node(f"github:Codertocat/Hello-World!{pr['number']}").id == mr


def test_context_never_overwrites_a_later_rename(hook_settings, tmp_path):
    """A payload logged after a rename but still carrying the old name leaves the new one."""
    opened = github_example("issues", "opened.payload.json")
    renamed_repo = {**opened["repository"], "name": "Hello-Universe",
                    "full_name": "Codertocat/Hello-Universe"}
    stale = copy.deepcopy(opened)
    stale.update(action="closed")
    stale["issue"].update(state="closed", closed_at="2019-05-15T16:00:00Z")
    deliver(hook_settings, ("github", "repository", github_repository_action("renamed", renamed_repo,
                                                                           changes={"repository": {"name": {"from": "Hello-World"}}})),
            ("github", "issues", stale))
    with graph(hook_settings, tmp_path) as reader:
        assert reader.node(REPO).props["name"] == "Hello-Universe"
        assert reader.node("github:Codertocat/Hello-Universe").id == REPO
