"""Who is the client? The address of the peer, or, behind reverse proxies that the
operator names (``TRUSTED_PROXIES``), the address those proxies saw (README "Security").

``X-Forwarded-For`` is read right to left: each trusted proxy appends the address it got
the request from, so the first address from the right that is not a trusted proxy is the
client. Anything left of it was written by the client and is ignored, so a forged header
cannot pick another address. With no trusted proxies (the default) the header is ignored
entirely: ``REMOTE_ADDR`` is the client.
"""

from __future__ import annotations

import ipaddress
from functools import cache

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@cache
def _networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in proxies if p.strip())


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(request: HttpRequest) -> str:
    """The client's IP address as a string ("unknown" when there is none)."""
    peer = request.META.get("REMOTE_ADDR", "") or ""
    networks = _networks(tuple(getattr(settings, "TRUSTED_PROXIES", ()) or ()))
    if not networks or not _trusted(peer, networks):
        return peer or "unknown"
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return "unknown"  # garbage where an address should be: one shared bucket
    return hops[0] if hops else peer  # every hop is a proxy: the farthest one
