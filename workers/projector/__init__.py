"""The projector loop (log -> active projection version) and the worker process's runtime around it."""
