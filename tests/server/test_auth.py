"""Token verification with each supported algorithm, and guest tokens."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from server.auth import AuthConfig, Authenticator, AuthError


def _pem_pair(private_key) -> tuple[bytes, str]:
    private = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.mark.parametrize(
    ("algorithm", "private_key"),
    [
        ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("ES256", ec.generate_private_key(ec.SECP256R1())),
    ],
)
def test_a_login_services_public_key_verifies_its_tokens_and_nothing_else(algorithm, private_key):
    private, public = _pem_pair(private_key)
    authenticator = Authenticator(AuthConfig(algorithm=algorithm, verification_key=public, guest_tokens=False))
    claims = {"sub": "u1", "name": "Ada", "iss": "arena", "aud": "arena", "exp": int(time.time()) + 60}
    identity = authenticator.verify(jwt.encode(claims, private, algorithm=algorithm))
    assert (identity.subject, identity.name) == ("u1", "Ada")
    with pytest.raises(AuthError, match="invalid token"):  # an HS256 token signed with the public key: refused
        authenticator.verify(jwt.encode(claims, "x" * 40, algorithm="HS256"))


def test_guest_tokens_verify_and_carry_the_name():
    authenticator = Authenticator(AuthConfig())
    token, identity = authenticator.issue_guest("Bob")
    assert authenticator.verify(token) == identity
    assert identity.subject.startswith("guest:") and identity.name == "Bob"
    assert Authenticator(AuthConfig()).issue_guest("Bob")[1].subject != identity.subject


def test_guest_tokens_need_hs256_and_can_be_switched_off():
    with pytest.raises(ValueError, match="HS256"):
        Authenticator(AuthConfig(algorithm="RS256", verification_key="k"))
    with pytest.raises(AuthError, match="switched off"):
        Authenticator(AuthConfig(guest_tokens=False)).issue_guest("x")


def test_an_oversized_token_is_refused_before_decoding():
    with pytest.raises(AuthError, match="longer than"):
        Authenticator(AuthConfig()).verify("a" * 5000)
