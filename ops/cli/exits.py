"""The ``fleet`` command's exit codes (documented in README's CLI section)."""

__all__ = ["EXIT_PROBLEM", "EXIT_UNAVAILABLE", "EXIT_USAGE"]

#: the operation ran and found a problem (verify failed, fleet unhealthy, some inputs failed)
EXIT_PROBLEM = 1
#: usage or configuration error
EXIT_USAGE = 2
#: a required service (NATS) is unreachable
EXIT_UNAVAILABLE = 3
