"""Where a webhook may be sent (SSRF; README "Webhooks").

An endpoint must be ``https`` unless ``WEBHOOK_REQUIRE_HTTPS`` is off (it is on whenever
``DEBUG`` is), and every address its host resolves to must be a public one: private,
loopback, link-local, multicast, reserved and unspecified addresses are refused (loopback
is allowed where ``WEBHOOK_ALLOW_LOOPBACK`` is on: tests and development). The check runs
when the endpoint is registered and again before every delivery, against the addresses
resolved then, and the delivery connects to the address it checked (a DNS answer that
changes between the check and the connection cannot redirect it).
"""

from __future__ import annotations

import ipaddress
import socket
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from apps.core.exceptions import ApplicationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook-dns")


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    address: IPAddress  # the checked address the delivery connects to


def _refuse(message: str, code: str = "invalid_webhook_url") -> ApplicationError:
    return ApplicationError(message, code=code)


def parse_url(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an acceptable URL, or a 400 ``invalid_webhook_url``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _refuse("The URL is not valid.") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise _refuse("A webhook URL starts with https://.")
    if scheme == "http" and settings.WEBHOOK_REQUIRE_HTTPS:
        raise _refuse("A webhook URL must use https.")
    if not parts.hostname:
        raise _refuse("The URL has no host.")
    if parts.username or parts.password:
        raise _refuse("A webhook URL may not carry credentials.")
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80)


def is_allowed_address(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return bool(settings.WEBHOOK_ALLOW_LOOPBACK)
    return address.is_global and not (address.is_multicast or address.is_reserved
                                       or address.is_unspecified or address.is_link_local
                                       or address.is_private)


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an IP literal: itself), within
    ``WEBHOOK_DNS_TIMEOUT_SECONDS``."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    future = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=settings.WEBHOOK_DNS_TIMEOUT_SECONDS)
    except (OSError, FutureTimeout, UnicodeError) as exc:
        raise _refuse("The URL's host does not resolve.", code="webhook_host_unresolvable"
                      ) from exc
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise _refuse("The URL's host does not resolve.", code="webhook_host_unresolvable")
    return addresses


def check_url(url: str) -> Target:
    """Validate ``url`` and resolve it now: the :class:`Target` to connect to, or an
    :class:`ApplicationError` (400) saying why it is refused."""
    scheme, host, port = parse_url(url)
    addresses = resolve(host, port)
    refused = [a for a in addresses if not is_allowed_address(a)]
    if refused:
        raise _refuse("The URL resolves to a private, loopback or link-local address.",
                      code="webhook_address_refused")
    return Target(scheme=scheme, host=host, port=port, address=addresses[0])
