"""Starting and stopping the server processes tests start."""

import socket
import subprocess


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
