"""Issue references in free text: closing keywords and mentions, both platforms."""

from __future__ import annotations

import pytest

from events.references import Reference, parse_references


def closes(number: int, path: str | None = None) -> Reference:
    return Reference("closes", number, path)


def mentions(number: int, path: str | None = None) -> Reference:
    return Reference("mentions", number, path)


@pytest.mark.parametrize(
    "keyword",
    [
        "close",
        "closes",
        "closed",
        "closing",
        "fix",
        "fixes",
        "fixed",
        "fixing",
        "resolve",
        "resolves",
        "resolved",
        "resolving",
        "implement",
        "implements",
        "implemented",
        "implementing",
    ],
)
def test_every_gitlab_closing_keyword_closes(keyword):
    """Each of GitLab's default closing keywords closes the issue it names."""
    assert parse_references(f"{keyword} #7") == [closes(7)]


@pytest.mark.parametrize(
    "keyword",
    ["close", "closes", "closed", "fix", "fixes", "fixed", "resolve", "resolves", "resolved"],
)
def test_every_github_closing_keyword_closes(keyword):
    """Each of GitHub's closing keywords closes with the GitHub grammar."""
    assert parse_references(f"{keyword} #7", platform="github") == [closes(7)]


@pytest.mark.parametrize("keyword", ["closing", "fixing", "resolving", "implements"])
def test_gitlab_only_keywords_only_mention_on_github(keyword):
    """Keywords GitHub does not know leave the reference a mention there."""
    assert parse_references(f"{keyword} #7", platform="github") == [mentions(7)]


@pytest.mark.parametrize("text", ["CLOSES #3", "Fixes: #3", "fixed:  #3", "Resolves\t#3"])
def test_keywords_ignore_case_and_take_an_optional_colon(text):
    """Case does not matter and a colon may follow the keyword."""
    assert parse_references(text) == [closes(3)]


def test_gitlab_list_closes_every_item():
    """A GitLab list with commas and "and" closes every item, cross-project too."""
    text = "Closes #1, #2 and group/project#3"
    assert parse_references(text) == [closes(1), closes(2), closes(3, "group/project")]


def test_gitlab_issue_word_and_oxford_comma():
    """ "issues" may precede the list, and ", and" separates its last item."""
    assert parse_references("Fixes issues #1, #2, and #3") == [closes(1), closes(2), closes(3)]


def test_github_list_closes_only_the_first_item():
    """GitHub closes only the first item after a keyword; the rest are mentions."""
    assert parse_references("Fixes #8, #9", platform="github") == [closes(8), mentions(9)]


def test_github_owner_repo_reference_closes():
    """``owner/repo#N`` after a GitHub keyword closes that repository's issue."""
    assert parse_references("resolves octo-org/hello.world#14", platform="github") == [
        closes(14, "octo-org/hello.world")
    ]


def test_gitlab_subgroup_paths_are_kept_whole():
    """A GitLab path with subgroups is the reference's project path."""
    assert parse_references("Closes group/sub/project#3") == [closes(3, "group/sub/project")]
    assert parse_references("see a/b/c/d#4") == [mentions(4, "a/b/c/d")]


@pytest.mark.parametrize(
    ("text", "path", "number"),
    [
        ("Closes https://gitlab.example.com/group/sub/proj/-/issues/8", "group/sub/proj", 8),
        ("closes https://github.com/octo/repo/issues/15", "octo/repo", 15),
        ("Closes https://gitlab.com/g/p/-/work_items/9", "g/p", 9),
    ],
)
def test_issue_urls_after_a_keyword_close(text, path, number):
    """An issue URL after a closing keyword closes that issue."""
    assert parse_references(text) == [closes(number, path)]


def test_several_closing_phrases_in_one_text():
    """Each closing phrase closes its own list; a keyword inside a list starts nothing new."""
    text = "Fixes #1, #2. Later: closes group/p#3 and resolves #4\nfix #5"
    assert parse_references(text) == [closes(1), closes(2), closes(3, "group/p"), closes(4),
                                       closes(5)]


@pytest.mark.parametrize("platform", [None, "github"])
def test_closing_keywords_in_non_ascii_text(platform):
    """Text beyond ASCII closes and mentions like any other."""
    text = "Réparé: fixes #3 — voir #4 (straße/ü#5 is no path)"
    assert parse_references(text, platform=platform) == [closes(3), mentions(4)]


def test_plain_mentions_in_order_of_appearance():
    """``#N`` and ``path#N`` outside closing phrases are mentions, in text order."""
    text = "See #12 (and group/project#5), also [#6]: done #7."
    assert parse_references(text) == [
        mentions(12),
        mentions(5, "group/project"),
        mentions(6),
        mentions(7),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "issue#1",
        "abc#1",
        "C#9 code",
        "&#12; entity",
        "https://example.org/page#1",
        "http://example.org/a/b#2",
        "example.org/#3",
        "#13abc",
        "#0",
        "#1234567890123456789012",
        "##4 heading",
    ],
)
def test_not_references(text):
    """Words, URLs, entities, code-like tokens and odd numbers hold no reference."""
    assert parse_references(text) == []


@pytest.mark.parametrize("text", ["prefixes #7", "autoclose #7", "fix-up #7"])
def test_keyword_inside_a_longer_word_does_not_close(text):
    """A keyword that is part of a longer word ("prefixes") leaves a mention."""
    assert parse_references(text) == [mentions(7)]


def test_code_spans_and_fenced_blocks_are_skipped():
    """References inside inline code or fenced code blocks do not count."""
    text = "use `#3` here\n```python\nfixes #1\n```\n~~~\n#4\n~~~\nafter #2"
    assert parse_references(text) == [mentions(2)]


def test_closing_wins_over_mention_of_the_same_target():
    """A target both mentioned and closed appears once, as closes, at its first place."""
    assert parse_references("#6 then later fixes #6 and #7") == [closes(6), closes(7)]


def test_duplicates_collapse_case_insensitively_on_path():
    """The same cross-project target written twice in different case appears once."""
    text = "resolves owner/repo#14, mentions Owner/Repo#14"
    assert parse_references(text) == [closes(14, "owner/repo")]


def test_same_number_in_different_projects_is_kept_apart():
    """``#3`` and ``group/project#3`` are different targets."""
    assert parse_references("#3 and group/project#3") == [mentions(3), mentions(3, "group/project")]


def test_text_without_references_is_empty():
    """Text with no ``#`` and no issue URL yields nothing."""
    assert parse_references("") == []
    assert parse_references("nothing to see here") == []


def test_references_are_frozen_values():
    """A Reference is an immutable, comparable value."""
    ref = closes(1)
    with pytest.raises(AttributeError):
        ref.number = 2  # type: ignore[misc]
    assert ref == Reference(kind="closes", number=1, project_path=None)
