"""Where the client's settings come from: flags, then the environment, then
the config file (``config.toml`` in the home directory).

| setting | flag | environment | config file key |
|---|---|---|---|
| server URL | ``--server`` | ``LINKLOG_SERVER`` | ``server`` |
| token | ``--token`` | ``LINKLOG_TOKEN`` | ``token`` |
| home directory | ``--home`` | ``LINKLOG_HOME`` | (default ``~/.linklog``) |

The token is a secret: it is written to the file with owner-only
permissions and never printed back.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import jwt

KEYS = ("server", "token")
DEFAULT_HOME = "~/.linklog"


class SettingsError(Exception):
    """A setting is missing or unusable; the message says which and how to set it."""


@dataclass(frozen=True)
class Settings:
    home: Path
    server: str | None
    token: str | None

    def require(self) -> tuple[str, str]:
        """The server URL and token, or SettingsError naming what is missing."""
        missing = [name for name in KEYS if not getattr(self, name)]
        if missing:
            raise SettingsError(
                f"no {' and no '.join(missing)} set: pass --{missing[0]}, set "
                f"LINKLOG_{missing[0].upper()}, or run `linklog config set {missing[0]} …`"
            )
        return self.server, self.token

    def org(self) -> str | None:
        """The org the token names (read, not verified: the server verifies it)."""
        return token_org(self.token) if self.token else None


def token_org(token: str) -> str | None:
    """The ``org`` claim of a token, unverified; None if it is no JWT."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    org = claims.get("org")
    return org if isinstance(org, str) else None


def config_path(home: Path) -> Path:
    return home / "config.toml"


def read_file(home: Path) -> dict[str, str]:
    """The settings in the home directory's config file ({} when there is none)."""
    path = config_path(home)
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SettingsError(f"{path} is not valid TOML: {error}") from None
    return {key: value for key, value in data.items() if key in KEYS and isinstance(value, str)}


def write_setting(home: Path, key: str, value: str | None) -> None:
    """Set (or, with None, remove) one key in the config file, readable by the owner only."""
    if key not in KEYS:
        raise SettingsError(f"unknown setting {key!r}; known: {', '.join(KEYS)}")
    values = read_file(home)
    if value is None:
        values.pop(key, None)
    else:
        values[key] = value
    home.mkdir(parents=True, exist_ok=True)
    path = config_path(home)
    # JSON strings are valid TOML basic strings for everything a URL or JWT holds.
    text = "".join(f"{name} = {json.dumps(values[name])}\n" for name in KEYS if name in values)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)
    os.chmod(path, 0o600)


def load(
    *, home: str | None = None, server: str | None = None, token: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Settings:
    """The settings, flags first, then the environment, then the config file."""
    home_path = Path(home or environ.get("LINKLOG_HOME") or DEFAULT_HOME).expanduser()
    stored = read_file(home_path)
    return Settings(
        home=home_path,
        server=server or environ.get("LINKLOG_SERVER") or stored.get("server"),
        token=token or environ.get("LINKLOG_TOKEN") or stored.get("token"),
    )
