"""The apply step's registry and shared vocabulary: ``apply``, ``on``, codes and helpers.

Handlers register per event type with :func:`on` from the modules of this
package; see the package docstring for what the step may and may not do.
"""

from __future__ import annotations

from typing import Callable

from events.references import parse_references
from events.types import EVENT_TYPES, Context, Event
from projections.fold import stamps
from projections.model import mutations as m
from projections.model.keys import CODES, pack_int, source_prefix
from projections.model.ontology import EDGE_TYPES

__all__ = ["apply", "context", "handled_types", "on"]

_E = {e.name: e.code for e in EDGE_TYPES}
IN_GROUP, IN_PROJECT, AUTHORED, ASSIGNED_TO = _E["IN_GROUP"], _E["IN_PROJECT"], _E["AUTHORED"], _E["ASSIGNED_TO"]
REVIEWER, HAS_LABEL, IN_MILESTONE = _E["REVIEWER"], _E["HAS_LABEL"], _E["IN_MILESTONE"]
MENTIONS, CLOSES, RELATES_TO, BLOCKS = _E["MENTIONS"], _E["CLOSES"], _E["RELATES_TO"], _E["BLOCKS"]
MEMBER_OF, COMMENTED_ON, FORKED_FROM, PUSHED = _E["MEMBER_OF"], _E["COMMENTED_ON"], _E["FORKED_FROM"], _E["PUSHED"]
FROM_REF, INTO_REF, MERGED_AS = _E["FROM_REF"], _E["INTO_REF"], _E["MERGED_AS"]
TRANSFERRED_TO = _E["TRANSFERRED_TO"]

GROUP, PROJECT, USER = CODES["Group"], CODES["Project"], CODES["User"]
ISSUE, MR, LABEL = CODES["Issue"], CODES["MergeRequest"], CODES["Label"]
MILESTONE, COMMENT = CODES["Milestone"], CODES["Comment"]

SET, MERGE, ENSURE, DELETE, CREATE = m.SET, m.MERGE, m.ENSURE, m.DELETE, m.CREATE
LINK, UNLINK, CLEAR, REF, ATTACH = m.LINK, m.UNLINK, m.CLEAR, m.REF, m.ATTACH
LINK_IID, JOIN_GROUP, STAMP = m.LINK_IID, m.JOIN_GROUP, m.STAMP

TITLE_MAX = 200

T = EVENT_TYPES
Handler = Callable[[Event, bytes, list], None]
_HANDLERS: dict[type, Handler] = {}


def apply(event: Event) -> list[m.Mutation]:
    """The mutations ``event`` implies, in order. Raises ``InvalidEvent`` for nonsense."""
    s = source_prefix(event.source)
    # what the actor's names and the context say stays beneath what the event itself says
    context_at = stamps.at(event.occurred_at, own=False)
    out: list[m.Mutation] = [(STAMP, context_at)]
    actor = event.actor
    if actor is not None and actor.username is not None:
        # Webhooks rarely announce users: the actor's names seed a user node.
        props = {"username": actor.username}
        if actor.name is not None:
            props["name"] = actor.name
        out.append((ENSURE, USER + s + pack_int(actor.id), props))
    if event.context is not None:
        context(event.context, s, out)
    out.append((STAMP, context_at + stamps.OWN))
    _HANDLERS[type(event)](event, s, out)
    return out


def context(ctx: Context, s: bytes, out: list) -> None:
    """A webhook's context facts: each object created beneath what it has, its stated
    containment attached unless it already has one (see README "Order")."""
    for g in ctx.groups:
        k = GROUP + s + pack_int(g.id)
        out.append((CREATE, k, props(name=g.name, path=g.path, parent_id=g.parent_id)))
        if g.parent_id is not None:
            out.append((ATTACH, k, IN_GROUP, GROUP + s + pack_int(g.parent_id)))
    for p in ctx.projects:
        k = PROJECT + s + pack_int(p.id)
        out.append((CREATE, k, props(name=p.name, path=p.path, group_id=p.group_id,
                                      default_branch=p.default_branch, visibility=p.visibility)))
        if p.group_id is not None:
            out.append((ATTACH, k, IN_GROUP, GROUP + s + pack_int(p.group_id)))
    for u in ctx.users:
        out.append((CREATE, USER + s + pack_int(u.id), props(username=u.username, name=u.name)))
    for ms in ctx.milestones:
        k = MILESTONE + s + pack_int(ms.id)
        out.append((CREATE, k, props(title=ms.title, state=ms.state, due_date=ms.due_date,
                                      project_id=ms.project_id)))
        if ms.project_id is not None:
            out.append((ATTACH, k, IN_PROJECT, PROJECT + s + pack_int(ms.project_id)))
    for code, items in ((ISSUE, ctx.issues), (MR, ctx.merge_requests)):
        for i in items:
            k = code + s + pack_int(i.id)
            title = i.title[:TITLE_MAX] if i.title is not None else None
            extra = ({"source_branch": i.source_branch, "target_branch": i.target_branch}
                     if code == MR else {})
            out.append((CREATE, k, props(project_id=i.project_id, iid=i.iid, title=title,
                                          state=i.state, **extra)))
            out.append((ATTACH, k, IN_PROJECT, PROJECT + s + pack_int(i.project_id)))


def on(*types: type) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for t in types:
            _HANDLERS[t] = fn
        return fn

    return register


def platform(event: Event) -> str | None:
    return "github" if event.source == "github" else None


def refs(out: list, src: bytes, text: str | None, event: Event, s: bytes, project_id: int,
          mode: int, branch: str | None = None) -> None:
    if not text or ("#" not in text and "/issues/" not in text and "/work_items/" not in text):
        return
    for ref in parse_references(text, platform=platform(event)):  # type: ignore[arg-type]
        kind = mode if ref.kind == "closes" else m.MENTION
        out.append((REF, src, kind, s, project_id, ref.number, ref.project_path, branch))


def props(**values: object) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def handled_types() -> frozenset[str]:
    """The tags of the event types a handler is registered for."""
    return frozenset(cls.__struct_config__.tag for cls in _HANDLERS)
