"""Stopping the server processes tests start."""

import subprocess


def stop(process: subprocess.Popen, grace_seconds: float = 10) -> None:
    """Terminate ``process``; kill it if it has not ended within the grace period."""
    process.terminate()
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
