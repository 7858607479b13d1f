"""Which client sent a request, and whether it came over https, when a reverse proxy may stand in front.

X-Forwarded-For and X-Forwarded-Proto are written by whoever connects: a client that reaches the app
port directly can put any address and any scheme into them. So they count only when the peer
(REMOTE_ADDR) is one of the proxies listed in DJANGO_TRUSTED_PROXIES (settings.TRUSTED_PROXIES):

- From any other peer every forwarded header (X-Forwarded-*, Forwarded, X-Real-IP) is removed before
  anything reads it, so Django's SECURE_PROXY_SSL_HEADER never sees a forged X-Forwarded-Proto
  (Django cannot check the peer itself) and the peer's own address is the client.
- From a trusted proxy the client is the right-most X-Forwarded-For entry that is not itself a trusted
  proxy: each proxy appends the address it was connected from, so entries further left are whatever
  the client wrote and are ignored. An entry that is no IP address ends the walk (the last trusted hop
  counts). REMOTE_ADDR is then set to the client, and X-Forwarded-For, used up, is removed.

Everything downstream (django-axes through AXES_CLIENT_IP_CALLABLE, the password-reset throttle) reads
REMOTE_ADDR only. The middleware must come first in MIDDLEWARE, before SecurityMiddleware reads the
scheme for its https redirect.
"""

import ipaddress
from collections.abc import Callable
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=8)
def _networks(values: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(value, strict=False) for value in values)


def _address(value: str) -> Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _is_trusted(address: Address | None, networks: tuple[Network, ...]) -> bool:
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address.version == network.version and address in network for network in networks)


def forwarded_client(peer: str, forwarded_for: str, networks: tuple[Network, ...]) -> str:
    """The client behind a trusted peer: the right-most X-Forwarded-For entry that is no trusted proxy."""
    client = peer
    for entry in reversed(forwarded_for.split(",")):
        address = _address(entry)
        if address is None:
            break
        client = str(address)
        if not _is_trusted(address, networks):
            break
    return client


FORWARDED_PREFIXES = ("HTTP_X_FORWARDED_", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


class TrustedProxyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        meta = request.META
        networks = _networks(tuple(settings.TRUSTED_PROXIES))
        peer = meta.get("REMOTE_ADDR", "")
        if networks and _is_trusted(_address(peer), networks):
            forwarded_for = meta.pop("HTTP_X_FORWARDED_FOR", "")
            meta["REMOTE_ADDR"] = forwarded_client(peer, forwarded_for, networks)
        else:
            for key in [key for key in meta if key.startswith(FORWARDED_PREFIXES)]:
                del meta[key]
        return self.get_response(request)


def client_ip(request: HttpRequest) -> str | None:
    """AXES_CLIENT_IP_CALLABLE: the address TrustedProxyMiddleware settled on."""
    return request.META.get("REMOTE_ADDR") or None
