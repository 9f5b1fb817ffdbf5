"""Bearer tokens: HS256 with a secret, RS256 from a JWKS served over HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from chalicelib.api_errors import ApiError
from chalicelib.auth import Principal, issue_token, make_verifier
from chalicelib.config import ConfigError

SECRET = "a-test-secret-that-is-long-enough-for-hs256"
NOW = time.time()


def hs256(claims: dict, secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def claims(**changes) -> dict:
    base = {"sub": "user-1", "org": "acme", "exp": int(NOW) + 3600}
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


def refused(verify, header) -> ApiError:
    with pytest.raises(ApiError) as caught:
        verify(header)
    return caught.value


def unsigned(payload: dict) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


def test_a_good_hs256_token_names_the_caller():
    verify = make_verifier(secret=SECRET)

    assert verify(f"Bearer {hs256(claims())}") == Principal(sub="user-1", org="acme")
    assert verify(f"bearer  {hs256(claims())} ") == Principal(sub="user-1", org="acme")


def test_issued_tokens_verify():
    token = issue_token(SECRET, sub="dev", org="demo", lifetime_seconds=60, now=time.time())

    assert make_verifier(secret=SECRET)(f"Bearer {token}") == Principal("dev", "demo")


@pytest.mark.parametrize(
    "header, message",
    [
        (None, "missing Authorization: Bearer token"),
        ("", "missing Authorization: Bearer token"),
        ("Bearer", "Authorization must be 'Bearer <token>'"),
        (f"Basic {hs256(claims())}", "Authorization must be 'Bearer <token>'"),
        ("Bearer not.a.token", "invalid token"),
        ("Bearer " + "a" * 9000, "token too long"),
        (f"Bearer {hs256(claims(exp=int(NOW) - 120))}", "token expired"),
        (f"Bearer {hs256(claims(exp=None))}", 'invalid token: Token is missing the "exp" claim'),
        (f"Bearer {hs256(claims(org=None))}", 'invalid token: Token is missing the "org" claim'),
        (f"Bearer {hs256(claims(sub=None))}", 'invalid token: Token is missing the "sub" claim'),
        (f"Bearer {hs256(claims(org='../other'))}", "invalid token: org is not a valid org name"),
        (f"Bearer {hs256(claims(org=7))}", "invalid token: org is not a valid org name"),
        (f"Bearer {hs256(claims(sub=''))}", "invalid token: sub must be a non-empty string"),
        (f"Bearer {hs256(claims(), secret='another-secret-of-sufficient-length!!')}",
         "invalid token: Signature verification failed"),
        (f"Bearer {unsigned(claims())}", "invalid token"),
    ],
)
def test_bad_hs256_tokens_are_refused_with_401(header, message):
    error = refused(make_verifier(secret=SECRET), header)

    assert error.status == 401
    assert error.code == "unauthorized"
    assert error.message.startswith(message)
    assert error.response_headers()["WWW-Authenticate"] == 'Bearer realm="linklog"'


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url(rsa_key):
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    document = json.dumps({"keys": [{**jwk, "kid": "key-1", "use": "sig", "alg": "RS256"}]}).encode()

    class Keys(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    server.shutdown()
    server.server_close()


def rs256(rsa_key, payload: dict, kid: str = "key-1") -> str:
    return jwt.encode(payload, rsa_key, algorithm="RS256", headers={"kid": kid})


def test_a_good_rs256_token_verifies_against_the_jwks(rsa_key, jwks_url):
    verify = make_verifier(jwks_url=jwks_url)

    assert verify(f"Bearer {rs256(rsa_key, claims())}") == Principal("user-1", "acme")


def test_bad_rs256_tokens_are_refused(rsa_key, jwks_url):
    verify = make_verifier(jwks_url=jwks_url)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # HS/RS confusion: the public key (which anyone may have) used as an HMAC secret.
    confused = _hmac_token(claims(), public_pem, kid="key-1")

    for token in (
        rs256(other_key, claims()),
        rs256(rsa_key, claims(), kid="unknown"),
        rs256(rsa_key, claims(exp=int(NOW) - 120)),
        rs256(rsa_key, claims(org=None)),
        confused,
        unsigned(claims()),
    ):
        assert refused(verify, f"Bearer {token}").status == 401


def _hmac_token(payload: dict, secret: bytes, kid: str) -> str:
    # PyJWT refuses to sign HS256 with a PEM key, so build the token by hand.
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = part(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = part(json.dumps(payload).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{part(signature)}"


def test_an_rs256_token_is_refused_by_an_hs256_verifier(rsa_key):
    assert refused(make_verifier(secret=SECRET), f"Bearer {rs256(rsa_key, claims())}").status == 401


def test_unreachable_keys_are_a_503_to_retry(rsa_key):
    verify = make_verifier(jwks_url="http://127.0.0.1:9/jwks.json")

    error = refused(verify, f"Bearer {rs256(rsa_key, claims())}")
    assert (error.status, error.code) == (503, "keys_unavailable")
    assert error.response_headers()["Retry-After"] == "1"


def test_a_verifier_needs_exactly_one_key_source():
    with pytest.raises(ConfigError):
        make_verifier()
    with pytest.raises(ConfigError):
        make_verifier(secret=SECRET, jwks_url="http://127.0.0.1/jwks")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"exp": str(int(NOW) + 3600)}, "invalid token: exp must be a number of seconds since 1970"),
        ({"exp": 1e20}, "invalid token: exp must be a number of seconds since 1970"),
        ({"exp": float("inf")}, "invalid token"),
        ({"nbf": "0"}, "invalid token: nbf must be a number of seconds since 1970"),
        ({"iat": str(int(NOW))}, "invalid token: iat must be a number of seconds since 1970"),
        ({"iat": True}, "invalid token: iat must be a number of seconds since 1970"),
        ({"nbf": -5}, "invalid token: nbf must be a number of seconds since 1970"),
    ],
)
def test_token_times_must_be_numbers_of_a_real_date(changes, message):
    error = refused(make_verifier(secret=SECRET), f"Bearer {hs256(claims(**changes))}")

    assert error.status == 401
    assert error.message.startswith(message)


def test_token_times_as_numbers_are_accepted():
    now = time.time()
    token = hs256(claims(iat=now - 10, nbf=int(now) - 10, exp=now + 3600.5))

    assert make_verifier(secret=SECRET)(f"Bearer {token}") == Principal("user-1", "acme")


def test_without_an_expected_audience_or_issuer_a_providers_token_is_accepted():
    token = hs256(claims(aud="https://api.linklog.example", iss="https://id.example/"))

    assert make_verifier(secret=SECRET)(f"Bearer {token}") == Principal("user-1", "acme")


AUDIENCE = "https://api.linklog.example"
ISSUER = "https://tenant.id.example/"


@pytest.mark.parametrize("aud", [AUDIENCE, [AUDIENCE, "https://tenant.id.example/userinfo"]])
def test_the_expected_audience_and_issuer_are_accepted(aud):
    verify = make_verifier(secret=SECRET, audience=AUDIENCE, issuer=ISSUER)

    assert verify(f"Bearer {hs256(claims(aud=aud, iss=ISSUER))}") == Principal("user-1", "acme")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"aud": "https://other.example"}, "invalid token: Audience doesn't match"),
        ({"aud": ["https://other.example"]}, "invalid token: Audience doesn't match"),
        ({"aud": None}, 'invalid token: Token is missing the "aud" claim'),
        ({"iss": "https://evil.example/"}, "invalid token: Invalid issuer"),
        ({"iss": None}, 'invalid token: Token is missing the "iss" claim'),
    ],
)
def test_another_audience_or_issuer_is_refused(changes, message):
    verify = make_verifier(secret=SECRET, audience=AUDIENCE, issuer=ISSUER)
    token = hs256(claims(**{"aud": AUDIENCE, "iss": ISSUER, **changes}))

    error = refused(verify, f"Bearer {token}")
    assert error.status == 401
    assert error.message.startswith(message)


def test_an_identity_providers_rs256_token_verifies_with_audience_and_issuer(rsa_key, jwks_url):
    # Shaped like an Auth0 access token: aud a list, iss the tenant, org a custom claim.
    verify = make_verifier(jwks_url=jwks_url, audience=AUDIENCE, issuer=ISSUER)
    token = rs256(rsa_key, claims(aud=[AUDIENCE, f"{ISSUER}userinfo"], iss=ISSUER,
                                  iat=int(NOW), scope="openid"))

    assert verify(f"Bearer {token}") == Principal("user-1", "acme")
    other = rs256(rsa_key, claims(aud="https://other.example", iss=ISSUER))
    assert refused(verify, f"Bearer {other}").status == 401
