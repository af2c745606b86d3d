"""Groups, projects, users, memberships, labels and milestones -> mutations."""

from __future__ import annotations

from events.errors import InvalidEvent
from projections.fold.apply.registry import (
    ATTACH,
    CLEAR,
    CREATE,
    DELETE,
    FORKED_FROM,
    GROUP,
    IN_GROUP,
    IN_PROJECT,
    JOIN_GROUP,
    LABEL,
    LINK,
    MEMBER_OF,
    MERGE,
    MILESTONE,
    PROJECT,
    UNLINK,
    USER,
    T,
    on,
    props,
)
from projections.model.keys import pack_int

# --- groups, projects, users, members ------------------------------------



@on(T["group.created"])
def _group_created(e, s, out):
    g = GROUP + s + pack_int(e.group_id)
    out.append((CREATE, g, props(name=e.name, path=e.path, parent_id=e.parent_id)))
    if e.parent_id is not None:
        out.append((ATTACH, g, IN_GROUP, GROUP + s + pack_int(e.parent_id)))


@on(T["group.updated"])
def _group_updated(e, s, out):
    patch = props(name=e.name, path=e.path)
    if patch:
        out.append((MERGE, GROUP + s + pack_int(e.group_id), patch))


@on(T["group.deleted"])
def _group_deleted(e, s, out):
    out.append((DELETE, GROUP + s + pack_int(e.group_id)))


def _project(e, s, out, **extra):
    p = PROJECT + s + pack_int(e.project_id)
    out.append((CREATE, p, props(name=e.name, path=e.path, group_id=e.group_id, archived=False,
                                  created_at=e.occurred_at, **extra)))
    if e.group_id is not None:
        out.append((ATTACH, p, IN_GROUP, GROUP + s + pack_int(e.group_id)))
    return p


@on(T["project.created"])
def _project_created(e, s, out):
    _project(e, s, out, default_branch=e.default_branch, visibility=e.visibility)


@on(T["project.forked"])
def _project_forked(e, s, out):
    p = _project(e, s, out, forked_from_id=e.forked_from_id)
    out.append((LINK, p, FORKED_FROM, PROJECT + s + pack_int(e.forked_from_id), None))


@on(T["project.renamed"])
def _project_renamed(e, s, out):
    out.append((MERGE, PROJECT + s + pack_int(e.project_id), {"name": e.name, "path": e.path}))


@on(T["project.transferred"])
def _project_transferred(e, s, out):
    p = PROJECT + s + pack_int(e.project_id)
    out.append((MERGE, p, {"group_id": e.group_id, "path": e.path}))
    out.append((CLEAR, p, IN_GROUP))
    if e.group_id is not None:
        out.append((LINK, p, IN_GROUP, GROUP + s + pack_int(e.group_id), None))
    elif "/" in e.path:  # a full path: the group at its namespace, if the graph has it
        out.append((JOIN_GROUP, p, s, e.path.rpartition("/")[0]))


@on(T["project.updated"])
def _project_updated(e, s, out):
    patch = props(name=e.name, path=e.path, default_branch=e.default_branch,
                  visibility=e.visibility)
    if patch:
        out.append((MERGE, PROJECT + s + pack_int(e.project_id), patch))


@on(T["project.archived"], T["project.unarchived"])
def _project_archived(e, s, out):
    archived = e.__struct_config__.tag == "project.archived"
    out.append((MERGE, PROJECT + s + pack_int(e.project_id), {"archived": archived}))


@on(T["project.deleted"])
def _project_deleted(e, s, out):
    out.append((DELETE, PROJECT + s + pack_int(e.project_id)))


@on(T["user.created"])
def _user_created(e, s, out):
    out.append((CREATE, USER + s + pack_int(e.user_id), props(username=e.username, name=e.name)))


@on(T["user.updated"])
def _user_updated(e, s, out):
    patch = props(username=e.username, name=e.name)
    if patch:
        out.append((MERGE, USER + s + pack_int(e.user_id), patch))


@on(T["user.deleted"])
def _user_deleted(e, s, out):
    out.append((DELETE, USER + s + pack_int(e.user_id)))


def _membership(e, s) -> bytes:
    if e.project_id is not None:
        return PROJECT + s + pack_int(e.project_id)
    if e.group_id is not None:
        return GROUP + s + pack_int(e.group_id)
    raise InvalidEvent("schema", f"{e.__struct_config__.tag} names neither project_id nor group_id")


@on(T["member.added"], T["member.updated"])
def _member_added(e, s, out):
    target = _membership(e, s)
    props = {"role": e.role} if e.role is not None else None
    out.append((LINK, USER + s + pack_int(e.user_id), MEMBER_OF, target, props))


@on(T["member.removed"])
def _member_removed(e, s, out):
    out.append((UNLINK, USER + s + pack_int(e.user_id), MEMBER_OF, _membership(e, s)))


# --- labels and milestones -----------------------------------------------


@on(T["label.created"])
def _label_created(e, s, out):
    lk = LABEL + s + pack_int(e.label_id)
    out.append((CREATE, lk, props(name=e.name, color=e.color, project_id=e.project_id,
                                   group_id=e.group_id)))
    if e.project_id is not None:
        out.append((ATTACH, lk, IN_PROJECT, PROJECT + s + pack_int(e.project_id)))
    elif e.group_id is not None:
        out.append((ATTACH, lk, IN_GROUP, GROUP + s + pack_int(e.group_id)))


@on(T["label.updated"])
def _label_updated(e, s, out):
    patch = props(name=e.name, color=e.color)
    if patch:
        out.append((MERGE, LABEL + s + pack_int(e.label_id), patch))


@on(T["label.deleted"])
def _label_deleted(e, s, out):
    out.append((DELETE, LABEL + s + pack_int(e.label_id)))


@on(T["milestone.created"])
def _milestone_created(e, s, out):
    mk = MILESTONE + s + pack_int(e.milestone_id)
    out.append((CREATE, mk, props(title=e.title, state=e.state, due_date=e.due_date,
                                   project_id=e.project_id)))
    if e.project_id is not None:
        out.append((ATTACH, mk, IN_PROJECT, PROJECT + s + pack_int(e.project_id)))


@on(T["milestone.updated"])
def _milestone_updated(e, s, out):
    patch = props(title=e.title, state=e.state, due_date=e.due_date)
    if patch:
        out.append((MERGE, MILESTONE + s + pack_int(e.milestone_id), patch))


@on(T["milestone.deleted"])
def _milestone_deleted(e, s, out):
    out.append((DELETE, MILESTONE + s + pack_int(e.milestone_id)))
