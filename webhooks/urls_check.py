"""Which webhook URLs may be called: http(s) on a public address. Private, loopback, link-local,
reserved and multicast addresses (the host is resolved, every address counts) are refused unless
WEBHOOK_ALLOW_PRIVATE=true, so a sales account's endpoint cannot make the worker probe the internal
network. Checked when an endpoint is saved and again before every delivery (DNS may change)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings


def _address_problem(host: str) -> str | None:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError):
        return f"the host {host} cannot be resolved"
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast \
                or ip.is_unspecified:
            return f"the host {host} resolves to a private or local address ({ip}); not allowed"
    return None


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
    return _address_problem(host)
