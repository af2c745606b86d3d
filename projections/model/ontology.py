"""The SDLC graph's ontology, declared in one place.

Node types with their properties, edge types with their source and target
types, the property indexes the queries use, and which containment edges
delete their sources along with their target. Changing anything here, or the
apply logic, means a new :data:`VERSION`: the projector then rebuilds the
graph beside the active version and promotes it when it has caught up.

Every node is identified by ``(type, source, native id)``: GitLab's issue 12
and GitHub's issue 12 are different nodes (see :mod:`projections.model.keys`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "NAME",
    "VERSION",
    "NodeType",
    "EdgeType",
    "Index",
    "NODE_TYPES",
    "EDGE_TYPES",
    "INDEXES",
    "node_type",
    "edge_type",
    "ontology_dict",
]

#: The projection's name: its directory under ``<data>/projections/``.
NAME = "graph"
#: Bump on any change to this module or to the apply step. History: 1, the first
#: graph; 2, a creation logged after later events about its node fills in what
#: they left unset instead of replacing what they set (``mutations.CREATE``,
#: ``mutations.ATTACH``); 3, what payloads say about related objects (context facts),
#: project settings, transfers that make a new issue, projects found by full path, and
#: updates ordered by ``occurred_at`` whatever their arrival (``projections.fold.stamps``).
VERSION = 3


@dataclass(frozen=True)
class NodeType:
    """A kind of node: ``code`` is its one-byte tag in keys, ``props`` name -> type."""

    name: str
    code: int
    id_kind: str  # "int", "sha" or "ref": how the native id is written
    props: dict[str, str]
    doc: str


@dataclass(frozen=True)
class EdgeType:
    """A kind of directed edge between the given source and target node types.

    ``cascade`` names the source types that are deleted with their target
    (an issue goes with its project); ``orphan_cascade`` those deleted only
    when no edge of this type is left (a commit goes with its last project).
    """

    name: str
    code: int
    sources: tuple[str, ...]
    targets: tuple[str, ...]
    doc: str
    props: dict[str, str] = field(default_factory=dict)
    cascade: tuple[str, ...] = ()
    orphan_cascade: tuple[str, ...] = ()


@dataclass(frozen=True)
class Index:
    """An equality index on ``fields`` of a node type (in order: a prefix is usable)."""

    code: int
    node_type: str
    fields: tuple[str, ...]


_TIME = "datetime"

NODE_TYPES: tuple[NodeType, ...] = (
    NodeType("Group", 1, "int", {"name": "str", "path": "str", "parent_id": "int"},
             "A group (GitLab) or organisation (GitHub); groups nest."),
    NodeType("Project", 2, "int",
             {"name": "str", "path": "str", "group_id": "int", "default_branch": "str",
              "visibility": "str", "archived": "bool", "forked_from_id": "int",
              "created_at": _TIME},
             "A project (repository). Its full path is its groups' paths and its own."),
    NodeType("User", 3, "int", {"username": "str", "name": "str"}, "A person or bot account."),
    NodeType("Issue", 4, "int",
             {"project_id": "int", "iid": "int", "title": "str", "state": "str",
              "confidential": "bool", "author_id": "int", "created_at": _TIME,
              "closed_at": _TIME, "updated_at": _TIME},
             "An issue; ``iid`` is its number inside its project (``#12``)."),
    NodeType("MergeRequest", 5, "int",
             {"project_id": "int", "iid": "int", "title": "str", "state": "str", "draft": "bool",
              "source_branch": "str", "target_branch": "str", "author_id": "int",
              "merge_commit_sha": "str", "created_at": _TIME, "merged_at": _TIME,
              "closed_at": _TIME, "updated_at": _TIME},
             "A merge request (GitLab) or pull request (GitHub)."),
    NodeType("Label", 6, "int", {"name": "str", "color": "str", "project_id": "int", "group_id": "int"},
             "A label of a project or a group."),
    NodeType("Milestone", 7, "int",
             {"title": "str", "state": "str", "due_date": "str", "project_id": "int"},
             "A milestone of a project."),
    NodeType("Commit", 8, "sha",
             {"sha": "str", "title": "str", "author_name": "str", "author_email": "str",
              "authored_at": _TIME},
             "A commit, by sha; the same commit in a fork is the same node."),
    NodeType("Comment", 9, "int",
             {"project_id": "int", "target_type": "str", "author_id": "int", "created_at": _TIME,
              "updated_at": _TIME},
             "A comment (note) on an issue, merge request or commit; text stays in the log."),
    NodeType("Ref", 10, "ref", {"project_id": "int", "kind": "str", "name": "str", "head": "str"},
             "A branch or tag of a project, with the sha it points at."),
)

_ISSUABLE = ("Issue", "MergeRequest")

EDGE_TYPES: tuple[EdgeType, ...] = (
    EdgeType("IN_GROUP", 1, ("Project", "Group", "Label"), ("Group",),
             "Containment in a group.", cascade=("Project", "Group", "Label")),
    EdgeType("IN_PROJECT", 2, ("Issue", "MergeRequest", "Label", "Milestone", "Ref", "Commit"),
             ("Project",), "Containment in a project.",
             cascade=("Issue", "MergeRequest", "Label", "Milestone", "Ref"),
             orphan_cascade=("Commit",)),
    EdgeType("AUTHORED", 3, ("User",), ("Issue", "MergeRequest", "Commit", "Comment"),
             "Who wrote it."),
    EdgeType("ASSIGNED_TO", 4, _ISSUABLE, ("User",), "Assignees."),
    EdgeType("REVIEWER", 5, ("MergeRequest",), ("User",), "Requested reviewers."),
    EdgeType("HAS_LABEL", 6, _ISSUABLE, ("Label",), "Labels."),
    EdgeType("IN_MILESTONE", 7, _ISSUABLE, ("Milestone",), "Milestone."),
    EdgeType("CLOSES", 8, ("Commit", "MergeRequest"), ("Issue",),
             "A closing keyword (``Closes #12``) in a commit pushed to the default branch"
             " or in a merge request's description."),
    EdgeType("MENTIONS", 9, ("Issue", "MergeRequest", "Comment", "Commit"), ("Issue",),
             "A plain reference (``#12``, ``group/project#12``) in text."),
    EdgeType("RELATES_TO", 10, ("Issue",), ("Issue",), "A \"relates to\" issue link."),
    EdgeType("BLOCKS", 11, ("Issue",), ("Issue",), "A \"blocks\" issue link."),
    EdgeType("MEMBER_OF", 12, ("User",), ("Project", "Group"), "Membership, with its role.",
             props={"role": "str"}),
    EdgeType("COMMENTED_ON", 13, ("Comment",), ("Issue", "MergeRequest", "Commit"),
             "What a comment is about.", cascade=("Comment",)),
    EdgeType("FORKED_FROM", 14, ("Project",), ("Project",), "Fork of."),
    EdgeType("PUSHED", 15, ("User",), ("Ref",), "Who pushed to a branch."),
    EdgeType("FROM_REF", 16, ("MergeRequest",), ("Ref",), "A merge request's source branch."),
    EdgeType("INTO_REF", 17, ("MergeRequest",), ("Ref",), "A merge request's target branch."),
    EdgeType("MERGED_AS", 18, ("MergeRequest",), ("Commit",), "The merge commit."),
    EdgeType("TRANSFERRED_TO", 19, ("Issue",), ("Issue",),
             "An issue moved to another project as a new issue (GitHub): the old one points at it."),
)

INDEXES: tuple[Index, ...] = (
    Index(1, "Issue", ("project_id", "state")),
    Index(2, "Issue", ("state",)),
    Index(3, "MergeRequest", ("project_id", "state")),
    Index(4, "MergeRequest", ("state",)),
    Index(5, "User", ("username",)),
    Index(6, "Label", ("project_id", "name")),
    Index(7, "Milestone", ("project_id", "state")),
)

_NODES_BY_NAME = {t.name: t for t in NODE_TYPES}
_NODES_BY_LOWER = {t.name.lower(): t for t in NODE_TYPES} | {
    "mr": _NODES_BY_NAME["MergeRequest"], "merge_request": _NODES_BY_NAME["MergeRequest"],
    "branch": _NODES_BY_NAME["Ref"], "tag": _NODES_BY_NAME["Ref"],
}
_EDGES_BY_NAME = {t.name: t for t in EDGE_TYPES}


def node_type(name: str) -> NodeType:
    """A node type by name, case-insensitively (``issue``, ``MergeRequest``, ``mr``)."""
    found = _NODES_BY_NAME.get(name) or _NODES_BY_LOWER.get(name.lower())
    if found is None:
        from projections.errors import QueryError

        known = ", ".join(t.name for t in NODE_TYPES)
        raise QueryError(f"unknown node type {name!r} - known types: {known}")
    return found


def edge_type(name: str) -> EdgeType:
    """An edge type by name, case-insensitively (``closes``, ``HAS_LABEL``)."""
    found = _EDGES_BY_NAME.get(name.upper())
    if found is None:
        from projections.errors import QueryError

        known = ", ".join(t.name for t in EDGE_TYPES)
        raise QueryError(f"unknown edge type {name!r} - known types: {known}")
    return found


def ontology_dict() -> dict:
    """The ontology as plain data (``fleet schema``-style output, docs, checks)."""
    return {
        "name": NAME,
        "version": VERSION,
        "nodes": [{"type": t.name, "props": t.props, "doc": t.doc} for t in NODE_TYPES],
        "edges": [
            {"type": e.name, "sources": list(e.sources), "targets": list(e.targets),
             "props": e.props, "doc": e.doc}
            for e in EDGE_TYPES
        ],
        "indexes": [{"node_type": i.node_type, "fields": list(i.fields)} for i in INDEXES],
    }
