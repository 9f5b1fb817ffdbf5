"""The token secret read from SSM Parameter Store or Secrets Manager (moto), once per container."""

from __future__ import annotations

import time

import boto3
import pytest
from moto import mock_aws

import app as api
from chalicelib.auth import Principal, issue_token
from chalicelib.config import ConfigError, load
from chalicelib.jwt_secret import token_secret

SECRET = "a-secret-kept-in-aws-long-enough-for-hs256"


@pytest.fixture
def aws(monkeypatch):
    """moto in-process, with the fake credentials and region boto3 needs."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


def token(secret: str) -> str:
    return issue_token(secret, sub="u", org="acme", lifetime_seconds=60, now=time.time())


def test_the_secret_comes_from_an_ssm_secure_string(aws):
    boto3.client("ssm").put_parameter(Name="/linklog/jwt-secret", Value=SECRET,
                                      Type="SecureString")

    settings = load({"LINKLOG_JWT_SECRET_FROM": "ssm:/linklog/jwt-secret"})
    assert token_secret(settings) == SECRET


def test_the_secret_comes_from_secrets_manager(aws):
    boto3.client("secretsmanager").create_secret(Name="linklog/jwt-secret", SecretString=SECRET)

    settings = load({"LINKLOG_JWT_SECRET_FROM": "secretsmanager:linklog/jwt-secret"})
    assert token_secret(settings) == SECRET


@pytest.mark.parametrize("source", ["ssm:/linklog/missing", "secretsmanager:linklog/missing"])
def test_a_secret_that_cannot_be_read_is_a_config_error_naming_it(aws, source):
    with pytest.raises(ConfigError) as caught:
        token_secret(load({"LINKLOG_JWT_SECRET_FROM": source}))
    assert f"LINKLOG_JWT_SECRET_FROM={source}" in str(caught.value)


def test_an_empty_secret_is_refused(aws):
    boto3.client("secretsmanager").create_secret(Name="linklog/empty", SecretBinary=b"x")

    with pytest.raises(ConfigError, match="is empty"):
        token_secret(load({"LINKLOG_JWT_SECRET_FROM": "secretsmanager:linklog/empty"}))


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"LINKLOG_JWT_SECRET_FROM": "vault:/x"}, "LINKLOG_JWT_SECRET_FROM must be ssm:"),
        ({"LINKLOG_JWT_SECRET_FROM": "ssm:"}, "LINKLOG_JWT_SECRET_FROM must be ssm:"),
        ({"LINKLOG_JWT_SECRET_FROM": "ssm:/x", "LINKLOG_JWT_SECRET": "s"},
         "set LINKLOG_JWT_SECRET_FROM alone"),
        ({"LINKLOG_JWT_SECRET_FROM": "ssm:/x", "LINKLOG_JWKS_URL": "https://id.example/jwks"},
         "set LINKLOG_JWT_SECRET_FROM alone"),
    ],
)
def test_bad_secret_sources_are_refused_by_name(environ, message):
    with pytest.raises(ConfigError, match=message):
        load(environ)


@pytest.fixture
def api_reading_ssm(aws, tmp_path, monkeypatch):
    """The app configured to read its secret from /linklog/jwt-secret, services not built yet."""
    monkeypatch.setenv("LINKLOG_STORE", f"file://{tmp_path / 'data'}")
    monkeypatch.setenv("LINKLOG_JWT_SECRET_FROM", "ssm:/linklog/jwt-secret")
    for name in ("LINKLOG_JWT_SECRET", "LINKLOG_JWKS_URL"):
        monkeypatch.delenv(name, raising=False)
    api.use_services(None)
    yield
    api.use_services(None)


def test_the_api_reads_the_secret_once_per_container(api_reading_ssm):
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name="/linklog/jwt-secret", Value=SECRET, Type="SecureString")
    built = api.services()
    assert built.verify(f"Bearer {token(SECRET)}") == Principal("u", "acme")
    # Rotating the parameter does not reach a warm container: it read the secret once.
    ssm.put_parameter(Name="/linklog/jwt-secret", Value="rotated-" + SECRET,
                      Type="SecureString", Overwrite=True)
    assert api.services() is built
    assert built.verify(f"Bearer {token(SECRET)}") == Principal("u", "acme")


def test_an_unreadable_secret_answers_500_misconfigured_and_is_tried_again(api_reading_ssm):
    response = api.links()
    assert response.status_code == 500
    assert '"code": "misconfigured"' in response.body
    assert "ssm:/linklog/jwt-secret" in response.body
    boto3.client("ssm").put_parameter(Name="/linklog/jwt-secret", Value=SECRET,
                                      Type="SecureString")
    assert api.services().verify(f"Bearer {token(SECRET)}") == Principal("u", "acme")
