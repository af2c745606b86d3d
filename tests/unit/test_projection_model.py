"""Property tests: random event sequences give the graph a simple reference model gives."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.references import parse_references
from events.types import EVENT_TYPES
from projections.fold import stamps
from projections.fold.apply import HANDLED_TYPES, apply
from projections.fold.memory import MemoryGraph
from projections.fold.overlay import Overlay
from projections.read.export import check_derived, export
from tests.support.strategies import event_lists

# --- the reference model -----------------------------------------------------
# Deliberately naive: dicts and full scans, written from the event semantics
# (see projections/apply.py and projections/mutations.py), not from the store.

CASCADE = {"IN_GROUP": {"Project", "Group", "Label"},
           "IN_PROJECT": {"Issue", "MergeRequest", "Label", "Milestone", "Ref"},
           "COMMENTED_ON": {"Comment"}}
ORPHAN = {"IN_PROJECT": {"Commit"}}
TYPES = {"group": "Group", "project": "Project", "user": "User", "issue": "Issue",
         "merge_request": "MergeRequest", "label": "Label", "milestone": "Milestone",
         "commit": "Commit", "comment": "Comment", "ref": "Ref"}


def type_of(key: str) -> str:
    return TYPES[key.split(":", 1)[0]]


def source_of(key: str) -> str:
    return key.split(":")[1]


UNSTAMPED = {"Commit", "Comment", "Ref"}  # blind types: arrival order, as before


# edges nothing removes: never stamped (adds always win)
ADD_ONLY = {"AUTHORED", "PUSHED", "FORKED_FROM", "FROM_REF", "MERGED_AS", "COMMENTED_ON",
            "TRANSFERRED_TO"}


def stamped(key: str, edge: str | None = None) -> bool:
    return type_of(key) not in UNSTAMPED and edge not in ADD_ONLY


class Model:
    """Stamped types: every property, edge and CLEAR remembers the time of its last
    write (context and actor names beneath the event's own writes); an older write loses."""

    def __init__(self):
        self.nodes: dict[str, dict] = {}
        self.edges: dict[tuple[str, str, str], dict | None] = {}
        self.tombs: set[str] = set()
        self.at = 0
        self.prop_at: dict[tuple[str, str], int] = {}
        self.edge_at: dict[tuple[str, str, str], int] = {}  # + added, - removed
        self.clear_at: dict[tuple[str, str], int] = {}

    def newer(self, key, patch):
        if key in self.tombs:
            return
        props = dict(self.nodes.get(key, {}))
        for k, v in patch.items():
            if self.at < self.prop_at.get((key, k), 0):
                continue
            self.prop_at[(key, k)] = self.at
            if v is None:
                props.pop(k, None)
            else:
                props[k] = v
        self.nodes[key] = props

    def ensure(self, key, props):
        if props and stamped(key):
            self.newer(key, props)
        elif key not in self.tombs and key not in self.nodes:
            self.nodes[key] = dict(props)

    def set(self, key, props):
        if key not in self.tombs:
            self.nodes[key] = {k: v for k, v in props.items() if v is not None}

    def create(self, key, props):
        """A creation goes beneath what later events (logged first) already set."""
        props = {k: v for k, v in props.items() if v is not None}
        if stamped(key):
            self.newer(key, props)
        elif key not in self.tombs:
            self.nodes[key] = {**props, **self.nodes.get(key, {})}

    def merge(self, key, patch):
        if stamped(key):
            self.newer(key, patch)
            return
        if key in self.tombs:
            return
        props = dict(self.nodes.get(key, {}))
        for k, v in patch.items():
            if v is None:
                props.pop(k, None)
            else:
                props[k] = v
        self.nodes[key] = props

    def link(self, src, edge, dst, props=None):
        for end in (src, dst):
            if end not in self.tombs:
                self.ensure(end, {})
        if src in self.tombs or dst in self.tombs:
            return
        if stamped(src, edge):
            if (self.at < abs(self.edge_at.get((src, edge, dst), 0))
                    or self.at < self.clear_at.get((src, edge), 0)):
                return
            self.edge_at[(src, edge, dst)] = self.at
        self.edges[(src, edge, dst)] = props or None

    def attach(self, src, edge, dst):
        """A creation's single-valued link: kept out when a move set one already."""
        if stamped(src, edge):
            self.clear(src, edge)
            self.link(src, edge, dst)
        elif not any(k[0] == src and k[1] == edge for k in self.edges):
            self.link(src, edge, dst)

    def unlink(self, src, edge, dst):
        if stamped(src, edge):
            if src in self.tombs or self.at < abs(self.edge_at.get((src, edge, dst), 0)):
                return
            self.edge_at[(src, edge, dst)] = -self.at
        self.edges.pop((src, edge, dst), None)

    def clear(self, src, edge):
        present = [k for k in self.edges if k[0] == src and k[1] == edge]
        if stamped(src, edge):
            if src in self.tombs:
                return
            self.clear_at[(src, edge)] = max(self.clear_at.get((src, edge), 0), self.at)
            present = [k for k in present if abs(self.edge_at.get(k, 0)) <= self.at]
            for k in present:
                self.edge_at[k] = -self.at
        for k in present:
            del self.edges[k]

    def delete(self, key):
        todo = [key]
        while todo:
            k = todo.pop()
            if k in self.tombs:
                continue
            for s, e, d in list(self.edges):
                if (s, e, d) not in self.edges:
                    continue
                if s == k:
                    del self.edges[(s, e, d)]
                elif d == k:
                    del self.edges[(s, e, d)]
                    if type_of(s) in CASCADE.get(e, ()):
                        todo.append(s)
                    elif type_of(s) in ORPHAN.get(e, ()) and not any(
                            x[0] == s and x[1] == e for x in self.edges):
                        todo.append(s)
            self.nodes.pop(k, None)
            self.tombs.add(k)

    # -- references ----------------------------------------------------------

    def _child(self, source, parent_id, segment, types):
        for key, props in self.nodes.items():
            t = type_of(key)
            if source_of(key) != source or t not in types or "path" not in props:
                continue
            parent = props.get("parent_id") if t == "Group" else props.get("group_id")
            if self._full_path(key, props) is not None:
                continue
            if parent == parent_id and props["path"].lower() == segment.lower():
                return key
        return None

    def _full_path(self, key, props):
        """The path a node is found by directly: a subgroup's or project's full path."""
        path = props.get("path")
        if path is None:
            return None
        t = type_of(key)
        if t == "Group" and "/" in path:
            return path.lower()
        if t == "Project" and ("/" in path or props.get("group_id") is None):
            return path.lower()
        return None

    def resolve_project(self, source, path, wanted="Project"):
        for key, props in self.nodes.items():
            if (source_of(key) == source and type_of(key) == wanted
                    and self._full_path(key, props) == path.lower()):
                return key
        segments = path.split("/")
        node = None
        for key, props in self.nodes.items():
            if (type_of(key) == "Group" and source_of(key) == source and "path" in props
                    and props.get("parent_id") is None and props["path"].lower() == segments[0].lower()
                    and self._full_path(key, props) is None):
                node = key
        for i in range(1, len(segments)):
            child = None
            if node is not None and type_of(node) == "Group":
                child = self._child(source, int(node.split(":")[2]), segments[i], ("Group", "Project"))
            if child is None and i < len(segments) - 1:
                prefix = "/".join(segments[: i + 1]).lower()
                child = next((k for k, props in self.nodes.items() if source_of(k) == source
                              and self._full_path(k, props) == prefix), None)
            node = child
        return node if node is not None and type_of(node) == wanted else None

    def issue(self, source, project_id, iid):
        return self.numbered("issue", source, project_id, iid)

    def numbered(self, kind, source, project_id, iid):
        for key, props in self.nodes.items():
            if (type_of(key) == TYPES[kind] and source_of(key) == source
                    and props.get("project_id") == project_id and props.get("iid") == iid):
                return key
        return None

    def refs(self, src, text, source, project_id, mode, branch=None):
        for ref in parse_references(text or "", platform="github" if source == "github" else None):
            if ref.project_path is not None:
                project = self.resolve_project(source, ref.project_path)
                if project is None:
                    continue
                pid = int(project.split(":")[2])
            else:
                pid = project_id
            issue = self.issue(source, pid, ref.number)
            if issue is None or issue == src:
                continue
            edge = "MENTIONS"
            if ref.kind == "closes" and mode == "close":
                edge = "CLOSES"
            elif ref.kind == "closes" and mode == "push":
                default = self.nodes.get(f"project:{source}:{project_id}", {}).get("default_branch")
                if (branch == default) if default else branch in ("main", "master"):
                    edge = "CLOSES"
            self.link(src, edge, issue)

    # -- events ----------------------------------------------------------------

    def apply(self, e):
        s = e.source
        tag = e.__struct_config__.tag
        self.at = stamps.at(e.occurred_at, own=False)
        if e.actor is not None and e.actor.username is not None:
            props = {"username": e.actor.username}
            if e.actor.name is not None:
                props["name"] = e.actor.name
            self.ensure(f"user:{s}:{e.actor.id}", props)
        if e.context is not None:
            self.context(e.context, s)
        self.at = stamps.at(e.occurred_at, own=True)
        getattr(self, "on_" + tag.replace(".", "_"))(e, s)

    def context(self, ctx, s):
        """Context facts: created beneath, containment attached."""
        for g in ctx.groups:
            self.create(f"group:{s}:{g.id}", {"name": g.name, "path": g.path, "parent_id": g.parent_id})
            if g.parent_id is not None:
                self.attach(f"group:{s}:{g.id}", "IN_GROUP", f"group:{s}:{g.parent_id}")
        for p in ctx.projects:
            self.create(f"project:{s}:{p.id}", {"name": p.name, "path": p.path, "group_id": p.group_id,
                                                 "default_branch": p.default_branch,
                                                 "visibility": p.visibility})
            if p.group_id is not None:
                self.attach(f"project:{s}:{p.id}", "IN_GROUP", f"group:{s}:{p.group_id}")
        for u in ctx.users:
            self.create(f"user:{s}:{u.id}", {"username": u.username, "name": u.name})
        for m in ctx.milestones:
            self.create(f"milestone:{s}:{m.id}", {"title": m.title, "state": m.state,
                                                   "due_date": m.due_date, "project_id": m.project_id})
            if m.project_id is not None:
                self.attach(f"milestone:{s}:{m.id}", "IN_PROJECT", f"project:{s}:{m.project_id}")
        for kind, items in (("issue", ctx.issues), ("merge_request", ctx.merge_requests)):
            for i in items:
                props = {"project_id": i.project_id, "iid": i.iid, "title": i.title, "state": i.state}
                if kind == "merge_request":
                    props.update(source_branch=i.source_branch, target_branch=i.target_branch)
                self.create(f"{kind}:{s}:{i.id}", props)
                self.attach(f"{kind}:{s}:{i.id}", "IN_PROJECT", f"project:{s}:{i.project_id}")

    def on_group_created(self, e, s):
        self.create(f"group:{s}:{e.group_id}", {"name": e.name, "path": e.path, "parent_id": e.parent_id})
        if e.parent_id is not None:
            self.attach(f"group:{s}:{e.group_id}", "IN_GROUP", f"group:{s}:{e.parent_id}")

    def on_group_updated(self, e, s):
        patch = {k: v for k, v in (("name", e.name), ("path", e.path)) if v is not None}
        if patch:
            self.merge(f"group:{s}:{e.group_id}", patch)

    def on_group_deleted(self, e, s):
        self.delete(f"group:{s}:{e.group_id}")

    def _project(self, e, s, **extra):
        k = f"project:{s}:{e.project_id}"
        self.create(k, {"name": e.name, "path": e.path, "group_id": e.group_id, "archived": False,
                     "created_at": e.occurred_at, **extra})
        if e.group_id is not None:
            self.attach(k, "IN_GROUP", f"group:{s}:{e.group_id}")
        return k

    def on_project_created(self, e, s):
        self._project(e, s, default_branch=e.default_branch, visibility=e.visibility)

    def on_project_forked(self, e, s):
        k = self._project(e, s, forked_from_id=e.forked_from_id)
        self.link(k, "FORKED_FROM", f"project:{s}:{e.forked_from_id}")

    def on_project_renamed(self, e, s):
        self.merge(f"project:{s}:{e.project_id}", {"name": e.name, "path": e.path})

    def on_project_transferred(self, e, s):
        k = f"project:{s}:{e.project_id}"
        self.merge(k, {"group_id": e.group_id, "path": e.path})
        self.clear(k, "IN_GROUP")
        if e.group_id is not None:
            self.link(k, "IN_GROUP", f"group:{s}:{e.group_id}")
        elif "/" in e.path:
            group = self.resolve_project(s, e.path.rpartition("/")[0], "Group")
            if group is not None and k not in self.tombs:
                self.merge(k, {"group_id": int(group.split(":")[2])})
                self.link(k, "IN_GROUP", group)

    def on_project_updated(self, e, s):
        patch = {k: v for k, v in (("name", e.name), ("path", e.path),
                                   ("default_branch", e.default_branch), ("visibility", e.visibility))
                 if v is not None}
        if patch:
            self.merge(f"project:{s}:{e.project_id}", patch)

    def on_project_archived(self, e, s):
        self.merge(f"project:{s}:{e.project_id}", {"archived": True})

    def on_project_unarchived(self, e, s):
        self.merge(f"project:{s}:{e.project_id}", {"archived": False})

    def on_project_deleted(self, e, s):
        self.delete(f"project:{s}:{e.project_id}")

    def on_user_created(self, e, s):
        self.create(f"user:{s}:{e.user_id}", {"username": e.username, "name": e.name})

    def on_user_updated(self, e, s):
        patch = {k: v for k, v in (("username", e.username), ("name", e.name)) if v is not None}
        if patch:
            self.merge(f"user:{s}:{e.user_id}", patch)

    def on_user_deleted(self, e, s):
        self.delete(f"user:{s}:{e.user_id}")

    def _target(self, e, s):
        if e.project_id is not None:
            return f"project:{s}:{e.project_id}"
        return f"group:{s}:{e.group_id}"

    def on_member_added(self, e, s):
        self.link(f"user:{s}:{e.user_id}", "MEMBER_OF", self._target(e, s),
                  {"role": e.role} if e.role else None)

    on_member_updated = on_member_added

    def on_member_removed(self, e, s):
        self.unlink(f"user:{s}:{e.user_id}", "MEMBER_OF", self._target(e, s))

    def on_label_created(self, e, s):
        k = f"label:{s}:{e.label_id}"
        self.create(k, {"name": e.name, "color": e.color, "project_id": e.project_id, "group_id": e.group_id})
        if e.project_id is not None:
            self.attach(k, "IN_PROJECT", f"project:{s}:{e.project_id}")
        elif e.group_id is not None:
            self.attach(k, "IN_GROUP", f"group:{s}:{e.group_id}")

    def on_label_updated(self, e, s):
        patch = {k: v for k, v in (("name", e.name), ("color", e.color)) if v is not None}
        if patch:
            self.merge(f"label:{s}:{e.label_id}", patch)

    def on_label_deleted(self, e, s):
        self.delete(f"label:{s}:{e.label_id}")

    def on_milestone_created(self, e, s):
        k = f"milestone:{s}:{e.milestone_id}"
        self.create(k, {"title": e.title, "state": e.state, "due_date": e.due_date,
                        "project_id": e.project_id})
        if e.project_id is not None:
            self.attach(k, "IN_PROJECT", f"project:{s}:{e.project_id}")

    def on_milestone_updated(self, e, s):
        patch = {k: v for k, v in (("title", e.title), ("state", e.state), ("due_date", e.due_date))
                 if v is not None}
        if patch:
            self.merge(f"milestone:{s}:{e.milestone_id}", patch)

    def on_milestone_deleted(self, e, s):
        self.delete(f"milestone:{s}:{e.milestone_id}")

    def _links(self, e, s, k, reviewers=()):
        for label in e.label_ids:
            self.link(k, "HAS_LABEL", f"label:{s}:{label}")
        for user in e.assignee_ids:
            self.link(k, "ASSIGNED_TO", f"user:{s}:{user}")
        for user in reviewers:
            self.link(k, "REVIEWER", f"user:{s}:{user}")
        if e.milestone_id is not None:
            self.attach(k, "IN_MILESTONE", f"milestone:{s}:{e.milestone_id}")

    def on_issue_opened(self, e, s):
        k = f"issue:{s}:{e.issue_id}"
        self.create(k, {"project_id": e.project_id, "iid": e.iid, "title": e.title, "state": "opened",
                     "confidential": e.confidential, "author_id": e.author_id,
                     "created_at": e.occurred_at})
        self.attach(k, "IN_PROJECT", f"project:{s}:{e.project_id}")
        self.link(f"user:{s}:{e.author_id}", "AUTHORED", k)
        self._links(e, s, k)
        self.refs(k, e.description, s, e.project_id, "mention")

    def on_issue_edited(self, e, s):
        k = f"issue:{s}:{e.issue_id}"
        patch = {"updated_at": e.occurred_at}
        if e.title is not None:
            patch["title"] = e.title
        self.merge(k, patch)
        if e.description is not None:
            self.clear(k, "MENTIONS")
            self.refs(k, e.description, s, e.project_id, "mention")

    def _edge_event(self, e, s, kind, edge, other, add):
        k = f"{kind}:{s}:{e.issue_id if kind == 'issue' else e.merge_request_id}"
        (self.link if add else self.unlink)(k, edge, other)

    def on_issue_labeled(self, e, s):
        self._edge_event(e, s, "issue", "HAS_LABEL", f"label:{s}:{e.label_id}", True)

    def on_issue_unlabeled(self, e, s):
        self._edge_event(e, s, "issue", "HAS_LABEL", f"label:{s}:{e.label_id}", False)

    def on_issue_assigned(self, e, s):
        self._edge_event(e, s, "issue", "ASSIGNED_TO", f"user:{s}:{e.user_id}", True)

    def on_issue_unassigned(self, e, s):
        self._edge_event(e, s, "issue", "ASSIGNED_TO", f"user:{s}:{e.user_id}", False)

    def on_merge_request_labeled(self, e, s):
        self._edge_event(e, s, "merge_request", "HAS_LABEL", f"label:{s}:{e.label_id}", True)

    def on_merge_request_unlabeled(self, e, s):
        self._edge_event(e, s, "merge_request", "HAS_LABEL", f"label:{s}:{e.label_id}", False)

    def on_merge_request_assigned(self, e, s):
        self._edge_event(e, s, "merge_request", "ASSIGNED_TO", f"user:{s}:{e.user_id}", True)

    def on_merge_request_unassigned(self, e, s):
        self._edge_event(e, s, "merge_request", "ASSIGNED_TO", f"user:{s}:{e.user_id}", False)

    def on_merge_request_review_requested(self, e, s):
        self._edge_event(e, s, "merge_request", "REVIEWER", f"user:{s}:{e.user_id}", True)

    def on_merge_request_review_request_removed(self, e, s):
        self._edge_event(e, s, "merge_request", "REVIEWER", f"user:{s}:{e.user_id}", False)

    def _milestoned(self, k, e, s):
        self.clear(k, "IN_MILESTONE")
        self.link(k, "IN_MILESTONE", f"milestone:{s}:{e.milestone_id}")

    def _demilestoned(self, k, e, s):
        if e.milestone_id is None:
            self.clear(k, "IN_MILESTONE")
        else:
            self.unlink(k, "IN_MILESTONE", f"milestone:{s}:{e.milestone_id}")

    def on_issue_milestoned(self, e, s):
        self._milestoned(f"issue:{s}:{e.issue_id}", e, s)

    def on_issue_demilestoned(self, e, s):
        self._demilestoned(f"issue:{s}:{e.issue_id}", e, s)

    def on_merge_request_milestoned(self, e, s):
        self._milestoned(f"merge_request:{s}:{e.merge_request_id}", e, s)

    def on_merge_request_demilestoned(self, e, s):
        self._demilestoned(f"merge_request:{s}:{e.merge_request_id}", e, s)

    def on_issue_closed(self, e, s):
        self.merge(f"issue:{s}:{e.issue_id}",
                   {"state": "closed", "closed_at": e.occurred_at, "updated_at": e.occurred_at})

    def on_issue_reopened(self, e, s):
        self.merge(f"issue:{s}:{e.issue_id}",
                   {"state": "opened", "closed_at": None, "updated_at": e.occurred_at})

    def _issue_link(self, e, s):
        a, b = f"issue:{s}:{e.issue_id}", f"issue:{s}:{e.target_issue_id}"
        return {"relates_to": (a, "RELATES_TO", b), "blocks": (a, "BLOCKS", b),
                "is_blocked_by": (b, "BLOCKS", a)}[e.link_type]

    def on_issue_linked(self, e, s):
        self.link(*self._issue_link(e, s))

    def on_issue_unlinked(self, e, s):
        self.unlink(*self._issue_link(e, s))

    def on_issue_transferred(self, e, s):
        k = f"issue:{s}:{e.issue_id}"
        if e.new_issue_id is not None and e.new_issue_id != e.issue_id:
            new = f"issue:{s}:{e.new_issue_id}"
            self.create(new, {"project_id": e.to_project_id, "iid": e.iid})
            self.attach(new, "IN_PROJECT", f"project:{s}:{e.to_project_id}")
            self.merge(k, {"state": "transferred", "updated_at": e.occurred_at})
            self.clear(k, "IN_PROJECT")
            self.link(k, "TRANSFERRED_TO", new)
            return
        patch = {"project_id": e.to_project_id, "updated_at": e.occurred_at}
        if e.iid is not None:
            patch["iid"] = e.iid
        self.merge(k, patch)
        self.clear(k, "IN_PROJECT")
        self.link(k, "IN_PROJECT", f"project:{s}:{e.to_project_id}")
        self.clear(k, "HAS_LABEL")
        self.clear(k, "IN_MILESTONE")

    def on_issue_deleted(self, e, s):
        self.delete(f"issue:{s}:{e.issue_id}")

    def _branch(self, s, project_id, name):
        k = f"ref:{s}:{project_id}:branch:{name}"
        self.ensure(k, {"project_id": project_id, "kind": "branch", "name": name})
        return k

    def on_merge_request_opened(self, e, s):
        k = f"merge_request:{s}:{e.merge_request_id}"
        self.create(k, {"project_id": e.project_id, "iid": e.iid, "title": e.title, "state": "opened",
                        "draft": e.draft, "source_branch": e.source_branch,
                        "target_branch": e.target_branch, "author_id": e.author_id,
                        "created_at": e.occurred_at})
        self.attach(k, "IN_PROJECT", f"project:{s}:{e.project_id}")
        self.link(f"user:{s}:{e.author_id}", "AUTHORED", k)
        self._links(e, s, k, e.reviewer_ids)
        src_project = e.source_project_id if e.source_project_id is not None else e.project_id
        self.link(k, "FROM_REF", self._branch(s, src_project, e.source_branch))
        self.attach(k, "INTO_REF", self._branch(s, e.project_id, e.target_branch))
        self.refs(k, e.description, s, e.project_id, "close")

    def on_merge_request_updated(self, e, s):
        k = f"merge_request:{s}:{e.merge_request_id}"
        patch = {"updated_at": e.occurred_at}
        for name in ("title", "target_branch", "draft"):
            if getattr(e, name) is not None:
                patch[name] = getattr(e, name)
        self.merge(k, patch)
        if e.target_branch is not None:
            self.clear(k, "INTO_REF")
            self.link(k, "INTO_REF", self._branch(s, e.project_id, e.target_branch))
        if e.description is not None:
            self.clear(k, "CLOSES")
            self.clear(k, "MENTIONS")
            self.refs(k, e.description, s, e.project_id, "close")

    def on_merge_request_merged(self, e, s):
        k = f"merge_request:{s}:{e.merge_request_id}"
        patch = {"state": "merged", "merged_at": e.occurred_at, "updated_at": e.occurred_at}
        if e.merge_commit_sha is not None:
            patch["merge_commit_sha"] = e.merge_commit_sha
        self.merge(k, patch)
        if e.merge_commit_sha:
            c = f"commit:{s}:{e.merge_commit_sha.lower()}"
            self.ensure(c, {"sha": e.merge_commit_sha.lower()})
            self.link(k, "MERGED_AS", c)

    def on_merge_request_closed(self, e, s):
        self.merge(f"merge_request:{s}:{e.merge_request_id}",
                   {"state": "closed", "closed_at": e.occurred_at, "updated_at": e.occurred_at})

    def on_merge_request_reopened(self, e, s):
        self.merge(f"merge_request:{s}:{e.merge_request_id}",
                   {"state": "opened", "closed_at": None, "updated_at": e.occurred_at})

    def on_comment_created(self, e, s):
        k = f"comment:{s}:{e.comment_id}"
        self.create(k, {"project_id": e.project_id, "target_type": e.target_type,
                        "author_id": e.author_id, "created_at": e.occurred_at})
        self.link(f"user:{s}:{e.author_id}", "AUTHORED", k)
        if e.target_type in ("issue", "merge_request") and e.target_id is not None:
            self.link(k, "COMMENTED_ON", f"{e.target_type}:{s}:{e.target_id}")
        elif e.target_type in ("issue", "merge_request") and e.target_iid is not None:
            target = self.numbered(e.target_type, s, e.project_id, e.target_iid)
            if target is not None and target != k:
                self.link(k, "COMMENTED_ON", target)
        elif e.target_type == "commit" and e.target_sha:
            self.link(k, "COMMENTED_ON", f"commit:{s}:{e.target_sha.lower()}")
        self.refs(k, e.body, s, e.project_id, "mention")

    def on_comment_edited(self, e, s):
        k = f"comment:{s}:{e.comment_id}"
        self.merge(k, {"updated_at": e.occurred_at})
        self.clear(k, "MENTIONS")
        self.refs(k, e.body, s, e.project_id, "mention")

    def on_comment_deleted(self, e, s):
        self.delete(f"comment:{s}:{e.comment_id}")

    def on_commits_pushed(self, e, s):
        kind, name = ("tag", e.ref[10:]) if e.ref.startswith("refs/tags/") else ("branch", e.ref[11:])
        r = f"ref:{s}:{e.project_id}:{kind}:{name}"
        p = f"project:{s}:{e.project_id}"
        self.set(r, {"project_id": e.project_id, "kind": kind, "name": name, "head": e.after})
        self.link(r, "IN_PROJECT", p)
        if e.actor is not None:
            self.link(f"user:{s}:{e.actor.id}", "PUSHED", r)
        for c in e.commits:
            k = f"commit:{s}:{c.sha.lower()}"
            self.create(k, {"sha": c.sha.lower(), "title": c.message.split("\n")[0],
                            "author_name": c.author_name, "author_email": c.author_email,
                            "authored_at": c.timestamp})
            self.link(k, "IN_PROJECT", p)
            if c.author_id is not None:
                self.link(f"user:{s}:{c.author_id}", "AUTHORED", k)
            self.refs(k, c.message, s, e.project_id, "push" if kind == "branch" else "mention", name)

    def on_ref_created(self, e, s):
        r = f"ref:{s}:{e.project_id}:{e.ref_type}:{e.ref}"
        self.create(r, {"project_id": e.project_id, "kind": e.ref_type, "name": e.ref, "head": e.sha})
        self.link(r, "IN_PROJECT", f"project:{s}:{e.project_id}")

    def on_ref_deleted(self, e, s):
        self.delete(f"ref:{s}:{e.project_id}:{e.ref_type}:{e.ref}")


def model_dump(model: Model):
    return ({k: v for k, v in model.nodes.items()}, dict(model.edges))


def store_dump(graph):
    dump = export(graph)
    return {k: props for k, (_, props) in dump.nodes.items()}, dump.edges


def run_memory(events, *, precise: bool, splits=()):
    graph = MemoryGraph()
    cuts = sorted({c for c in splits if 0 < c < len(events)})
    start = 0
    for cut in [*cuts, len(events)]:
        graph.apply_events(events[start:cut], precise=precise)
        start = cut
    return graph


# --- the properties --------------------------------------------------------------

def test_every_event_type_has_a_handler():
    """apply() knows every canonical event type."""
    assert HANDLED_TYPES == set(EVENT_TYPES)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_lists(), st.lists(st.integers(0, 40), max_size=4), st.booleans())
