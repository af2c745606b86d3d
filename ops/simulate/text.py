"""Text pools for the simulated workload: titles, bodies, names, commit messages.

Pools are built once per process from a fixed seed, so every run shares them
and the per-event cost of text is one random index. Pool sizes are powers of
two so an index is a single ``getrandbits`` call.
"""

from __future__ import annotations

import random
from functools import cache

__all__ = ["TextPools", "text_pools"]

_FIRST = (
    "alice bob carol dave erin frank grace heidi ivan judy mallory niaj olivia peggy "
    "rupert sybil trent victor walter xena yusuf zoe amara bruno chen dmitri esra "
    "fatima goran hana igor jun kofi lena mateo noor oskar priya quinn rosa sanjay "
    "tomas uma vera wei ximena yara zaid"
).split()
_LAST = (
    "nguyen smith garcia muller rossi kowalski tanaka okafor silva ivanova haddad "
    "johansson kim patel dubois novak costa schmidt lopez wang ali hansen moreau "
    "fischer santos yilmaz kaur oconnor bianchi petrov"
).split()
_PROJECT_WORDS = (
    "auth billing search gateway ledger payments inventory catalog notifier "
    "scheduler ingest exporter analytics metrics portal checkout mailer sync "
    "storage identity pricing reports webhooks cache indexer planner tracker "
    "console docs frontend backend mobile infra terraform helm pipeline sdk cli"
).split()
_PROJECT_SUFFIX = "service api web worker core lib ui app engine tools".split()
_GROUP_WORDS = (
    "platform payments growth data infra mobile web security identity commerce "
    "devtools observability ml search core finance ops edge partners"
).split()
_LABELS = (
    "bug feature documentation enhancement security performance regression "
    "frontend backend ux tech-debt ci infra blocked duplicate wontfix question "
    "priority::high priority::medium priority::low severity::1 severity::2 "
    "severity::3 needs-review needs-design good-first-issue flaky-test "
    "customer accessibility database api"
).split()
_VERBS = (
    "Fix|Add|Remove|Refactor|Improve|Update|Support|Handle|Investigate|Document|"
    "Speed up|Clean up|Migrate|Deprecate|Validate|Retry|Cache|Log|Expose|Harden"
).split("|")
_OBJECTS = (
    "timeout handling|pagination|login redirect|CSV export|rate limiting|"
    "webhook retries|session expiry|dark mode|search ranking|invoice totals|"
    "email templates|audit log|feature flags|upload size limit|SSO callback|"
    "health check|background jobs|error messages|date parsing|cache invalidation|"
    "API tokens|permissions check|database migrations|memory usage|startup time|"
    "flaky integration test|N+1 queries|config reload|time zone handling|"
    "retry backoff|unicode filenames|dependency upgrades|TLS certificates"
).split("|")
_WHERE = (
    "in settings page|for archived projects|on mobile|in the admin console|"
    "when the queue is empty|under load|for large repositories|after upgrade|"
    "in the public API|for guest users|on Safari|in nightly builds|"
    "when the network drops|for new accounts|in the importer|"
).split("|")
_SENTENCES = (
    "Steps to reproduce: open the page, wait a few seconds, then reload.",
    "Expected the request to succeed, but it returns a 500 error.",
    "This started after the last deploy and affects roughly 5% of requests.",
    "The stack trace points at the serializer; the payload has a null field.",
    "We should add a regression test that covers this path.",
    "Customers reported it through support, see the linked ticket for details.",
    "A quick workaround is to clear the cache and retry the operation.",
    "The root cause seems to be a race between the worker and the scheduler.",
    "Proposal: move the check into the service layer and return a clear error.",
    "Acceptance criteria: the job finishes within 30 seconds for 10k rows.",
    "Logs show repeated connection resets from the upstream service.",
    "This blocks the release until we have a fix or a feature flag.",
    "Design mockups are attached; the empty state needs a call to action.",
    "Metrics: p99 latency went from 120 ms to 900 ms after the change.",
    "We need to keep backwards compatibility with clients older than v2.",
    "The documentation is out of date and still mentions the old endpoint.",
    "Memory grows by about 50 MB per hour until the pod is killed.",
    "Only reproducible with more than 1000 items in the list.",
)
_COMMENTS = (
    "LGTM, thanks!",
    "I can reproduce this on staging.",
    "Could you add a test for the empty case?",
    "Nit: this name is a bit misleading, maybe rename it?",
    "This looks good to me once CI passes.",
    "I think we should split this into two changes.",
    "Pushed a fix, please take another look.",
    "Is this still happening on the latest build?",
    "Adding this to the current milestone.",
    "We hit the same problem in production yesterday.",
    "What about the migration for existing rows?",
    "Approved. Let's ship it behind a flag first.",
    "Can we get numbers before and after this change?",
    "Closing the loop here: the customer confirmed the fix works.",
    "I left a few comments inline, mostly style.",
    "This conflicts with the refactor that just landed, please rebase.",
)
_COMMIT_BODIES = (
    "",
    "",
    "\n\nThe previous approach retried forever; cap it and surface the error.",
    "\n\nAlso adds a unit test for the edge case reported in review.",
    "\n\nSplit out of a larger change to keep the diff reviewable.",
    "\n\nNo behaviour change intended; this only moves code around.",
)


class TextPools:
    """Precomputed text; every tuple's length is a power of two."""

    def __init__(self, rng: random.Random) -> None:
        pick = rng.choice
        self.titles = tuple(
            f"{pick(_VERBS)} {pick(_OBJECTS)} {pick(_WHERE)}".rstrip() for _ in range(4096)
        )
        self.descriptions = tuple(
            " ".join(rng.sample(_SENTENCES, rng.randint(2, 7))) for _ in range(1024)
        )
        self.comments = tuple(
            " ".join(rng.sample(_COMMENTS + _SENTENCES, rng.randint(1, 3))) for _ in range(2048)
        )
        self.commit_messages = tuple(
            f"{pick(_VERBS)} {pick(_OBJECTS)}{pick(_COMMIT_BODIES)}" for _ in range(2048)
        )
        self.first_names = tuple(_FIRST)
        self.last_names = tuple(_LAST)
        self.project_words = tuple(_PROJECT_WORDS)
        self.project_suffixes = tuple(_PROJECT_SUFFIX)
        self.group_words = tuple(_GROUP_WORDS)
        self.labels = tuple(_LABELS)
        self.slug_words = tuple(o.lower().replace(" ", "-").replace("+", "") for o in _OBJECTS)


@cache
def text_pools() -> TextPools:
    """The shared pools, built on first use from a fixed seed."""
    return TextPools(random.Random(0x5EED))
