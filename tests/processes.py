"""Starting and stopping the server processes tests start."""

import os
import signal
import socket
import subprocess
import sys


def free_port() -> int:
    """A port free on 127.0.0.1 now, for a server process that takes its port as a setting."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop(process: subprocess.Popen, grace_seconds: float = 10) -> None:
    """Terminate ``process``; kill it if it has not ended within the grace period."""
    process.terminate()
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def kill_child_at(args: list[str], step: str) -> None:
    """Run ``python args...``, wait until it prints ``AT step``, SIGKILL it there.

    The crash tests' children print that line at the point to die, so the
    kill lands in the middle of the work, not before or after it.
    """
    child = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = child.stdout.readline()
        assert line == f"AT {step}\n", child.stderr.read()
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stderr.close()
