"""`make package`: a Lambda zip for Python 3.12 whatever Python builds it, and its audit.

The build runs once for the module (pip installs the Lambda wheels from
PyPI, or pip's cache, then `chalice package` zips them). The audit is
checked on it, on zips damaged on purpose, and on a zip `chalice package`
makes the wrong way, run by this Python with the requirements left to it.
Where a Python 3.12 exists, the unzipped bundle saves and processes a link
under it, with nothing but the bundle on its path.
"""

import glob
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from fetch_servers import PageServer, html

from lambda_package.audit import audit_zip
from lambda_package.build import build, platform_tags

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = {"APIHandler", "ProcessOrgMessages", "SweepOrgs"}


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    out = tmp_path_factory.mktemp("package") / "out"
    bundle = build(out)
    return bundle, json.loads((out / "sam.json").read_text())


def test_the_package_passes_its_audit(package, record_property):
    bundle, _ = package
    report = audit_zip(str(bundle))
    record_property("package", report.summary())
    print(json.dumps({k: v for k, v in report.summary().items() if k != "top_level"}))
    assert report.problems == []
    assert {"app.py", "chalicelib", "apsw", "lxml", "cryptography", "pydantic_core",
            "chalice"} <= set(report.top_level)
    # Lambda refuses more than 250 MB unzipped.
    assert report.unzipped_bytes < 250_000_000


def test_the_package_holds_cp312_builds_and_no_development_code(package):
    bundle, _ = package
    names = zipfile.ZipFile(bundle).namelist()
    compiled = [n for n in names if n.endswith(".so")]
    assert any(n.startswith("pydantic_core/_pydantic_core.cpython-312-x86_64") for n in compiled)
    assert any(n.startswith("apsw/__init__.cpython-312-x86_64") for n in compiled)
    assert all(".cpython-312-" in n or n.endswith(".abi3.so") for n in compiled), compiled
    assert not [n for n in names if "sqlite_extra_binaries" in n or "motoserver" in n
                or n.endswith("faulty.py") or n.endswith("devserver.py")]
    assert not [n for n in names if "__pycache__" in n]


def test_the_template_runs_every_function_on_python_3_12(package):
    _, sam = package
    runtimes = {name: body["Properties"]["Runtime"] for name, body in sam["Resources"].items()
                if body["Type"] == "AWS::Serverless::Function"}
    assert runtimes == dict.fromkeys(FUNCTIONS, "python3.12")


