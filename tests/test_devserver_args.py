"""`python -m chalicelib.devserver` takes no arguments: --help explains, anything else is refused."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_devserver(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "chalicelib.devserver", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )


def test_help_names_the_settings_and_starts_nothing():
    answer = run_devserver("--help")
    assert answer.returncode == 0
    assert "LINKLOG_STORE" in answer.stdout and "LINKLOG_PORT" in answer.stdout
    assert "serving" not in answer.stdout


def test_an_argument_is_refused_with_a_usage_line():
    answer = run_devserver("--port", "9000")
    assert answer.returncode == 2
    assert "unrecognized arguments: --port 9000" in answer.stderr
