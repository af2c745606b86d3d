"""Hypothesis strategies: random sequences of canonical events over a few groups, projects,
issues and merge requests, with references that resolve, resolve after renames, or not at all."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from hypothesis import strategies as st

from events.types import (
    EVENT_TYPES,
    Actor,
    Commit,
    Context,
    GroupFacts,
    IssueFacts,
    MergeRequestFacts,
    MilestoneFacts,
    ProjectFacts,
    UserFacts,
)

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
SHAS = ("aaaa1111", "bbbb2222", "cccc3333")
BRANCHES = ("main", "dev", "master")

ids = st.integers(1, 3)
small = st.integers(1, 3)
maybe_group = st.one_of(st.none(), small)
# References that resolve against SETUP (issue i has iid 10*i), or after renames and
# transfers (g1x, iid 10*i + project), or not at all.
TEXTS = ("", "nothing to see", "see #10", "Closes #10", "fixes #20 and #30", "Closes #10, #20",
         "Closes g1/p1#10", "see g2/p2#30", "Fixes g1/p3#40", "Resolves g1x/p1#20",
         "`Closes #10` is code", "related to g2/p2#30 and #40", "Closes g3/g2/p2#31",
         "fixes g1/p1#12 and g2/p3x#43", "Closes g1/g3/p3#40", "see g1/g2/p2#30")
SETUP = [
    {"tag": "group.created", "group_id": 1, "name": "g1", "path": "g1"},
    {"tag": "group.created", "group_id": 2, "name": "g2", "path": "g2"},
    {"tag": "group.created", "group_id": 3, "name": "g3", "path": "g3", "parent_id": 1},
    {"tag": "project.created", "project_id": 1, "name": "p1", "path": "p1", "group_id": 1,
     "default_branch": "main"},
    {"tag": "project.created", "project_id": 2, "name": "p2", "path": "p2", "group_id": 2,
     "default_branch": "dev"},
    {"tag": "project.created", "project_id": 3, "name": "p3", "path": "p3", "group_id": 1},
    *({"tag": "issue.opened", "issue_id": i, "project_id": p, "iid": 10 * i, "title": f"issue {i}",
       "author_id": 1} for i, p in ((1, 1), (2, 1), (3, 2), (4, 3))),
    {"tag": "merge_request.opened", "merge_request_id": 1, "project_id": 1, "iid": 1, "title": "mr",
     "author_id": 2, "source_branch": "dev", "target_branch": "main", "description": "Closes #10"},
]


def _path(prefix):
    return st.builds(lambda i, renamed: (i, f"{prefix}{i}{'x' if renamed else ''}"), small, st.booleans())


def _event(tag, **fields):
    return st.fixed_dictionaries({"tag": st.just(tag), **fields})


def _issue_fields():
    return {"issue_id": st.integers(1, 4), "project_id": ids}


def _mr_fields():
    return {"merge_request_id": small, "project_id": ids}


_commit = st.builds(lambda sha, message, author: Commit(sha=sha, message=message, author_id=author,
                                                        author_name="dev"),
                    st.sampled_from(SHAS), st.sampled_from(TEXTS), st.one_of(st.none(), ids))

_TEXT_EVENTS = st.one_of(
    st.builds(lambda c, p, text: {"tag": "comment.created", "comment_id": c, "project_id": p,
                                  "author_id": 1, "body": text, "target_type": "issue",
                                  "target_id": 1}, ids, ids, st.sampled_from(TEXTS)),
    st.builds(lambda p, branch, texts: {
        "tag": "commits.pushed", "project_id": p, "ref": f"refs/heads/{branch}", "after": "e" * 40,
        "commits": [Commit(sha=f"{n}{p}{branch}abcd", message=t) for n, t in enumerate(texts)]},
        ids, st.sampled_from(BRANCHES), st.lists(st.sampled_from(TEXTS), min_size=1, max_size=2)),
    _event("merge_request.updated", **_mr_fields(), description=st.sampled_from(TEXTS)),
)

_ALL_EVENTS = st.one_of(
    st.builds(lambda g, parent: {"tag": "group.created", "group_id": g[0], "name": g[1], "path": g[1],
                                 "parent_id": parent if parent != g[0] else None},
              _path("g"), maybe_group),
    st.builds(lambda g: {"tag": "group.updated", "group_id": g[0], "path": g[1]}, _path("g")),
    # GitLab's subgroup hooks carry the full path
    st.builds(lambda g: {"tag": "group.updated", "group_id": g, "path": f"g1/g{g}"}, small),
    _event("group.deleted", group_id=small),
    st.builds(lambda p, g, branch: {"tag": "project.created", "project_id": p[0], "name": p[1],
                                    "path": p[1], "group_id": g, "default_branch": branch},
              _path("p"), maybe_group, st.one_of(st.none(), st.sampled_from(BRANCHES))),
    st.builds(lambda p: {"tag": "project.renamed", "project_id": p[0], "name": p[1], "path": p[1]},
              _path("p")),
    st.builds(lambda p, g: {"tag": "project.transferred", "project_id": p[0], "path": p[1],
                            "group_id": g}, _path("p"), maybe_group),
    # a full path (GitLab's system hooks): joins the group at its namespace if known
    st.builds(lambda p, ns: {"tag": "project.transferred", "project_id": p[0],
                             "path": f"{ns}/{p[1]}", "group_id": None},
              _path("p"), st.sampled_from(["g1", "g2", "g1/g3", "gx"])),
    _event("project.updated", project_id=ids,
           default_branch=st.one_of(st.none(), st.sampled_from(BRANCHES)),
           visibility=st.one_of(st.none(), st.sampled_from(["private", "public"]))),
    _event("project.archived", project_id=ids),
    _event("project.deleted", project_id=ids),
    st.builds(lambda p, src, g: {"tag": "project.forked", "project_id": p[0], "forked_from_id": src,
                                 "name": p[1], "path": p[1], "group_id": g}, _path("p"), ids, maybe_group),
    _event("user.created", user_id=ids, username=st.sampled_from(["ann", "bob"])),
    _event("user.updated", user_id=ids, name=st.sampled_from(["Ann", "Bob"])),
    _event("user.deleted", user_id=ids),
    _event("member.added", user_id=ids, project_id=ids, role=st.sampled_from(["developer", "owner"])),
    _event("member.updated", user_id=ids, group_id=small, role=st.sampled_from(["developer", "guest"])),
    _event("member.removed", user_id=ids, project_id=ids),
    _event("label.created", label_id=small, name=st.sampled_from(["bug", "ux"]), project_id=ids),
    _event("label.updated", label_id=small, color=st.sampled_from(["#fff", "#000"])),
    _event("label.deleted", label_id=small),
    _event("milestone.created", milestone_id=small, project_id=ids, title=st.just("v1")),
    _event("milestone.updated", milestone_id=small, state=st.just("closed")),
    _event("milestone.deleted", milestone_id=small),
    st.builds(lambda i, p, author, labels, assignees, m, text: {
        "tag": "issue.opened", "issue_id": i, "project_id": p, "iid": i * 10, "title": f"issue {i}",
        "author_id": author, "label_ids": labels, "assignee_ids": assignees, "milestone_id": m,
        "description": text}, st.integers(1, 4), ids, ids, st.lists(small, max_size=2, unique=True),
        st.lists(ids, max_size=2, unique=True), st.one_of(st.none(), small), st.sampled_from(TEXTS)),
    _event("issue.edited", **_issue_fields(), title=st.just("new title"),
           description=st.one_of(st.none(), st.sampled_from(TEXTS))),
    _event("issue.labeled", **_issue_fields(), label_id=small),
    _event("issue.unlabeled", **_issue_fields(), label_id=small),
    _event("issue.assigned", **_issue_fields(), user_id=ids),
    _event("issue.unassigned", **_issue_fields(), user_id=ids),
    _event("issue.milestoned", **_issue_fields(), milestone_id=small),
    _event("issue.demilestoned", **_issue_fields(), milestone_id=st.one_of(st.none(), small)),
    _event("issue.closed", **_issue_fields()),
    _event("issue.reopened", **_issue_fields()),
    _event("issue.linked", **_issue_fields(), target_issue_id=st.integers(1, 4),
           link_type=st.sampled_from(["relates_to", "blocks", "is_blocked_by"])),
    _event("issue.unlinked", **_issue_fields(), target_issue_id=st.integers(1, 4),
           link_type=st.sampled_from(["relates_to", "blocks", "is_blocked_by"])),
    st.builds(lambda i, p, to: {"tag": "issue.transferred", "issue_id": i, "project_id": p,
                                "to_project_id": to, "iid": i * 10 + to}, st.integers(1, 4), ids, ids),
    st.builds(lambda i, p, to, new: {"tag": "issue.transferred", "issue_id": i, "project_id": p,
                                     "to_project_id": to, "iid": new * 10 + to, "new_issue_id": new},
              st.integers(1, 4), ids, ids, st.integers(1, 6)),
    _event("issue.deleted", **_issue_fields()),
    st.builds(lambda m, p, author, text, src, tgt: {
        "tag": "merge_request.opened", "merge_request_id": m, "project_id": p, "iid": m,
        "title": "mr", "author_id": author, "source_branch": src, "target_branch": tgt,
        "description": text, "label_ids": [1]}, small, ids, ids, st.sampled_from(TEXTS),
        st.sampled_from(BRANCHES), st.sampled_from(BRANCHES)),
    _event("merge_request.updated", **_mr_fields(), description=st.sampled_from(TEXTS),
           target_branch=st.one_of(st.none(), st.sampled_from(BRANCHES))),
    _event("merge_request.review_requested", **_mr_fields(), user_id=ids),
    _event("merge_request.unlabeled", **_mr_fields(), label_id=small),
    _event("merge_request.milestoned", **_mr_fields(), milestone_id=small),
    _event("merge_request.merged", **_mr_fields(), merge_commit_sha=st.sampled_from(SHAS)),
    _event("merge_request.closed", **_mr_fields()),
    st.builds(lambda c, p, author, text, target, tid, sha: {
        "tag": "comment.created", "comment_id": c, "project_id": p, "author_id": author,
        "body": text, "target_type": target, "target_id": tid, "target_sha": sha},
        ids, ids, ids, st.sampled_from(TEXTS), st.sampled_from(["issue", "merge_request", "commit"]),
        st.integers(1, 4), st.sampled_from(SHAS)),
    st.builds(lambda c, p, target, iid: {
        "tag": "comment.created", "comment_id": c, "project_id": p, "author_id": 1,
        "target_type": target, "target_iid": iid}, ids, ids,
        st.sampled_from(["issue", "merge_request"]), st.sampled_from([1, 2, 10, 20, 30])),
    _event("comment.edited", comment_id=ids, project_id=ids, body=st.sampled_from(TEXTS)),
    _event("comment.deleted", comment_id=ids, project_id=ids),
    st.builds(lambda p, branch, commits: {"tag": "commits.pushed", "project_id": p,
                                          "ref": f"refs/heads/{branch}", "after": "f" * 40,
                                          "commits": commits},
              ids, st.sampled_from(BRANCHES), st.lists(_commit, max_size=3)),
    _event("ref.created", project_id=ids, ref=st.sampled_from(BRANCHES), ref_type=st.just("branch"),
           sha=st.sampled_from(SHAS)),
    _event("ref.deleted", project_id=ids, ref=st.sampled_from(BRANCHES), ref_type=st.just("branch")),
)
_FACTS = st.builds(
    lambda projects, groups, users, milestones, issues, mrs: Context(
        projects=projects, groups=groups, users=users, milestones=milestones, issues=issues,
        merge_requests=mrs),
    st.lists(st.builds(lambda p, g, branch, vis: ProjectFacts(
        id=p[0], name=p[1], path=f"g{g}/{p[1]}" if g else p[1], group_id=g, default_branch=branch,
        visibility=vis), _path("p"), maybe_group, st.one_of(st.none(), st.sampled_from(BRANCHES)),
        st.sampled_from(["private", "public", None])), max_size=2),
    st.lists(st.builds(lambda g, parent: GroupFacts(id=g[0], name=g[1], path=g[1], parent_id=parent),
                       _path("g"), st.none()), max_size=1),
    st.lists(st.builds(lambda i: UserFacts(id=i, username=f"user{i}"), ids), max_size=2),
    st.lists(st.builds(lambda m, p: MilestoneFacts(id=m, title="v0", state="active", project_id=p),
                       small, ids), max_size=1),
    st.lists(st.builds(lambda i, p, state: IssueFacts(id=i, project_id=p, iid=10 * i, title="seen",
                                                      state=state),
                       st.integers(1, 4), ids, st.sampled_from(["opened", "closed"])), max_size=1),
    st.lists(st.builds(lambda m, p: MergeRequestFacts(id=m, project_id=p, iid=m, title="seen",
                                                      state="merged", target_branch="main"),
                       small, ids), max_size=1),
)
# one_of flattens nested one_ofs (uniform over all branches): weight by a draw instead.
EVENTS = st.integers(0, 2).flatmap(lambda n: _TEXT_EVENTS if n == 0 else _ALL_EVENTS)


@st.composite
def event_lists(draw, max_size=40):
    specs = draw(st.lists(EVENTS, max_size=max_size))
    if draw(st.booleans()):
        specs = SETUP + specs
    events = []
    for n, spec in enumerate(specs):
        spec = dict(spec)
        cls = EVENT_TYPES[spec.pop("tag")]
        source = draw(st.sampled_from(["gitlab"] * 5 + ["github"]))
        actor = draw(st.one_of(st.none(), st.builds(lambda i: Actor(id=i, username=f"u{i}"), ids)))
        if cls.__struct_config__.tag == "commits.pushed" and actor is None:
            actor = Actor(id=1)
        context = draw(st.one_of(st.none(), st.none(), _FACTS))
        events.append(cls(event_id=str(uuid.UUID(int=n + 1)), source=source, actor=actor,
                          occurred_at=T0 + timedelta(seconds=n), context=context, **spec))
    return events