def rezip(source: Path, target: Path, *, drop=(), add=None):
    """A copy of the zip at ``source`` without the entries starting with ``drop``, plus ``add``."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            if not info.filename.startswith(tuple(drop)):
                new.writestr(info, old.read(info))
        for name, data in (add or {}).items():
            new.writestr(name, data)
    return target


def test_the_audit_names_what_a_damaged_zip_lacks_or_should_not_have(package, tmp_path):
    bundle, _ = package
    with zipfile.ZipFile(bundle) as original:
        apsw_so = next(n for n in original.namelist() if n.startswith("apsw/__init__.cpython"))
        elf = original.read(apsw_so)
    damaged = rezip(bundle, tmp_path / "damaged.zip", drop=["cryptography/"], add={
        "chalicelib/store/faulty.py": b"",
        "apsw/sqlite_extra_binaries/csv.so": elf,
        "pydantic_core/_pydantic_core.cpython-311-x86_64-linux-gnu.so": elf,
        # An arm64 build: the ELF header's machine field says aarch64.
        "lxml/etree.cpython-312-aarch64-linux-gnu.so": elf[:18] + (183).to_bytes(2, "little") + elf[20:],
        "newer.cpython-312-x86_64-linux-gnu.so": elf + b"GLIBC_2.38\0",
        "chalicelib/uses_moto.py": b"import moto\n",
        "six-9.dist-info/WHEEL": b"Wheel-Version: 1.0\nTag: cp311-cp311-manylinux_2_17_x86_64\n",
    })
    problems = "\n".join(audit_zip(str(damaged)).problems)
    for expected in ("missing: cryptography/", "development-only module shipped: chalicelib/store/faulty.py",
                     "unused file shipped: apsw/sqlite_extra_binaries/csv.so",
                     "cpython-311-x86_64-linux-gnu, not cpython-312-x86_64-linux-gnu",
                     "machine aarch64, not x86_64", "needs glibc 2.38",
                     "chalicelib/uses_moto.py imports moto",
                     "six-9.dist-info/WHEEL: no tag fits"):
        assert expected in problems


def test_arm64_asks_pip_for_aarch64_wheels_up_to_the_runtimes_glibc():
    tags = platform_tags("arm64")
    assert tags[0] == "manylinux_2_34_aarch64" and "manylinux2014_aarch64" in tags
    assert all("aarch64" in tag for tag in tags)
    assert "manylinux_2_35_aarch64" not in tags


def test_chalice_package_run_by_this_python_is_caught(tmp_path):
    """`chalice package` left to install requirements ships this Python's builds."""
    if sys.version_info[:2] == (3, 12):
        pytest.skip("this Python is Lambda's: chalice would package it right")
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "app.py", project)
    shutil.copytree(ROOT / "chalicelib", project / "chalicelib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / ".chalice", project / ".chalice",
                    ignore=shutil.ignore_patterns("deployments", "venv"))
    # One compiled requirement is enough to show the mismatch, and quick.
    pins = [line for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line.startswith("pydantic")]
    (project / "requirements.txt").write_text("\n".join(pins) + "\n")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "chalice"), "package", str(tmp_path / "out")],
        cwd=project, capture_output=True, text=True, timeout=300,
        env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    problems = "\n".join(audit_zip(str(tmp_path / "out" / "deployment.zip")).problems)
    this = f"cpython-{sys.version_info[0]}{sys.version_info[1]}"
    assert f"pydantic_core/_pydantic_core.{this}" in problems
    assert "missing: apsw/" in problems
    assert "development-only module shipped: chalicelib/store/motoserver.py" in problems


def python_3_12():
    """A working Python 3.12 interpreter on this machine, or None."""
    candidates = [os.environ.get("LINKLOG_PYTHON312"), shutil.which("python3.12"),
                  *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")))]
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"],
                               capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == "(3, 12)":
            return candidate
    return None


PAGE = (b"<!doctype html><html><head><title>Proofing dough</title></head><body><article>"
        b"<p>Dough proofs best somewhere warm, covered, until it has doubled in size.</p>"
        b"<p>Press it with a floured finger: it springs back slowly when it is ready.</p>"
        b"</article></body></html>")


def test_python_3_12_saves_and_processes_a_link_from_the_bundle_alone(package, tmp_path):
    python = python_3_12()
    if python is None:
        pytest.skip("no Python 3.12 on this machine (set LINKLOG_PYTHON312 to one)")
    bundle, _ = package
    unzipped = tmp_path / "bundle"
    zipfile.ZipFile(bundle).extractall(unzipped)
    server = PageServer({"/proofing": html(PAGE.decode())})
    port = server.port
    try:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path),
               "LINKLOG_STORE": f"file://{tmp_path / 'data'}",
               "LINKLOG_JWT_SECRET": "a-secret-long-enough-for-hs256-tokens",
               "LINKLOG_ALLOW_HOSTS": f"127.0.0.1:{port}", "TMPDIR": str(tmp_path)}
        result = subprocess.run(
            [python, "-I", str(ROOT / "tests" / "bundle_child.py"), str(unzipped),
             f"http://127.0.0.1:{port}/proofing"],
            env=env, capture_output=True, text=True, timeout=120,
        )
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["python"] == [3, 12]
    assert answer["app_file"].startswith(str(unzipped))
    assert answer["cycle"] == {"batchItemFailures": []}
    assert answer["status"] == 200
    assert answer["link"]["status"] == "completed"
    assert answer["link"]["metadata"]["title"] == "Proofing dough"
