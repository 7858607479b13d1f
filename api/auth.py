"""Bearer keys, the per-key rate limit and the body size limit of the API."""

from __future__ import annotations

import math

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.parsers import JSONParser
from rest_framework.throttling import SimpleRateThrottle

from accounts.services import api_key_authenticate


class ApiClient:
    """The caller of a request: the key and its sales account."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, key) -> None:
        self.key = key
        self.sales_account = key.sales_account

    def __str__(self) -> str:
        return f"API key {self.key.prefix}"


class BearerKeyAuthentication(BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts:
            return None
        if parts[0].lower() != self.keyword or len(parts) != 2:
            raise exceptions.AuthenticationFailed("Use the header: Authorization: Bearer <key>")
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid API key.") from None
        row = api_key_authenticate(key, now=timezone.now())
        if row is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return ApiClient(row), row

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class KeyRateThrottle(SimpleRateThrottle):
    """API_RATE_LIMIT (default 50/s) per key; 429 with Retry-After beyond it; RateLimit-* headers on every answer."""

    scope = "api_key"

    def get_rate(self) -> str:
        return settings.API_RATE_LIMIT

    def allow_request(self, request, view) -> bool:
        """As DRF's, and it leaves the key's quota on the request for the RateLimit-* headers
        (api.views.ApiView): the limit, what is left of it, and the seconds until a request of the
        window drops out of it."""
        allowed = super().allow_request(request, view)
        if self.rate is not None and self.key is not None:
            oldest = self.history[-1] if self.history else self.now
            request.rate_limit = (self.num_requests, max(0, self.num_requests - len(self.history)),
                                  max(1, math.ceil(self.duration - (self.now - oldest))))
        return allowed

    def get_cache_key(self, request, view):
        if isinstance(request.user, ApiClient):
            return f"api-throttle-{request.user.key.key_hash[:24]}"
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "too_large"


class LimitedJSONParser(JSONParser):
    """JSON with a size limit (API_MAX_BODY_BYTES): 413 beyond it, before anything is parsed."""

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        limit = settings.API_MAX_BODY_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
        except ValueError:
            length = 0
        if length > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        try:
            return super().parse(stream, media_type, parser_context)
        except RequestDataTooBig:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes.") from None


class BearerKeyScheme(OpenApiAuthenticationExtension):
    """The bearer key in the OpenAPI schema (the docs page's "Authorize" button)."""

    target_class = "api.auth.BearerKeyAuthentication"
    name = "bearerKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "an API key of a sales account"}
