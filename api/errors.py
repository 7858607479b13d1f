"""Django's error pages for requests that never reached an API view: under /api/ a problem
document (application/problem+json, as every API answer), elsewhere the HTML pages
(templates/400.html, 404.html, 500.html). Installed as handler400/404/500 in config/urls.py.

Such requests are an unknown path (`/api/v1/nothing`), a NUL character in the address
(backoffice.middleware.RejectNulMiddleware) and an error no view handled."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views import defaults

from .problems import problem_json


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return problem_json(400, str(exception) or "The request cannot be read.")
    return defaults.bad_request(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return problem_json(404, "There is no such resource; see /api/v1/docs/.")
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return problem_json(500, "An error on the server; it has been logged.")
    return defaults.server_error(request)
