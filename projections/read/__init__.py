"""The read side: :class:`~projections.read.reader.GraphReader`, snapshots, traversal, questions, export."""
