"""The HTTP service (the Procfile's ``api`` process).

:mod:`.app` builds the aiohttp application and owns the shared resources
(settings, the NATS connection, the event sink); every other module of this
package is a route module with a ``setup(app)`` that :func:`create_app`
discovers and calls: :mod:`.hooks` serves the GitLab and GitHub webhooks.
"""

from __future__ import annotations

from .app import ApiContext, EventSink, Setup, context, create_app, route_setups, run_api, serve_api

__all__ = ["ApiContext", "EventSink", "Setup", "context", "create_app", "route_setups", "run_api",
           "serve_api"]
