"""The LMDB store: one environment per version (the only code that opens LMDB), write sets, writer locks."""
