"""Bearer tokens (DESIGN §8): who is calling, and for which org.

HS256 with a shared secret, or RS256 with keys from a JWKS URL. The
algorithm is pinned by the configuration, never taken from the token, so
``alg: none`` and HS/RS confusion (an RS public key used as an HS secret)
are refused. ``exp``, ``sub`` and ``org`` are required; the org is checked
like every org name before it can reach a store key. The times (``exp``,
``nbf``, ``iat``) must be JSON numbers of a plausible date, not strings.
An audience and an issuer, when configured, must match the token's ``aud``
and ``iss``; when not configured those claims are not looked at, so tokens
from identity providers, which carry them, are accepted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import jwt

from chalicelib.api_errors import ApiError
from chalicelib.config import ConfigError
from chalicelib.keys import InvalidOrg, check_org

# Generous for any real token, small enough that a hostile header costs nothing.
MAX_TOKEN_CHARS = 8192
REQUIRED_CLAIMS = ["exp", "sub", "org"]
# Clocks of the token issuer and of Lambda differ by a little.
LEEWAY_SECONDS = 30
TIME_CLAIMS = ("exp", "nbf", "iat")
# 9999-12-31T23:59:59Z: a later "date" is not one a real issuer writes.
LATEST_TIME = 253402300799


@dataclass(frozen=True)
class Principal:
    """The caller: the user (``sub``) and the org the token grants."""

    sub: str
    org: str


Verify = Callable[[str | None], Principal]


def unauthorized(message: str) -> ApiError:
    """A 401 with the WWW-Authenticate challenge RFC 6750 asks of a bearer-token API."""
    return ApiError(401, message, headers={"WWW-Authenticate": 'Bearer realm="linklog"'})


@dataclass(frozen=True)
class Expected:
    """What a token's ``aud`` and ``iss`` must be (None: not checked)."""

    audience: str | None = None
    issuer: str | None = None


def make_verifier(
    *,
    secret: str | None = None,
    jwks_url: str | None = None,
    audience: str | None = None,
    issuer: str | None = None,
) -> Verify:
    """A function from an Authorization header to a Principal, raising ApiError 401.

    Exactly one of ``secret`` (HS256) or ``jwks_url`` (RS256) is given;
    ``audience`` and ``issuer``, when given, must be the token's.
    """
    if bool(secret) == bool(jwks_url):
        raise ConfigError(
            "set exactly one of LINKLOG_JWT_SECRET or LINKLOG_JWT_SECRET_FROM (HS256), "
            "or LINKLOG_JWKS_URL (RS256)"
        )
    expected = Expected(audience=audience or None, issuer=issuer or None)
    if secret:
        return lambda header: _decode(_bearer(header), secret, "HS256", expected)
    keys = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=5)

    def verify(header: str | None) -> Principal:
        token = _bearer(header)
        try:
            key = keys.get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientConnectionError as error:
            raise ApiError(
                503, f"cannot fetch the signing keys: {error}", code="keys_unavailable"
            ) from None
        except (jwt.PyJWKClientError, jwt.InvalidTokenError) as error:
            raise unauthorized(f"invalid token: {error}") from None
        return _decode(token, key, "RS256", expected)

    return verify


def _bearer(header: str | None) -> str:
    if not header:
        raise unauthorized("missing Authorization: Bearer token")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise unauthorized("Authorization must be 'Bearer <token>'")
    if len(token) > MAX_TOKEN_CHARS:
        raise unauthorized("token too long")
    return token


def _decode(token: str, key, algorithm: str, expected: Expected) -> Principal:
    required = REQUIRED_CLAIMS + [
        claim for claim, wanted in (("aud", expected.audience), ("iss", expected.issuer)) if wanted
    ]
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=expected.audience,
            issuer=expected.issuer,
            options={"require": required, "verify_aud": expected.audience is not None},
            leeway=LEEWAY_SECONDS,
        )
    except jwt.ExpiredSignatureError:
        raise unauthorized("token expired") from None
    except jwt.InvalidTokenError as error:
        raise unauthorized(f"invalid token: {error}") from None
    for claim in TIME_CLAIMS:
        if claim in claims and not _is_time(claims[claim]):
            raise unauthorized(f"invalid token: {claim} must be a number of seconds since 1970")
    sub, org = claims["sub"], claims["org"]
    if not isinstance(sub, str) or not sub:
        raise unauthorized("invalid token: sub must be a non-empty string")
    try:
        check_org(org)
    except InvalidOrg:
        raise unauthorized("invalid token: org is not a valid org name") from None
    return Principal(sub=sub, org=org)


def _is_time(value) -> bool:
    """A NumericDate (RFC 7519): a JSON number, finite, between 1970 and the year 9999.

    PyJWT reads the time claims with ``int()``, so a numeric string passes
    it, and an absurd number makes a token that never expires.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) and 0 <= value <= LATEST_TIME


def issue_token(secret: str, *, sub: str, org: str, lifetime_seconds: int, now: float) -> str:
    """An HS256 token for ``sub`` in ``org`` (the dev server and tests use it)."""
    check_org(org)
    claims = {"sub": sub, "org": org, "iat": int(now), "exp": int(now + lifetime_seconds)}
    return jwt.encode(claims, secret, algorithm="HS256")
