"""The graceful-stop helpers: a stop that hangs says where it hangs."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

_HANGS_ON_STOP = textwrap.dedent("""
    import asyncio, sys, threading, time
    from ops import runner

    def stuck_cleanup():
        time.sleep(60)

    async def main(stop):
        print("ready", flush=True)
        await stop.wait()
        stuck_cleanup()  # a cleanup that never finishes

    runner.STOP_WATCHDOG_SECS = 0.5
    runner.run_until_signal(main)
""")


def test_a_stop_that_hangs_prints_every_threads_stack():
    proc = subprocess.Popen([sys.executable, "-c", _HANGS_ON_STOP], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        time.sleep(2)
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=10)
    assert "stuck_cleanup" in err and "Thread" in err, err


def test_a_prompt_stop_prints_nothing():
    code = _HANGS_ON_STOP.replace("stuck_cleanup()  #", "pass  #")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "Thread" not in err, err
