"""The simulator's output does not depend on the interpreter's hash seed."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

from events.codec import encode_event
from ops.simulate import simulate


def test_same_seed_is_stable_across_processes():
    """Another interpreter with another hash seed produces the very same bytes."""
    code = (
        "import hashlib; from ops.simulate import simulate; from events.codec import encode_event;"
        "print(hashlib.sha256(b''.join(encode_event(e) for e in simulate(3000, seed=7))).hexdigest())"
    )
    digests = {
        subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": hs},
                       capture_output=True, text=True, check=True).stdout.strip()
        for hs in ("1", "2")
    }
    here = hashlib.sha256(b"".join(encode_event(e) for e in simulate(3000, seed=7))).hexdigest()
    assert digests == {here}
