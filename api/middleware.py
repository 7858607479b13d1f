"""The API's middleware: a body over API_MAX_BODY_BYTES is answered 413 (a problem document) before
anything reads it; the API answers in English."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation

from .problems import problem_json


class ApiBodyLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            limit = settings.API_MAX_BODY_BYTES
            if length > limit:
                return problem_json(413, f"The request body is larger than {limit} bytes.")
        return self.get_response(request)


class ApiEnglishMiddleware:
    """The API speaks English whatever the client's Accept-Language: its own texts are English, and
    DRF's ("Authentication credentials were not provided.", "Method not allowed") would otherwise come
    in the back office's default German. Placed after LocaleMiddleware, which then reports
    `Content-Language: en`."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/"):
            translation.activate("en")
            request.LANGUAGE_CODE = "en"
        return self.get_response(request)
