"""What a Lambda zip holds, and what in it would fail on the runtime.

The checks read the zip itself, not how it was made, so a zip built any
other way (``chalice package`` run by the wrong Python, say) is judged the
same:

- the libraries the functions import are there (apsw, lxml, cryptography,
  pydantic_core, and the app);
- every compiled module is built for Lambda's Python (``cpython-312`` or the
  stable ABI, ``abi3``), for the architecture, and needs no glibc newer
  than the runtime's (read from the ELF file's symbol versions);
- every wheel installed says it is for Lambda's Python and a manylinux no
  newer than the runtime's;
- no development-only code, and none of apsw's optional SQLite extensions;
- every import in the app's own modules resolves inside the zip or the
  standard library.
"""

from __future__ import annotations

import ast
import os
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from lambda_package import ARCHITECTURES, LAMBDA_PYTHON, MAX_GLIBC

REQUIRED = ("app.py", "chalicelib/__init__.py", "apsw/", "lxml/", "cryptography/",
            "pydantic_core/", "chalice/app.py")
# Modules only tests, benches and `make run` use; the bundle leaves them out.
DEV_ONLY = ("chalicelib/store/faulty.py", "chalicelib/store/motoserver.py",
            "chalicelib/devserver.py", "chalicelib/localserver.py")
# apsw ships loadable SQLite extensions linklog never loads.
UNUSED_PREFIXES = ("apsw/sqlite_extra_binaries/", "bin/")
ELF_MACHINES = {62: "x86_64", 183: "aarch64"}
GLIBC_VERSION = re.compile(rb"GLIBC_(\d+)\.(\d+)")
MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_(\w+)$")
LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


@dataclass
class Audit:
    """The zip's sizes, its top-level entries and the problems found (none: it is fit)."""

    zipped_bytes: int
    unzipped_bytes: int
    top_level: list[str]
    problems: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """The figures as a plain dict, for printing."""
        return {
            "zipped_mb": round(self.zipped_bytes / 1e6, 1),
            "unzipped_mb": round(self.unzipped_bytes / 1e6, 1),
            "top_level": self.top_level,
            "problems": self.problems,
        }


def audit_zip(path: str, *, architecture: str = "x86_64") -> Audit:
    """Inspect the Lambda zip at ``path`` built for ``architecture`` (x86_64 or arm64)."""
    machine = ARCHITECTURES[architecture]
    with zipfile.ZipFile(path) as bundle:
        infos = bundle.infolist()
        names = [info.filename for info in infos]
        report = Audit(
            zipped_bytes=os.path.getsize(path),
            unzipped_bytes=sum(info.file_size for info in infos),
            top_level=sorted({name.split("/")[0] for name in names}),
        )
        problems = report.problems
        present = set(names)
        for required in REQUIRED:
            if not any(name.startswith(required) for name in names):
                problems.append(f"missing: {required}")
        for dev_only in DEV_ONLY:
            if dev_only in present:
                problems.append(f"development-only module shipped: {dev_only}")
        for name in names:
            if name.startswith(UNUSED_PREFIXES):
                problems.append(f"unused file shipped: {name}")
            elif _is_shared_object(name):
                problems.extend(_shared_object_problems(name, bundle.read(name), machine))
            elif name.endswith(".dist-info/WHEEL"):
                problems.extend(_wheel_problems(name, bundle.read(name).decode(), machine))
            elif name == "app.py" or (name.startswith("chalicelib/") and name.endswith(".py")):
                problems.extend(_import_problems(name, bundle.read(name), present))
    return report


def _is_shared_object(name: str) -> bool:
    base = PurePosixPath(name).name
    return base.endswith(".so") or ".so." in base


def _shared_object_problems(name: str, data: bytes, machine: str) -> list[str]:
    problems = []
    base = PurePosixPath(name).name
    tag = re.search(r"\.(cpython-\d+[^.]*|abi3)\.so$", base)
    wanted = f"cpython-{LAMBDA_PYTHON[0]}{LAMBDA_PYTHON[1]}-{machine}-linux-gnu"
    if tag and tag.group(1) not in (wanted, "abi3"):
        problems.append(f"{name}: built for {tag.group(1)}, not {wanted} or abi3")
    if data[:4] != b"\x7fELF":
        return problems + [f"{name}: not an ELF shared object"]
    elf_machine = ELF_MACHINES.get(int.from_bytes(data[18:20], "little"), "other")
    if elf_machine != machine:
        problems.append(f"{name}: machine {elf_machine}, not {machine}")
    needed = max((tuple(map(int, m)) for m in GLIBC_VERSION.findall(data)), default=(0, 0))
    if needed > MAX_GLIBC:
        problems.append(f"{name}: needs glibc {needed[0]}.{needed[1]}, newer than the runtime's")
    return problems


def _wheel_problems(name: str, text: str, machine: str) -> list[str]:
    """A wheel fits when one of its tags is pure Python or Lambda's Python and platform."""
    tags = [line.split(":", 1)[1].strip() for line in text.splitlines()
            if line.startswith("Tag:")]
    if any(_tag_fits(tag, machine) for tag in tags):
        return []
    return [f"{name}: no tag fits cp{LAMBDA_PYTHON[0]}{LAMBDA_PYTHON[1]} "
            f"manylinux <= {MAX_GLIBC[0]}_{MAX_GLIBC[1]} {machine}: {', '.join(tags)}"]


def _tag_fits(tag: str, machine: str) -> bool:
    python, abi, platform = tag.split("-")
    if platform == "any":
        return abi == "none"
    version = f"{LAMBDA_PYTHON[0]}{LAMBDA_PYTHON[1]}"
    if not (abi == f"cp{version}" and python == f"cp{version}") and not (
        abi == "abi3" and python.startswith("cp") and int(python[3:] or 0) <= LAMBDA_PYTHON[1]
    ):
        return False
    return _platform_fits(platform, machine)


def _platform_fits(platform: str, machine: str) -> bool:
    legacy, _, arch = platform.partition("_")
    if legacy in LEGACY_MANYLINUX:
        return arch == machine and LEGACY_MANYLINUX[legacy] <= MAX_GLIBC
    match = MANYLINUX.match(platform)
    return bool(match) and match.group(3) == machine and (
        int(match.group(1)), int(match.group(2))) <= MAX_GLIBC


def _import_problems(name: str, source: bytes, present: set[str]) -> list[str]:
    """Imports of the app's own modules that neither the zip nor the standard library holds."""
    problems = []
    for node in ast.walk(ast.parse(source, filename=name)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        for module in modules:
            if module.split(".")[0] in sys.stdlib_module_names or module == "__future__":
                continue
            path = module.replace(".", "/")
            if f"{path}.py" not in present and f"{path}/__init__.py" not in present and not any(
                entry.startswith(f"{path}.") and _is_shared_object(entry) or
                entry.startswith(f"{path}/__init__.") for entry in present
            ):
                problems.append(f"{name} imports {module}, which the zip does not hold")
    return problems
