"""The change publisher: every version's outbox -> the ``GRAPH`` stream, acknowledged, in order, per lane."""
