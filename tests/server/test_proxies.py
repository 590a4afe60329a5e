"""Forwarded addresses are believed only from trusted proxies, and read from the right."""

from __future__ import annotations

import pytest

from server.proxies import client_address, parse_networks

PROXIES = parse_networks(["10.0.0.0/8", "192.0.2.1"])


def test_headers_from_an_untrusted_peer_are_ignored():
    headers = [(b"x-forwarded-for", b"1.2.3.4"), (b"forwarded", b"for=5.6.7.8")]
    assert client_address("198.51.100.9", headers, PROXIES) == "198.51.100.9"
    assert client_address("198.51.100.9", headers, ()) == "198.51.100.9"


def test_x_forwarded_for_is_read_from_the_right_past_trusted_proxies():
    headers = [(b"x-forwarded-for", b"6.6.6.6, 203.0.113.5, 10.1.1.1")]  # the client wrote 6.6.6.6 itself
    assert client_address("192.0.2.1", headers, PROXIES) == "203.0.113.5"


def test_repeated_x_forwarded_for_headers_form_one_chain():
    headers = [(b"x-forwarded-for", b"203.0.113.5"), (b"x-forwarded-for", b"10.0.0.2")]
    assert client_address("10.0.0.3", headers, PROXIES) == "203.0.113.5"


def test_forwarded_wins_and_its_quoted_ipv6_with_a_port_is_read():
    headers = [
        (b"x-forwarded-for", b"9.9.9.9"),
        (b"forwarded", b'for=198.51.100.1;proto=https, for="[2001:db8::7]:4711"'),
    ]
    assert client_address("10.0.0.3", headers, PROXIES) == "2001:db8::7"


@pytest.mark.parametrize("garbage", [b"unknown", b"_hidden", b"not-an-ip", b""])
def test_an_unreadable_entry_stops_at_the_last_trusted_address(garbage: bytes):
    headers = [(b"x-forwarded-for", b"203.0.113.5, " + garbage)]
    assert client_address("10.0.0.3", headers, PROXIES) == "10.0.0.3"


def test_a_trusted_proxy_without_headers_is_the_client():
    assert client_address("10.0.0.3", [], PROXIES) == "10.0.0.3"


def test_bad_networks_are_refused_with_what_to_write():
    with pytest.raises(ValueError, match="CIDR"):
        parse_networks(["10.0.0/8"])
