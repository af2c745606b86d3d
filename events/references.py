"""Issue references in free text: closing keywords and plain mentions.

``parse_references("Fixes #12, see group/sub/project#3")`` finds that the text
closes issue 12 of its own project and mentions issue 3 of another one. The
grammar follows the platforms' defaults:

* GitLab: ``close/closes/closed/closing``, ``fix/fixes/fixed/fixing``,
  ``resolve/resolves/resolved/resolving``,
  ``implement/implements/implemented/implementing``, an optional colon, an
  optional ``issue``/``issues`` word and a list of references
  (``Closes #1, #2 and group/project#3``), each ``#N``, ``path#N`` or an
  issue URL (``https://host/group/project/-/issues/N``).
* GitHub: ``close/closes/closed``, ``fix/fixes/fixed``,
  ``resolve/resolves/resolved`` before one ``#N``, ``owner/repo#N`` or issue
  URL; a list only closes its first item.

Everything else of the form ``#N`` or ``path#N`` (a path has at least one
``/``) is a mention. Nothing is found inside words (``issue#1``), URLs
(``https://x.org/page#1``), code spans or fenced code blocks, nor in
code-like tokens (``abc#1``, ``&#12;``). Case is ignored.

Pure and allocation-light: the projection runs it over every description,
comment and commit message, so the patterns are compiled once, here, and run
only where a reference can start: mentions from their ``#`` (a literal the
engine skips to), closing phrases from where a keyword stem starts
(``str.find`` on the lower-cased text; the rare text beyond ASCII is scanned
whole). A scan trying the closing pattern at every position cost more than
all the rest of the parse.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal

from msgspec import Struct

__all__ = ["Platform", "Reference", "parse_references"]

Platform = Literal["gitlab", "github"]


class Reference(Struct, frozen=True):
    """One referenced issue: ``project_path`` is None for the text's own project."""

    kind: Literal["closes", "mentions"]
    number: int
    project_path: str | None


# A path segment as both platforms allow it (GitLab: letters, digits, "_", "-", ".").
_SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9_.\-]*"
_PATH = rf"{_SEGMENT}(?:/{_SEGMENT})+"
# Iids fit in 18 digits; a longer run of digits is not a reference at all.
_NUMBER = r"[0-9]{1,18}(?![\w])"
# Not a reference when glued to a word, a URL, an HTML entity or another ref.
_GLUE_CHARS = r"[\w/.:@&#+\-]"
_BOUNDARY = rf"(?<!{_GLUE_CHARS})"


def _ref(named: bool) -> str:
    """One reference: an issue URL or ``[path]#N``; groups named only once per pattern."""

    def group(name: str) -> str:
        return f"?P<{name}>" if named else "?:"

    url = (
        rf"https?://[^\s/]+/({group('url_path')}{_PATH}?)/(?:-/)?(?:issues|work_items)/"
        rf"({group('url_number')}{_NUMBER})"
    )
    short = rf"{_BOUNDARY}(?:({group('path')}{_PATH}))?#({group('number')}{_NUMBER})"
    return f"(?:{url}|{short})"


_SEPARATOR = r"(?:[ \t]*,?[ \t]+and[ \t]+|[ \t]*,[ \t]*|[ \t]+)"

_GITLAB_KEYWORD = (
    r"clos(?:e[sd]?|ing)|fix(?:e[sd]|ing)?|resolv(?:e[sd]?|ing)|implement(?:s|ed|ing)?"
)
_GITHUB_KEYWORD = r"close[sd]?|fix(?:e[sd])?|resolve[sd]?"
_COLON = r":?[ \t]+"

