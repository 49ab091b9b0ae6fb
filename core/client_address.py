"""The client's address, honouring `X-Forwarded-For` only from trusted proxies.

One rule for the console's sign-in throttle (django-axes, `AXES_CLIENT_IP_CALLABLE`) and the data
plane's invalid-key throttle: the peer of the TCP connection (`REMOTE_ADDR`) is the client unless
it is one of `AIGW_TRUSTED_PROXIES`; then `X-Forwarded-For` is walked from right to left (each
proxy appends the peer it saw), skipping trusted hops, and the first untrusted hop is the client.
Entries left of that hop were written by the client itself and are never believed.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from django.http import HttpRequest

Network = IPv4Network | IPv6Network


def parse_trusted_proxies(values: Iterable[str]) -> list[Network]:
    """Networks from IP addresses or CIDRs (`10.0.0.0/8`, `192.0.2.7`, `::1`).

    Raises:
        ValueError: for an entry that is neither.
    """
    return [ip_network(value.strip(), strict=False) for value in values if value.strip()]


def _parse_hop(hop: str) -> IPv4Address | IPv6Address | None:
    """One `X-Forwarded-For` entry as an address: `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]:443`
    or `2001:db8::1`; None for anything else (`unknown`, an obfuscated name, garbage)."""
    hop = hop.strip()
    if hop.startswith("["):
        hop = hop[1 : hop.find("]")] if "]" in hop else ""
    elif hop.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has at least two colons
        hop = hop.split(":", 1)[0]
    try:
        return ip_address(hop)
    except ValueError:
        return None


def _is_trusted(address: IPv4Address | IPv6Address, trusted: list[Network]) -> bool:
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in trusted)


def client_address(remote_addr: str, forwarded_for: str | None, trusted: list[Network]) -> str:
    """The client's address for a connection from `remote_addr` carrying `forwarded_for`.

    With no trusted proxies, or a peer that is not one, `remote_addr` itself. Otherwise the
    rightmost `X-Forwarded-For` hop that is not a trusted proxy; if every hop is trusted, the
    leftmost one; if a hop cannot be parsed, the last trusted hop before it (the header left of
    garbage is not believed).
    """
    peer = _parse_hop(remote_addr)
    if peer is None or not trusted or not _is_trusted(peer, trusted) or not forwarded_for:
        return remote_addr
    client = peer
    for hop in reversed(forwarded_for.split(",")):
        address = _parse_hop(hop)
        if address is None:
            return str(client)
        client = address
        if not _is_trusted(address, trusted):
            return str(address)
    return str(client)


@lru_cache(maxsize=4)
def _trusted_from(values: tuple[str, ...]) -> list[Network]:
    return parse_trusted_proxies(values)


def trusted_proxies() -> list[Network]:
    """`AIGW_TRUSTED_PROXIES` parsed (cached per value, so a settings override takes effect)."""
    from django.conf import settings

    return _trusted_from(tuple(settings.AIGW_TRUSTED_PROXIES))


def request_client_address(request: HttpRequest) -> str:
    """The client's address of a Django request (django-axes' `AXES_CLIENT_IP_CALLABLE`)."""
    return client_address(
        request.META.get("REMOTE_ADDR", ""),
        request.META.get("HTTP_X_FORWARDED_FOR"),
        trusted_proxies(),
    )


def scope_client_address(scope: dict) -> str:
    """The client's address of an ASGI HTTP `scope` (the data plane)."""
    peer = scope.get("client")
    remote_addr = peer[0] if peer else ""
    forwarded: list[str] = []
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-for":
            forwarded.append(value.decode("latin-1"))
    return client_address(remote_addr, ",".join(forwarded) or None, trusted_proxies())
