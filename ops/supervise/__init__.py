"""Supervision of the Procfile's processes by ``fleet up`` (README: "Running the fleet").

:class:`Supervisor` runs and restarts them; :func:`read_state` is what it
last wrote about each (pid, starts, restarts, last exit), for ``fleet
health`` and metrics; :func:`request_restart` is ``fleet restart``.
"""

from .state import DEFAULT_GRACE_SECS, ChildState, SupervisorError, read_state, request_restart, state_dir
from .supervisor import BACKOFF_BASE_SECS, BACKOFF_CAP_SECS, RESET_AFTER_SECS, Supervisor, backoff_secs

__all__ = ["BACKOFF_BASE_SECS", "BACKOFF_CAP_SECS", "DEFAULT_GRACE_SECS", "RESET_AFTER_SECS", "ChildState",
           "Supervisor", "SupervisorError", "backoff_secs", "read_state", "request_restart", "state_dir"]
