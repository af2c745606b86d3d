"""Log shipping: the writer's committed rows to the replicated ``LOG`` stream, and replicas
that rebuild an identical log from it (README "Beyond one machine")."""