_CLOSING = {
    "gitlab": re.compile(
        rf"(?<![\w\-])(?:{_GITLAB_KEYWORD}){_COLON}(?:issues?[ \t]+)?"
        rf"(?P<refs>{_ref(False)}(?:{_SEPARATOR}{_ref(False)})*)",
        re.IGNORECASE,
    ),
    "github": re.compile(
        rf"(?<![\w\-])(?:{_GITHUB_KEYWORD}){_COLON}(?P<refs>{_ref(False)})",
        re.IGNORECASE,
    ),
}
# Cheap substring checks that rule the closing pattern out for most texts.
_STEMS = {"gitlab": ("clos", "fix", "resolv", "implement"), "github": ("clos", "fix", "resolv")}
_REF = re.compile(_ref(True))
# Mentions are found from their "#" (a literal the engine scans for quickly),
# then the path, if any, is read backwards; the rules match _BOUNDARY/_PATH.
_HASH = re.compile(rf"#({_NUMBER})")
_PATH_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-/")
_FULL_PATH = re.compile(_PATH)
_GLUE = re.compile(_GLUE_CHARS)
# Fenced blocks first (``` or ~~~, to the closing fence or the end), then spans.
_CODE = re.compile(
    r"^[ \t]*(?P<fence>`{3,}|~{3,})[^\n]*\n.*?(?:^[ \t]*(?P=fence)[ \t]*$|\Z)"
    r"|(?P<ticks>`+)(?:[^\n]|\n(?![ \t]*\n))+?(?P=ticks)",
    re.MULTILINE | re.DOTALL,
)


def _without_code(text: str) -> str:
    if "`" not in text and "~~~" not in text:
        return text
    return _CODE.sub(" ", text)


def _mentions(text: str) -> Iterator[tuple[int, str, str | None]]:
    """(position, number, path or None) of every ``#N`` / ``path#N`` mention."""
    for match in _HASH.finditer(text):
        end = start = match.start()
        while start > 0 and text[start - 1] in _PATH_CHARS:
            start -= 1
        if start > 0 and _GLUE.match(text, start - 1):
            continue  # glued to a word, URL, entity or another reference
        if start == end:
            yield start, match.group(1), None
        elif _FULL_PATH.fullmatch(text, start, end):
            yield start, match.group(1), text[start:end]
        # else a code-like token such as abc#1: no reference


def _stem_starts(lowered: str, stems: tuple[str, ...]) -> list[int]:
    """Every position where one of ``stems`` starts in ``lowered``, ascending."""
    starts = []
    for stem in stems:
        at = lowered.find(stem)
        while at >= 0:
            starts.append(at)
            at = lowered.find(stem, at + len(stem))
    starts.sort()
    return starts


def _closings(text: str, grammar: Platform) -> Iterator[re.Match]:
    """The closing phrases of ``text``, left to right and without overlap.

    The same matches as ``finditer``, but the pattern is only tried where a
    keyword stem starts. That is exact for ASCII text, whose lower-cased copy
    keeps every position; other text, where case mapping may shift positions,
    is scanned whole (when it holds a stem at all).
    """
    pattern, stems = _CLOSING[grammar], _STEMS[grammar]
    lowered = text.lower()
    if not text.isascii():
        if any(stem in lowered for stem in stems):
            yield from pattern.finditer(text)
        return
    end = 0
    for start in _stem_starts(lowered, stems):
        if start < end:
            continue  # inside the previous phrase's list of references
        closing = pattern.match(text, start)
        if closing is not None:
            end = closing.end()
            yield closing


def parse_references(text: str, *, platform: Platform | None = None) -> list[Reference]:
    """Every issue ``text`` closes or mentions, in order of first appearance.

    ``platform`` selects that platform's closing grammar; the default accepts
    GitLab's, which is a superset of GitHub's keywords. A target named several
    times appears once, as ``closes`` if any closing keyword names it.
    """
    if "#" not in text and "/issues/" not in text and "/work_items/" not in text:
        return []
    text = _without_code(text)
    # (number, lower-cased path) -> [first position, kind, path as first written]
    found: dict[tuple[int, str | None], list] = {}

    def add(position: int, kind: str, number: str, path: str | None) -> None:
        value = int(number)
        if value == 0:
            return
        key = (value, path.lower() if path else None)
        seen = found.get(key)
        if seen is None:
            found[key] = [position, kind, path]
            return
        if position < seen[0]:
            seen[0] = position
        if kind == "closes":
            seen[1] = "closes"

    for closing in _closings(text, platform or "gitlab"):
        offset = closing.start("refs")
        for ref in _REF.finditer(closing.group("refs")):
            if ref.group("url_number") is not None:
                add(offset + ref.start(), "closes", ref.group("url_number"), ref.group("url_path"))
            else:
                add(offset + ref.start(), "closes", ref.group("number"), ref.group("path"))
    for position, number, path in _mentions(text):
        add(position, "mentions", number, path)
    return [
        Reference(kind, number, path)
        for (number, _), (_, kind, path) in sorted(found.items(), key=lambda item: item[1][0])
    ]
