"""The client's address honours X-Forwarded-For only from trusted proxies, and cannot be spoofed
by a client that writes the header itself."""

from __future__ import annotations

import pytest

from core.client_address import client_address, parse_trusted_proxies, scope_client_address

PROXIES = parse_trusted_proxies(["10.0.0.0/8", "192.0.2.1", "2001:db8::/32"])
CLIENT = "203.0.113.9"


def test_with_no_trusted_proxy_the_tcp_peer_is_the_client_whatever_the_header_says():
    assert client_address(CLIENT, "198.51.100.1", []) == CLIENT
    assert client_address("10.0.0.5", "198.51.100.1", []) == "10.0.0.5"


def test_a_peer_that_is_not_a_trusted_proxy_cannot_name_another_client():
    assert client_address(CLIENT, "198.51.100.1, 10.0.0.5", PROXIES) == CLIENT


def test_behind_one_trusted_proxy_the_client_is_the_address_it_forwarded():
    assert client_address("10.0.0.5", CLIENT, PROXIES) == CLIENT


def test_a_client_that_prepends_a_fake_address_is_still_found_by_the_rightmost_untrusted_hop():
    # The client sent "X-Forwarded-For: 198.51.100.1"; the proxy appended the peer it saw.
    assert client_address("10.0.0.5", f"198.51.100.1, {CLIENT}", PROXIES) == CLIENT


def test_a_client_that_names_a_trusted_proxy_in_its_header_is_not_skipped_past():
    # Spoofing "10.9.9.9" (a trusted range) left of the real hop gains nothing.
    assert client_address("10.0.0.5", f"10.9.9.9, {CLIENT}", PROXIES) == CLIENT


def test_chains_of_trusted_proxies_are_walked_from_right_to_left():
    assert client_address("10.0.0.5", f"198.51.100.1, {CLIENT}, 192.0.2.1, 10.1.2.3", PROXIES) == CLIENT


def test_when_every_hop_is_trusted_the_leftmost_one_is_the_client():
    assert client_address("10.0.0.5", "10.0.0.7, 10.0.0.6", PROXIES) == "10.0.0.7"


def test_garbage_in_the_header_stops_the_walk_at_the_last_trusted_hop():
    assert client_address("10.0.0.5", f"{CLIENT}, unknown", PROXIES) == "10.0.0.5"
    assert client_address("10.0.0.5", f"{CLIENT}, not-an-ip, 10.0.0.6", PROXIES) == "10.0.0.6"


def test_no_header_from_a_trusted_proxy_means_the_proxy_itself():
    assert client_address("10.0.0.5", None, PROXIES) == "10.0.0.5"
    assert client_address("10.0.0.5", "", PROXIES) == "10.0.0.5"


def test_ports_and_ipv6_hops_are_understood():
    assert client_address("10.0.0.5", f"{CLIENT}:51234", PROXIES) == CLIENT
    assert client_address("2001:db8::1", "[2001:db9::7]:443", PROXIES) == "2001:db9::7"
    assert client_address("::ffff:10.0.0.5", "2001:db9::7", PROXIES) == "2001:db9::7"


def test_an_asgi_scope_with_several_x_forwarded_for_headers_is_read_as_one_list(settings):
    settings.AIGW_TRUSTED_PROXIES = ["10.0.0.0/8"]
    scope = {
        "client": ("10.0.0.5", 40000),
        "headers": [(b"x-forwarded-for", b"198.51.100.1"), (b"x-forwarded-for", CLIENT.encode())],
    }
    assert scope_client_address(scope) == CLIENT
    settings.AIGW_TRUSTED_PROXIES = []
    assert scope_client_address(scope) == "10.0.0.5"


def test_a_trusted_proxy_setting_that_is_not_an_address_is_refused():
    with pytest.raises(ValueError):
        parse_trusted_proxies(["10.0.0.0/8", "proxy.internal"])
