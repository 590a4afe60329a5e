"""Which address a request comes from: the TCP peer's, or the one a trusted proxy forwarded.

Rules: `Forwarded` (RFC 7239) and `X-Forwarded-For` are read only when the TCP peer is a trusted proxy;
from anyone else they are ignored, since anyone can write them. The chain is read from the right: the proxies
we trust appended the entries nearest the end, so the first entry from the right that is not a trusted proxy
is the client; an entry we cannot read (`unknown`, an obfuscated name, garbage) stops the walk at the last
address we could trust. `Forwarded` wins over `X-Forwarded-For` when both are there.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(texts: Iterable[str], *, option: str = "--trusted-proxy") -> tuple[IPNetwork, ...]:
    """CIDR networks (or single addresses) as given to `option`.

    Raises:
        ValueError: naming the entry that is not an address or network.
    """
    networks = []
    for text in texts:
        try:
            networks.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"--trusted-proxy {text!r} is not an IP address or CIDR network (e.g. 10.0.0.0/8)"
            ) from None
    return tuple(networks)


def is_trusted(address: str, networks: Sequence[IPNetwork]) -> bool:
    if not networks:
        return False
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return any(parsed in network for network in networks)


def client_address(peer: str, headers: Sequence[tuple[bytes, bytes]], networks: Sequence[IPNetwork]) -> str:
    """The client's address: `peer`, or, when `peer` is a trusted proxy, the one its forwarding headers name."""
    if not is_trusted(peer, networks):
        return peer
    forwarded = [value for name, value in headers if name.lower() == b"forwarded"]
    chain = _forwarded_for(forwarded) if forwarded else None
    if chain is None:
        x_forwarded = [value for name, value in headers if name.lower() == b"x-forwarded-for"]
        if not x_forwarded:
            return peer
        chain = [entry.strip() for value in x_forwarded for entry in value.decode("latin-1").split(",")]
    client = peer
    for entry in reversed(chain):
        address = _address_of(entry)
        if address is None:
            break
        client = address
        if not is_trusted(address, networks):
            break
    return client


def _forwarded_for(values: list[bytes]) -> list[str] | None:
    """The `for=` of each element of `Forwarded` headers, in order; None if no element has one."""
    chain: list[str] = []
    for value in values:
        for element in value.decode("latin-1").split(","):
            found = ""
            for pair in element.split(";"):
                name, _, text = pair.strip().partition("=")
                if name.strip().lower() == "for":
                    found = text.strip()
            chain.append(found)
    return chain if any(chain) else None


def _address_of(entry: str) -> str | None:
    """The IP address an X-Forwarded-For entry or a `for=` value names (port and quotes removed), or None."""
    text = entry.strip().strip('"')
    if text.startswith("["):  # "[2001:db8::1]:4711"
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # "192.0.2.43:47011"
        text = text.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None
