"""Webhook payloads the platforms' published examples lack, written after their documentation.

GitHub's are built from its own examples (``tests/fixtures/webhooks/github/examples``)
with what the webhook reference documents for the action changed in; GitLab's
copy the JSON of doc/user/project/integrations/webhook_events.md and
doc/administration/system_hooks.md.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.support.paths import WEBHOOK_FIXTURES

GITHUB_EXAMPLES = WEBHOOK_FIXTURES / "github" / "examples"
GITLAB = WEBHOOK_FIXTURES / "gitlab"


def github_example(event: str, name: str) -> dict[str, Any]:
    """One of GitHub's example payloads (``issues``, ``opened.payload.json``)."""
    return json.loads((GITHUB_EXAMPLES / event / name).read_text())


def gitlab_example(name: str) -> dict[str, Any]:
    """One of GitLab's example payloads (``issue_hook.json``)."""
    return json.loads((GITLAB / name).read_text())


def github_repository(repo: dict[str, Any], *, repo_id: int, name: str, **changes: Any) -> dict:
    """Another repository of the same owner, shaped like ``repo``."""
    owner = repo["owner"]["login"]
    new = copy.deepcopy(repo)
    new.update(id=repo_id, node_id=f"R_{repo_id}", name=name, full_name=f"{owner}/{name}",
               html_url=f"https://github.com/{owner}/{name}",
               url=f"https://api.github.com/repos/{owner}/{name}", **changes)
    return new


def github_issue_transferred(*, new_repo_id: int, new_repo_name: str, new_issue_id: int,
                             new_number: int) -> tuple[dict, dict]:
    """``issues`` ``transferred``: the example issue moved to another repository, which
    made a new issue there (``changes.new_issue``, ``changes.new_repository``); and the
    new repository."""
    opened = github_example("issues", "opened.payload.json")
    new_repo = github_repository(opened["repository"], repo_id=new_repo_id, name=new_repo_name,
                                 default_branch="main")
    new_issue = copy.deepcopy(opened["issue"])
    new_issue.update(id=new_issue_id, node_id=f"I_{new_issue_id}", number=new_number,
                     repository_url=new_repo["url"],
                     url=f"{new_repo['url']}/issues/{new_number}",
                     html_url=f"{new_repo['html_url']}/issues/{new_number}",
                     labels=[], milestone=None, updated_at="2019-05-15T16:02:00Z")
    payload = copy.deepcopy(opened)
    payload["action"] = "transferred"
    payload["issue"]["updated_at"] = "2019-05-15T16:02:00Z"
    payload["changes"] = {"new_issue": new_issue, "new_repository": new_repo}
    return payload, new_repo


def github_push(repo: dict[str, Any], branch: str, message: str, *, sha: str,
                pushed_at: int = 1557936000) -> dict[str, Any]:
    """``push`` of one commit to ``branch`` of ``repo``."""
    example = github_example("push", "payload.json")
    commit = {
        "id": sha, "tree_id": "f" * 40, "distinct": True, "message": message,
        "timestamp": "2019-05-15T16:00:00Z", "url": f"{repo['html_url']}/commit/{sha}",
        "author": {"name": "Codertocat", "email": "21031067+Codertocat@users.noreply.github.com",
                   "username": "Codertocat"},
        "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
        "added": [], "removed": [], "modified": ["README.md"],
    }
    repository = copy.deepcopy(repo)
    repository.update(pushed_at=pushed_at, master_branch=repo.get("default_branch"))
    return {
        **example, "ref": f"refs/heads/{branch}", "before": "a" * 40, "after": sha,
        "created": False, "deleted": False, "forced": False, "base_ref": None,
        "compare": f"{repo['html_url']}/compare/aaaaaaaaaaaa...{sha[:12]}",
        "commits": [commit], "head_commit": commit, "repository": repository,
    }


