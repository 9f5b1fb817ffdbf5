"""Settings from the environment (DESIGN §11), read in one place.

The same variables configure ``make run``, the Lambda functions and the
tests. Reading is strict: a malformed value is a ConfigError naming the
variable, not a surprise at the first request.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping


# Where LINKLOG_JWT_SECRET_FROM may point (read by chalicelib.jwt_secret).
SECRET_SOURCES = ("ssm", "secretsmanager")


class ConfigError(ValueError):
    """A setting is missing, malformed or contradicts another."""


@dataclass(frozen=True)
class Settings:
    store: str = "file://./data"
    queue: str = "local"
    jwt_secret: str | None = None
    # Where to read the secret instead: ssm:NAME or secretsmanager:ID (jwt_secret.py).
    jwt_secret_from: str | None = None
    jwks_url: str | None = None
    # Checked against the token's aud and iss when set.
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    allow_hosts: str = ""
    port: int = 8000
    # None: the processor's default (chalicelib.cycle.LEASE_SECONDS).
    lease_seconds: float | None = None


def load(environ: Mapping[str, str] = os.environ) -> Settings:
    """The settings the environment names, defaults for the rest."""
    defaults = Settings()
    secret = environ.get("LINKLOG_JWT_SECRET") or None
    secret_from = environ.get("LINKLOG_JWT_SECRET_FROM") or None
    jwks_url = environ.get("LINKLOG_JWKS_URL") or None
    if secret and jwks_url:
        raise ConfigError("set LINKLOG_JWT_SECRET or LINKLOG_JWKS_URL, not both")
    if secret_from and (secret or jwks_url):
        raise ConfigError(
            "set LINKLOG_JWT_SECRET_FROM alone, without LINKLOG_JWT_SECRET or LINKLOG_JWKS_URL"
        )
    if secret_from:
        _check_secret_source(secret_from)
    return Settings(
        store=environ.get("LINKLOG_STORE") or defaults.store,
        queue=environ.get("LINKLOG_QUEUE") or defaults.queue,
        jwt_secret=secret,
        jwt_secret_from=secret_from,
        jwks_url=jwks_url,
        jwt_audience=environ.get("LINKLOG_JWT_AUDIENCE") or None,
        jwt_issuer=environ.get("LINKLOG_JWT_ISSUER") or None,
        allow_hosts=environ.get("LINKLOG_ALLOW_HOSTS", defaults.allow_hosts),
        # 0 asks the system for a free port (tests start servers that way).
        port=_bounded(environ, "LINKLOG_PORT", int, "a port number", 0, 65535, defaults.port),
        # Below a second, renewals would be most of what a cycle writes.
        lease_seconds=_bounded(
            environ, "LINKLOG_LEASE_SECONDS", float, "a number of seconds", 1, 3600, defaults.lease_seconds
        ),
    )


def aws_region(environ: Mapping[str, str] = os.environ) -> str | None:
    """The region for linklog's AWS clients: ``AWS_REGION`` (what Lambda
    sets and the README documents), else ``AWS_DEFAULT_REGION``; None lets
    boto3 look further (its config file).

    botocore itself reads only ``AWS_DEFAULT_REGION``: with ``AWS_REGION``
    alone, a Bedrock client raised NoRegionError and every summary fell
    back for good.
    """
    return environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None


def _check_secret_source(source: str) -> None:
    service, _, name = source.partition(":")
    if service not in SECRET_SOURCES or not name:
        raise ConfigError(
            "LINKLOG_JWT_SECRET_FROM must be ssm:PARAMETER_NAME or secretsmanager:SECRET_ID, "
            f"not {source!r}"
        )


def _bounded(environ: Mapping[str, str], name: str, parse, what: str, low, high, default):
    """The setting ``name`` read by ``parse`` (int or float), from ``low``
    to ``high``; ``default`` when it is unset or empty."""
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {what}, not {raw!r}") from None
    # Written so that NaN is out of range too.
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, not {raw}")
    return value
