"""How long to wait before a retry: exponential, capped, jittered - one pure function."""

from __future__ import annotations

__all__ = ["backoff_secs"]


def backoff_secs(attempt: int, rand: float, *, base_secs: float = 0.1, cap_secs: float = 5.0) -> float:
    """The pause before retry ``attempt`` (1, 2, ...): ``base_secs`` doubled per attempt up to
    ``cap_secs``, then jittered into its upper half by ``rand`` (a draw from [0, 1)).

    Pure: the caller draws ``rand``. The jitter spreads processes that failed together
    (a NATS restart) so they do not come back in lockstep.
    """
    if attempt < 1:
        raise ValueError(f"attempt={attempt} must be 1 or more")
    if not 0.0 <= rand < 1.0:
        raise ValueError(f"rand={rand} must be in [0, 1)")
    top = min(cap_secs, base_secs * 2.0 ** min(attempt - 1, 64))
    return top / 2 + top / 2 * rand
