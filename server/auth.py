"""Who a client is: signed tokens (JWT, via PyJWT), checked against the operator's key, issuer and audience.

Rules: a token must be signed with the configured algorithm and key, carry `sub` and `exp`, and match the
configured issuer and audience; anything else is refused with a reason a developer can act on. For
development the server can sign guest tokens itself (HS256 with its own secret).
"""

from __future__ import annotations

import secrets
import time

import attrs
import jwt

MAX_TOKEN_BYTES = 2048
GUEST_SUBJECT_PREFIX = "guest:"


class AuthError(Exception):
    """A token was refused; the message says why."""


@attrs.frozen
class Identity:
    """A verified player: `subject` is stable across connections; `expires_at` is Unix time."""

    subject: str
    name: str | None
    expires_at: float


@attrs.frozen(kw_only=True)
class AuthConfig:
    """How tokens are verified, and whether this server issues guest tokens.

    Attributes:
        algorithm: "HS256" (shared secret), "RS256" or "ES256" (the login service's public key).
        verification_key: the HS256 secret, or the PEM public key. None with HS256 means a random secret made
            at start-up, which is only useful with guest tokens.
        issuer, audience: the `iss` and `aud` a token must carry.
        guest_tokens: whether POST /auth/guest hands out tokens (HS256 only).
        guest_token_seconds: how long a guest token lives.
        leeway_seconds: clock skew tolerated on `exp`, `nbf`, `iat`.
    """

    algorithm: str = "HS256"
    verification_key: str | None = None
    issuer: str = "arena"
    audience: str = "arena"
    guest_tokens: bool = True
    guest_token_seconds: int = 3600
    leeway_seconds: int = 5


@attrs.define(eq=False)
class Authenticator:
    config: AuthConfig
    _key: str = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        if self.config.algorithm not in ("HS256", "RS256", "ES256"):
            raise ValueError(f"unsupported token algorithm {self.config.algorithm!r}: use HS256, RS256 or ES256")
        if self.config.guest_tokens and self.config.algorithm != "HS256":
            raise ValueError("guest tokens need HS256: the server signs them with its own secret")
        self._key = self.config.verification_key or secrets.token_urlsafe(32)

    @property
    def makes_its_own_secret(self) -> bool:
        """Whether the HS256 secret was made here at start-up (no key configured): a fleet shares one instead."""
        return self.config.algorithm == "HS256" and self.config.verification_key is None

    def use_shared_secret(self, secret: str) -> None:
        """Sign and verify with the fleet's secret from now on (server.fleet), instead of one made here."""
        if not self.makes_its_own_secret:
            raise ValueError("a configured key is kept: only a secret made at start-up gives way to the fleet's")
        self._key = secret

    def verify(self, token: str) -> Identity:
        """The identity a token proves.

        Raises:
            AuthError: if the token is malformed, forged, expired, not yet valid, or for another issuer or audience.
        """
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthError(f"token is longer than {MAX_TOKEN_BYTES} bytes")
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[self.config.algorithm],
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_seconds,
                options={"require": ["sub", "exp"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired: get a new one") from None
        except jwt.InvalidAudienceError:
            raise AuthError(f"token is for another audience: this server accepts {self.config.audience!r}") from None
        except jwt.InvalidIssuerError:
            raise AuthError(f"token is from another issuer: this server accepts {self.config.issuer!r}") from None
        except jwt.InvalidSignatureError:
            raise AuthError("token signature does not verify") from None
        except jwt.MissingRequiredClaimError as error:
            raise AuthError(f"token lacks the {error.claim!r} claim") from None
        except jwt.InvalidTokenError as error:
            raise AuthError(f"invalid token: {error}") from None
        subject, name = claims["sub"], claims.get("name")
        if not isinstance(subject, str) or not subject:
            raise AuthError("token's 'sub' must be a non-empty string")
        return Identity(subject=subject, name=name if isinstance(name, str) else None, expires_at=float(claims["exp"]))

    def issue_guest(self, name: str) -> tuple[str, Identity]:
        """A signed guest token for a display name.

        Raises:
            AuthError: if this server does not hand out guest tokens.
        """
        if not self.config.guest_tokens:
            raise AuthError("guest tokens are switched off on this server: sign in with your login service")
        now = int(time.time())
        subject = GUEST_SUBJECT_PREFIX + secrets.token_urlsafe(12)
        expires_at = now + self.config.guest_token_seconds
        claims = {
            "sub": subject,
            "name": name,
            "iss": self.config.issuer,
            "aud": self.config.audience,
            "iat": now,
            "exp": expires_at,
        }
        token = jwt.encode(claims, self._key, algorithm="HS256")
        return token, Identity(subject=subject, name=name, expires_at=float(expires_at))
