"""The fold engine: log rows in, sorted table writes out, segment by segment.

Direct handlers per event type (:mod:`.handlers`) fold decoded events into a
segment's compact in-memory state (:mod:`.state`), which reads what it needs
from earlier segments once per key; when the state reaches a memory budget,
every table is written once, sorted, with the checkpoint in the same
transaction (:mod:`.flush`), and a fresh segment goes on (:mod:`.run`). The
result equals the overlay's for the same log, table by table.
"""

from projections.fold.engine.flush import segment_writes, write_segment
from projections.fold.engine.handlers import fold_event, handled_types
from projections.fold.engine.run import (
    DEFAULT_BUDGET_BYTES,
    FoldProgress,
    FoldResult,
    StageTimes,
    fold_log,
)
from projections.fold.engine.state import Segment

__all__ = [
    "DEFAULT_BUDGET_BYTES",
    "FoldProgress",
    "FoldResult",
    "Segment",
    "StageTimes",
    "fold_event",
    "fold_log",
    "handled_types",
    "segment_writes",
    "write_segment",
]
