"""Build the Lambda zip and the merged SAM template with ``chalice package``.

Chalice installs requirements for the Python that runs it; run by this
machine's 3.11 it ships 3.11 builds (and no apsw at all) with only a
warning, and every function then fails at import on the python3.12
runtime. So the build hands Chalice no requirements: pip installs them as
wheels for Lambda's Python and platform into the ``vendor/`` directory of a
staged copy of the project, which Chalice puts in the zip as it is.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from lambda_package import ARCHITECTURES, LAMBDA_PYTHON, MAX_GLIBC
from lambda_package.audit import DEV_ONLY, UNUSED_PREFIXES

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "template.json"
# The oldest glibc a manylinux wheel may name: manylinux2014 is 2.17, and
# older tags are spelled out by pip's legacy aliases below.
OLDEST_GLIBC_MINOR = 5


class BuildError(RuntimeError):
    """The package could not be built; the message says which step failed."""


def platform_tags(architecture: str) -> list[str]:
    """pip ``--platform`` values for every manylinux the runtime's glibc can load.

    pip takes a given platform literally, so each glibc up to the runtime's
    is named, newest first.
    """
    machine = ARCHITECTURES[architecture]
    major, newest = MAX_GLIBC
    tags = [f"manylinux_{major}_{minor}_{machine}"
            for minor in range(newest, OLDEST_GLIBC_MINOR - 1, -1)]
    return tags + [f"manylinux2014_{machine}"]


def stage_project(stage: Path) -> None:
    """Copy the app, its modules (less the development-only ones) and Chalice's config."""
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    shutil.copy(ROOT / "app.py", stage / "app.py")
    dev_only = {ROOT / name for name in DEV_ONLY}
    shutil.copytree(
        ROOT / "chalicelib", stage / "chalicelib",
        ignore=lambda folder, names: [
            name for name in names
            if name == "__pycache__" or Path(folder, name) in dev_only
        ],
    )
    shutil.copytree(ROOT / ".chalice", stage / ".chalice",
                    ignore=shutil.ignore_patterns("deployments", "venv"))


def install_vendor(stage: Path, architecture: str, requirements: Path) -> None:
    """pip-install the runtime requirements as Lambda wheels into ``stage/vendor``."""
    vendor = stage / "vendor"
    platforms = [arg for tag in platform_tags(architecture) for arg in ("--platform", tag)]
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-compile",
        "--target", str(vendor), *platforms,
        "--implementation", "cp",
        "--python-version", f"{LAMBDA_PYTHON[0]}.{LAMBDA_PYTHON[1]}",
        "--only-binary=:all:", "-r", str(requirements),
    ]
    _run(command, "installing the Lambda wheels")
    for unused in UNUSED_PREFIXES:
        shutil.rmtree(vendor / unused, ignore_errors=True)


def merged_template(architecture: str, out: Path) -> Path:
    """infra/template.json, with the functions' architecture when it is not x86_64."""
    if architecture == "x86_64":
        return TEMPLATE
    template = json.loads(TEMPLATE.read_text())
    template.setdefault("Globals", {}).setdefault("Function", {})["Architectures"] = [architecture]
    path = out / f"template-{architecture}.json"
    path.write_text(json.dumps(template, indent=2))
    return path


def chalice_package(stage: Path, template: Path, out: Path, stage_name: str) -> None:
    """``chalice package --merge-template`` in the staged project, into ``out``."""
    if out.exists():
        shutil.rmtree(out)
    chalice = Path(sys.executable).parent / "chalice"
    env = {**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
    _run([str(chalice), "package", "--stage", stage_name, "--merge-template", str(template),
          str(out)], "chalice package", cwd=stage, env=env)


def build(out: Path, *, architecture: str = "x86_64", stage_name: str = "dev",
          requirements: Path = ROOT / "requirements.txt") -> Path:
    """Build ``out/deployment.zip`` and ``out/sam.json``; returns the zip's path."""
    out = out.resolve()
    if architecture not in ARCHITECTURES:
        raise BuildError(f"architecture must be one of {sorted(ARCHITECTURES)}, not {architecture}")
    work = out.parent / f".{out.name}-work"
    work.mkdir(parents=True, exist_ok=True)
    stage = work / "project"
    stage_project(stage)
    install_vendor(stage, architecture, requirements)
    chalice_package(stage, merged_template(architecture, work), out, stage_name)
    return out / "deployment.zip"


def _run(command: list[str], step: str, **kwargs) -> None:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise BuildError(f"{step} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
