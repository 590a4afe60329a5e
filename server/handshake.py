"""What a WebSocket upgrade request must be before the server answers it with 101 (RFC 6455 section 4.2.1),
and which pages may open one (the Origin allowlist).

Rules: a request with a missing, repeated or malformed `Host`, a `Sec-WebSocket-Key` that is not the base64 of
16 bytes, or another `Sec-WebSocket-Version` than 13 is refused with a 4xx status and a reason (426 names the
version we speak). An `Origin` is a browser saying which page opened the socket: a page of this server's own
origin (the request's Host) may always connect; others only if allowed (`--allowed-origin`), or, when none are
configured, a page on localhost (the embedded setup). `Origin: null` (sandboxed frames, files) is refused
unless "null" is allowed. A request without Origin is not from a browser page (bots, servers, tools): no page
can be hijacked through it, so it is let through, and its token is what authenticates it.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

import attrs

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
_HOST_NAME = re.compile(
    r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)


class HandshakeError(Exception):
    """The upgrade request is refused: answer `status` with `reason` (and `headers`)."""

    def __init__(self, status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers


@attrs.frozen
class Authority:
    """A host and port, lower case, the port filled in from the scheme when left out."""

    host: str
    port: int | None


def parse_host(value: str) -> Authority:
    """A Host header's host and port (RFC 9110 section 7.2, RFC 3986 section 3.2.2).

    Raises:
        ValueError: saying what is wrong with it.
    """
    if not value or len(value) > 255:
        raise ValueError("Host must be a host name or address, with an optional port")
    host, port_text = value, ""
    if value.startswith("["):
        end = value.find("]")
        if end == -1:
            raise ValueError("Host has an unclosed '[' (an IPv6 address)")
        host, rest = value[: end + 1], value[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError("Host has something after its IPv6 address that is not a port")
        port_text = rest[1:]
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError("Host's IPv6 address is not valid") from None
    elif ":" in value:
        host, port_text = value.rsplit(":", 1)
    port = None
    if port_text or value.endswith(":"):
        if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError("Host's port must be a number from 1 to 65535")
        port = int(port_text)
    if not host.startswith("["):
        if not host.isascii() or not _HOST_NAME.match(host):
            raise ValueError("Host is not a valid host name (letters, digits, hyphens and dots; IDNs as xn--)")
        for label in host.lower().split("."):
            if label.startswith("xn--"):
                try:
                    label.encode("ascii").decode("idna")
                except UnicodeError:
                    raise ValueError(f"Host has an invalid internationalised label {label!r}") from None
    return Authority(host=host.lower(), port=port)


def parse_origin(value: str) -> tuple[str, Authority] | None:
    """An Origin's scheme and authority (port filled in), or None if it is not a serialised origin (e.g. null)."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.path or parts.query or parts.username:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return parts.scheme, Authority(host=host, port=port or DEFAULT_PORTS[parts.scheme])


def canonical_origin(value: str) -> str:
    """An origin as `--allowed-origin` takes it, written the one way comparisons use ("null" and "*" as is).

    Raises:
        ValueError: if it is not an origin such as https://game.example.com or http://localhost:8000.
    """
    if value in ("null", "*"):
        return value
    parsed = parse_origin(value.rstrip("/"))
    if parsed is None:
        raise ValueError(
            f"--allowed-origin {value!r} is not an origin: scheme://host[:port], e.g. https://game.example.com"
        )
    scheme, authority = parsed
    return f"{scheme}://{authority.host}:{authority.port}"


@attrs.frozen
class OriginPolicy:
    """Which pages may open a WebSocket: `allowed` (canonical origins, "null", or "*" for any), plus always
    the server's own origin; with nothing allowed explicitly, pages on localhost too."""

    allowed: frozenset[str] = frozenset()

    @classmethod
    def from_options(cls, origins: Sequence[str]) -> OriginPolicy:
        return cls(allowed=frozenset(canonical_origin(origin) for origin in origins))

    def refusal(self, origin: str, host: Authority) -> str | None:
        """Why a page of `origin` may not connect to a server reached as `host`; None if it may."""
        if "*" in self.allowed:
            return None
        parsed = parse_origin(origin)
        if parsed is None:
            return None if origin == "null" and "null" in self.allowed else f"Origin {origin[:80]!r} is not allowed"
        scheme, authority = parsed
        own_port = host.port if host.port is not None else DEFAULT_PORTS[scheme]
        if authority.host == host.host and authority.port == own_port:
            return None
        if f"{scheme}://{authority.host}:{authority.port}" in self.allowed:
            return None
        if not self.allowed and authority.host in LOCAL_HOSTS:
            return None
        return f"Origin {origin[:80]!r} is not allowed to open a WebSocket here (see --allowed-origin)"


def check_upgrade(headers: Sequence[tuple[bytes, bytes]], origins: OriginPolicy) -> None:
    """Check a WebSocket upgrade request's headers (names in lower case, as h11 gives them).

    Raises:
        HandshakeError: with the status and reason to answer.
    """
    values: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        values.setdefault(name, []).append(value)
    hosts = values.get(b"host", [])
    if len(hosts) != 1:
        raise HandshakeError(400, "the request must have exactly one Host header")
    try:
        host = parse_host(hosts[0].decode("latin-1"))
    except ValueError as error:
        raise HandshakeError(400, str(error)) from None
    versions = values.get(b"sec-websocket-version", [])
    if versions != [b"13"]:
        raise HandshakeError(
            426, "this server speaks WebSocket version 13 only", headers=(("Sec-WebSocket-Version", "13"),)
        )
    keys = values.get(b"sec-websocket-key", [])
    if len(keys) != 1 or not _is_websocket_key(keys[0]):
        raise HandshakeError(400, "Sec-WebSocket-Key must be one base64-encoded 16-byte value")
    origin_values = values.get(b"origin", [])
    if len(origin_values) > 1:
        raise HandshakeError(403, "the request has more than one Origin header")
    if origin_values:
        refusal = origins.refusal(origin_values[0].decode("latin-1"), host)
        if refusal is not None:
            raise HandshakeError(403, refusal)


def _is_websocket_key(value: bytes) -> bool:
    if len(value) != 24:
        return False
    try:
        return len(base64.b64decode(value, validate=True)) == 16
    except binascii.Error:
        return False
