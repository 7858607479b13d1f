"""Every error of the API as an RFC 9457 problem document (application/problem+json), with the
field errors of a 400 in `errors` ({"pointer" or "field", "detail"})."""

from __future__ import annotations

from django.http import JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

PROBLEM_JSON = "application/problem+json"
TITLES = {400: "Invalid request", 401: "Not authenticated", 403: "Forbidden", 404: "Not found",
          405: "Method not allowed", 406: "Not acceptable", 409: "Conflict", 413: "Payload too large",
          415: "Unsupported media type", 429: "Too many requests", 500: "Internal server error"}


def problem_body(status_code: int, detail: str) -> dict:
    return {"type": "about:blank", "title": TITLES.get(status_code, "Error"), "status": status_code, "detail": detail}


def problem_json(status_code: int, detail: str) -> JsonResponse:
    """A problem document outside DRF's views (middleware, Django's error handlers)."""
    return JsonResponse(problem_body(status_code, detail), status=status_code, content_type=PROBLEM_JSON)


def problem(status_code: int, detail: str, *, errors: list[dict] | None = None, headers=None) -> Response:
    body = problem_body(status_code, detail)
    if errors:
        body["errors"] = errors
    response = Response(body, status=status_code, headers=headers, content_type=PROBLEM_JSON)
    return response


def _flatten(data, prefix: str = "") -> list[dict]:
    if isinstance(data, dict):
        return [e for key, value in data.items() for e in _flatten(value, f"{prefix}/{key}")]
    if isinstance(data, list) and data and not all(isinstance(x, str) for x in data):
        return [e for i, value in enumerate(data) for e in _flatten(value, f"{prefix}/{i}")]
    messages = data if isinstance(data, list) else [data]
    return [{"pointer": prefix or "/", "detail": str(m)} for m in messages]


def problem_exception_handler(exc, context):
    response = exception_handler(exc, context)
    if response is None:
        return None
    status_code = response.status_code
    headers = {k: v for k, v in response.items() if k.lower() in ("retry-after", "www-authenticate", "allow")}
    data = response.data
    if isinstance(exc, exceptions.ValidationError):
        return problem(status_code, "The request is invalid; see errors.", errors=_flatten(data), headers=headers)
    detail = data.get("detail", "") if isinstance(data, dict) else str(data)
    return problem(status_code, str(detail), headers=headers)
