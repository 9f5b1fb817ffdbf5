"""Where the HS256 token secret comes from: the environment, SSM or Secrets Manager.

``LINKLOG_JWT_SECRET`` holds the secret itself; ``LINKLOG_JWT_SECRET_FROM``
names where to read it instead, so it stays out of the function's
configuration:

- ``ssm:NAME`` — an SSM Parameter Store parameter (a SecureString is
  decrypted), e.g. ``ssm:/linklog/jwt-secret``;
- ``secretsmanager:ID`` — a Secrets Manager secret's name or ARN (its
  ``SecretString``), e.g. ``secretsmanager:linklog/jwt-secret``.

The API reads it when it builds its services, once per container; a
failed read is a ConfigError, so the request answers 500 ``misconfigured``
naming the source, and the next request tries again.
"""

from __future__ import annotations

from chalicelib.config import ConfigError, Settings


def token_secret(settings: Settings, *, client_for=None) -> str | None:
    """The HS256 secret ``settings`` give or name; None when tokens are RS256 (JWKS).

    ``client_for(service)`` builds a boto3 client (tests hand in their own).
    """
    if settings.jwt_secret or not settings.jwt_secret_from:
        return settings.jwt_secret
    service, _, name = settings.jwt_secret_from.partition(":")
    client = (client_for or _client)(service)
    try:
        if service == "ssm":
            answer = client.get_parameter(Name=name, WithDecryption=True)
            secret = answer["Parameter"]["Value"]
        else:
            secret = client.get_secret_value(SecretId=name).get("SecretString")
    except Exception as error:  # botocore's errors: missing, denied, unreachable
        raise ConfigError(
            f"cannot read the token secret from LINKLOG_JWT_SECRET_FROM={settings.jwt_secret_from}: "
            f"{error}"
        ) from None
    if not secret:
        raise ConfigError(
            f"the token secret at LINKLOG_JWT_SECRET_FROM={settings.jwt_secret_from} is empty"
        )
    return secret


def _client(service: str):
    import boto3

    return boto3.client(service)
