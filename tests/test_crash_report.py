"""A crash in C code still says where Python was: app.py enables faulthandler."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CRASH = """
import ctypes
import app
def inside_a_link_extractor():
    ctypes.string_at(0)
inside_a_link_extractor()
"""


def test_a_segfault_after_importing_the_app_prints_the_python_stack():
    env = {name: value for name, value in os.environ.items() if name != "PYTHONFAULTHANDLER"}
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert crashed.returncode != 0
    assert "Fatal Python error" in crashed.stderr
    assert "inside_a_link_extractor" in crashed.stderr
