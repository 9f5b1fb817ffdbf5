"""The README documents every route and every setting, so none goes unexplained."""

import re
from pathlib import Path

import pytest

import app as api

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def routes() -> list[tuple[str, str]]:
    return sorted(
        (method, path)
        for path, by_method in api.app.routes.items()
        for method in by_method
    )


@pytest.mark.parametrize("method, path", routes())
def test_every_route_has_a_heading_in_the_readme(method, path):
    documented = path.replace("{link_id}", "{id}")
    assert f"### `{method} {documented}" in README


def settings_read_by(path: Path) -> set[str]:
    return set(re.findall(r"\b(LINKLOG_[A-Z_]+)\b", path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("name", sorted(settings_read_by(ROOT / "chalicelib" / "config.py")))
def test_every_setting_is_in_the_readme_table(name):
    assert f"| `{name}` |" in README