def test_random_sequences_match_the_reference_model(events, splits, precise):
    """Any event sequence, applied in any batches, precise or blind, gives the model's graph."""
    model = Model()
    for event in events:
        model.apply(event)
    graph = run_memory(events, precise=precise, splits=splits)
    assert store_dump(graph) == model_dump(model)
    assert check_derived(graph) == []


@settings(max_examples=150, deadline=None)
@given(event_lists(max_size=25))
def test_precise_change_records_replay_to_the_same_graph(events):
    """Change records of a precise apply describe exactly what changed, in order."""
    graph = MemoryGraph()
    changes = graph.apply_events(events, precise=True)
    from projections.model.keys import format_key
    nodes, edges = {}, {}
    for _, kind, key, edge, dst, props, _changed in changes:
        if kind == 0:
            nodes[format_key(key)] = props
        elif kind == 1:
            nodes.pop(format_key(key), None)
        elif kind in (2, 3):
            edges[(key, edge, dst)] = props
        else:
            edges.pop((key, edge, dst), None)
    dumped_nodes, dumped_edges = store_dump(graph)
    assert nodes == dumped_nodes
    assert len(edges) == len(dumped_edges)


@settings(max_examples=150, deadline=None)
@given(event_lists(), st.booleans())
def test_write_sets_come_out_sorted_with_each_key_once(events, precise):
    """Every table's writes are in key order, each once: the store puts them in one pass."""
    overlay = Overlay(MemoryGraph(), precise=precise)
    for position, event in enumerate(events, start=1):
        overlay.apply(apply(event), position)
    ws = overlay.finish()
    for items in [*ws.nodes.values(), *ws.stubs.values(), *ws.creates.values(),
                  *ws.node_dels.values(), *ws.out_puts.values(), *ws.in_puts.values(), *ws.out_dels.values(), ws.tombs,
                  ws.eprops_puts, ws.eprops_dels, ws.idx_puts, ws.idx_dels, ws.lookup_puts,
                  ws.lookup_dels]:
        assert items == sorted(set(items))


def test_overlay_rejects_unknown_mutations():
    """A mutation code the overlay does not know is an error, not a silent no-op."""
    from events.errors import InvalidEvent

    with pytest.raises(InvalidEvent):
        Overlay(MemoryGraph(), precise=False).apply([(99, b"x")])
