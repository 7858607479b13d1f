"""Which webhook URLs may be called: http(s) on a public address. Private, loopback, link-local,
reserved and multicast addresses (the host is resolved, every address counts) are refused unless
WEBHOOK_ALLOW_PRIVATE=true, so a sales account's endpoint cannot make the worker probe the internal
network. Checked when an endpoint is saved and again when a delivery connects: the connection
resolves the host once, checks every address and connects to a checked one (`public_address`), so
a name that changes its answer between the check and the connection (DNS rebinding) gains nothing."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings


class AddressRefused(ValueError):
    """The host cannot be resolved or resolves to an address that may not be called."""


def _refused(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast
            or ip.is_unspecified)


def public_address(host: str, port: int | None = None) -> str:
    """The address to connect to for `host`: the first of its addresses, after every one of them
    has been checked. Raises AddressRefused with the reason."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError):
        raise AddressRefused(f"the host {host} cannot be resolved") from None
    if not infos:
        raise AddressRefused(f"the host {host} cannot be resolved")
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if _refused(ip):
            raise AddressRefused(f"the host {host} resolves to a private or local address ({ip}); not allowed")
    return infos[0][4][0]


def url_problem(url: str) -> str | None:
    """Why `url` may not be called, or None."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("http", "https") or not host:
        return "only http:// and https:// URLs with a host are allowed"
    if parts.username or parts.password:
        return "credentials in the URL are not allowed"
    if getattr(settings, "WEBHOOK_ALLOW_PRIVATE", False):
        return None
    try:
        public_address(host)
    except AddressRefused as exc:
        return str(exc)
    return None
