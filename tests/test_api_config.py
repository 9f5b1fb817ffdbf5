"""Settings from the environment, and the services the API builds from them."""

from __future__ import annotations

import time

import pytest

import app as api
from chalicelib.auth import Principal, issue_token
from chalicelib.config import ConfigError, Settings, load
from chalicelib.queue import LocalQueue
from chalicelib.store import CountingStore


def test_defaults_follow_the_design():
    assert load({}) == Settings(
        store="file://./data", queue="local", jwt_secret=None, jwks_url=None,
        allow_hosts="", port=8000,
    )


def test_every_variable_is_read():
    settings = load({
        "LINKLOG_STORE": "s3://bucket/prefix",
        "LINKLOG_QUEUE": "https://sqs.eu-west-1.amazonaws.com/123456789012/linklog-process",
        "LINKLOG_JWKS_URL": "https://issuer.example/jwks.json",
        "LINKLOG_JWT_AUDIENCE": "https://api.linklog.example",
        "LINKLOG_JWT_ISSUER": "https://issuer.example/",
        "LINKLOG_ALLOW_HOSTS": "127.0.0.1:8080",
        "LINKLOG_PORT": "9001",
        "LINKLOG_LEASE_SECONDS": "7.5",
    })

    assert settings == Settings(
        store="s3://bucket/prefix",
        queue="https://sqs.eu-west-1.amazonaws.com/123456789012/linklog-process",
        jwt_secret=None, jwks_url="https://issuer.example/jwks.json",
        jwt_audience="https://api.linklog.example", jwt_issuer="https://issuer.example/",
        allow_hosts="127.0.0.1:8080", port=9001, lease_seconds=7.5,
    )


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"LINKLOG_PORT": "http"}, "LINKLOG_PORT must be a port number, not 'http'"),
        ({"LINKLOG_PORT": "70000"}, "LINKLOG_PORT must be between 0 and 65535, not 70000"),
        ({"LINKLOG_PORT": "-1"}, "LINKLOG_PORT must be between 0 and 65535, not -1"),
        ({"LINKLOG_LEASE_SECONDS": "soon"},
         "LINKLOG_LEASE_SECONDS must be a number of seconds, not 'soon'"),
        ({"LINKLOG_LEASE_SECONDS": "0.5"}, "LINKLOG_LEASE_SECONDS must be between 1 and 3600, not 0.5"),
        ({"LINKLOG_LEASE_SECONDS": "nan"}, "LINKLOG_LEASE_SECONDS must be between 1 and 3600, not nan"),
        ({"LINKLOG_JWT_SECRET": "s", "LINKLOG_JWKS_URL": "http://127.0.0.1/jwks"},
         "set LINKLOG_JWT_SECRET or LINKLOG_JWKS_URL, not both"),
    ],
)
def test_bad_settings_are_refused_by_name(environ, message):
    with pytest.raises(ConfigError) as caught:
        load(environ)
    assert str(caught.value) == message


def test_services_are_built_once_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LINKLOG_STORE", f"file://{tmp_path / 'data'}")
    monkeypatch.setenv("LINKLOG_QUEUE", "local")
    monkeypatch.setenv("LINKLOG_JWT_SECRET", "a-secret-long-enough-for-hs256-signing!")
    monkeypatch.delenv("LINKLOG_JWKS_URL", raising=False)
    api.use_services(None)
    try:
        built = api.services()

        assert api.services() is built
        assert isinstance(built.store, CountingStore)
        assert isinstance(built.queue, LocalQueue)
        token = issue_token("a-secret-long-enough-for-hs256-signing!", sub="u", org="acme",
                            lifetime_seconds=60, now=time.time())
        assert built.verify(f"Bearer {token}") == Principal("u", "acme")
        built.notify("acme")
        assert built.queue.pending() == ["acme"]
    finally:
        api.use_services(None)


def test_without_a_token_setting_every_route_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("LINKLOG_STORE", f"file://{tmp_path / 'data'}")
    monkeypatch.delenv("LINKLOG_JWT_SECRET", raising=False)
    monkeypatch.delenv("LINKLOG_JWKS_URL", raising=False)
    api.use_services(None)
    try:
        with pytest.raises(ConfigError, match="LINKLOG_JWT_SECRET"):
            api.services()
        response = api.links()
        assert response.status_code == 500
        assert '"code": "misconfigured"' in response.body
        assert "LINKLOG_JWKS_URL" in response.body
    finally:
        api.use_services(None)


@pytest.mark.parametrize("variables, expected", [
    ({"AWS_REGION": "eu-west-1"}, "eu-west-1"),
    ({"AWS_DEFAULT_REGION": "ap-south-1"}, "ap-south-1"),
    ({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "ap-south-1"}, "eu-west-1"),
])
def test_every_aws_client_takes_the_region_the_environment_names(monkeypatch, variables, expected):
    # botocore reads AWS_DEFAULT_REGION only: with AWS_REGION alone (as the
    # README documents it) a Bedrock client refused to be made at all.
    from chalicelib import queue
    from chalicelib.links.bedrock import make_bedrock_client
    from chalicelib.store.s3 import new_client

    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    clients = [make_bedrock_client(1.0), new_client(),
               queue._sqs_client("http://127.0.0.1:9/000000000000/linklog")]
    assert [client.meta.region_name for client in clients] == [expected] * 3