def github_repository_action(action: str, repo: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A ``repository`` webhook about ``repo`` (edited, privatized, publicized ...)."""
    sender = github_example("issues", "opened.payload.json")["sender"]
    return {"action": action, "repository": repo, "sender": sender, **extra}


def github_pr_comment(pr_payload: dict[str, Any], *, comment_id: int, issue_id: int,
                      body: str) -> dict[str, Any]:
    """``issue_comment`` ``created`` on the pull request of ``pr_payload``: GitHub sends the
    pull request as an issue (its own issue id, the pull request's number) with
    ``issue.pull_request`` set."""
    comment = github_example("issue_comment", "created.payload.json")
    pr = pr_payload["pull_request"]
    payload = copy.deepcopy(comment)
    payload["repository"] = copy.deepcopy(pr_payload["repository"])
    payload["issue"].update(
        id=issue_id, node_id=f"PR_issue_{issue_id}", number=pr["number"], title=pr["title"],
        url=f"{pr_payload['repository']['url']}/issues/{pr['number']}",
        pull_request={"url": pr["url"], "html_url": pr["html_url"], "diff_url": pr["diff_url"],
                      "patch_url": pr["patch_url"], "merged_at": None})
    payload["comment"].update(id=comment_id, node_id=f"IC_{comment_id}", body=body,
                              issue_url=payload["issue"]["url"],
                              created_at="2019-05-15T16:10:00Z", updated_at="2019-05-15T16:10:00Z")
    return payload


# --- GitLab, as its documentation prints them -------------------------------------

def gitlab_tag_push() -> dict[str, Any]:
    """Tag Push Hook (webhook_events.md, "Tag events"): no commits, no timestamp."""
    return {
        "object_kind": "tag_push",
        "event_name": "tag_push",
        "before": "0000000000000000000000000000000000000000",
        "after": "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7",
        "ref": "refs/tags/v1.0.0",
        "ref_protected": True,
        "checkout_sha": "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7",
        "message": "Tag message",
        "user_id": 1,
        "user_name": "John Smith",
        "user_username": "jsmith",
        "user_avatar": "https://s.gravatar.com/avatar/d4c74594d841139328695756648b6bd6?s=80",
        "project_id": 1,
        "project": {
            "id": 1,
            "name": "Example",
            "description": "",
            "web_url": "http://example.com/jsmith/example",
            "avatar_url": None,
            "git_ssh_url": "git@example.com:jsmith/example.git",
            "git_http_url": "http://example.com/jsmith/example.git",
            "namespace": "Jsmith",
            "visibility_level": 0,
            "path_with_namespace": "jsmith/example",
            "default_branch": "master",
            "homepage": "http://example.com/jsmith/example",
            "url": "git@example.com:jsmith/example.git",
            "ssh_url": "git@example.com:jsmith/example.git",
            "http_url": "http://example.com/jsmith/example.git",
        },
        "repository": {
            "name": "Example",
            "url": "ssh://git@example.com/jsmith/example.git",
            "description": "",
            "homepage": "http://example.com/jsmith/example",
            "git_http_url": "http://example.com/jsmith/example.git",
            "git_ssh_url": "git@example.com:jsmith/example.git",
            "visibility_level": 0,
        },
        "commits": [],
        "total_commits_count": 0,
    }


def gitlab_branch_created() -> dict[str, Any]:
    """Push Hook of a new branch with no new commits (``before`` all zeros, ``commits`` [])."""
    push = gitlab_example("push_hook.json")
    push.update(before="0" * 40, after=push["after"], ref="refs/heads/feature/empty",
                commits=[], total_commits_count=0)
    return push


def gitlab_system(event_name: str, **fields: Any) -> dict[str, Any]:
    """A system hook (system_hooks.md) with its documented timestamps."""
    return {"created_at": "2012-07-21T07:30:54Z", "updated_at": "2012-07-21T07:38:22Z",
            "event_name": event_name, **fields}


def gitlab_project_create(project_id: int, name: str, path_with_namespace: str) -> dict:
    """``project_create`` (system_hooks.md)."""
    return gitlab_system("project_create", name=name, owner_email="johnsmith@example.com",
                         owner_name="John Smith", owners=[{"name": "John", "email": "user1@example.com"}],
                         path=path_with_namespace.rpartition("/")[2],
                         path_with_namespace=path_with_namespace, project_id=project_id,
                         project_namespace_id=project_id + 1000, project_visibility="private")


def gitlab_project_transfer(project_id: int, name: str, path_with_namespace: str,
                            old_path_with_namespace: str) -> dict:
    """``project_transfer`` (system_hooks.md): no group id, the new full path."""
    return gitlab_system("project_transfer", name=name, path=path_with_namespace.rpartition("/")[2],
                         path_with_namespace=path_with_namespace, project_id=project_id,
                         owner_name="John Smith", owner_email="johnsmith@example.com",
                         owners=[{"name": "John", "email": "user1@example.com"}],
                         project_visibility="internal",
                         old_path_with_namespace=old_path_with_namespace,
                         updated_at="2012-07-21T08:00:00Z")


def gitlab_project_update(project_id: int, name: str, path_with_namespace: str,
                          visibility: str) -> dict:
    """``project_update`` (system_hooks.md): sent when a setting (here the visibility) changed."""
    return gitlab_system("project_update", name=name, owner_email="johnsmith@example.com",
                         owner_name="John Smith", owners=[{"name": "John", "email": "user1@example.com"}],
                         path=path_with_namespace.rpartition("/")[2],
                         path_with_namespace=path_with_namespace, project_id=project_id,
                         project_visibility=visibility, updated_at="2012-07-21T09:00:00Z")
