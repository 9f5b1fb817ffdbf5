"""The `linklog` command is documented whole, the docs stand alone, and the
Lambda package does not carry the command's dependencies."""

import ast
import re
from pathlib import Path

import click
import pytest

from linklog.cli import main

ROOT = Path(__file__).resolve().parents[1]
CLI_DOC = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def commands(group: click.Group, prefix: str = ""):
    for name, command in sorted(group.commands.items()):
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            yield from commands(command, path + " ")
        else:
            yield path, command


def section(heading: str) -> str:
    start = CLI_DOC.index(heading)
    rest = CLI_DOC[start + len(heading):]
    found = re.search(r"^#{2,3} ", rest, re.M)
    return rest[: found.start()] if found else rest


def long_options(command: click.Command) -> list[str]:
    return [
        option
        for parameter in command.params
        if isinstance(parameter, click.Option)
        for option in parameter.opts
        if option.startswith("--") and option != "--help"
    ]


@pytest.mark.parametrize("path, command", list(commands(main)), ids=lambda value: str(value))
def test_every_command_and_option_is_documented(path, command):
    heading = f"### `linklog {path}`"
    assert heading in CLI_DOC, f"docs/cli.md has no heading {heading}"
    text = section(heading)
    for option in long_options(command):
        assert f"`{option}" in text, f"{option} of `linklog {path}` is not in its section of docs/cli.md"


def test_global_options_are_documented():
    text = section("## Global options")
    for option in long_options(main):
        assert f"`{option}" in text


def test_the_readme_tells_how_to_install_and_run_the_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "pip install -e ." in readme and "docs/cli.md" in readme
    assert '"linklog.cli:main"' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")


TOP_LEVEL = ("app.py", "chalicelib/", "docs/", "linklog/", "tests/", "bench/", "infra/", "Makefile", "pyproject.toml")


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.name)
def test_docs_name_nothing_outside_the_repository(doc):
    text = doc.read_text(encoding="utf-8")
    assert "../" not in text, f"{doc.name} points outside the repository"
    assert "DESIGN.md" not in text
    for name in re.findall(r"`([^`\s]+)`", text):
        name = name.rstrip(".,:")
        if name.endswith(".md") or name.startswith(TOP_LEVEL):
            if "*" in name or "{" in name or "<" in name:
                continue
            assert (ROOT / name).exists() or (ROOT / "docs" / name).exists(), f"{doc.name} names {name}, which is not in the repository"


def test_the_lambda_package_does_not_carry_the_command():
    requirements = (ROOT / "requirements.txt").read_text(encoding="utf-8").lower()
    for package in ("click", "rich", "tqdm"):
        assert not re.search(rf"^{package}\b", requirements, re.M)
    for path in [ROOT / "app.py", *(ROOT / "chalicelib").rglob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in ("linklog", "click", "rich", "tqdm"), f"{path} imports {name}"
