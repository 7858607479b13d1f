from collections.abc import Callable

from django.core.exceptions import BadRequest
from django.http import HttpRequest, HttpResponse

# Everything the back office loads comes from this origin; no inline scripts.
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'self'; object-src 'none'"
)


class ContentSecurityPolicyMiddleware:
    """Sets a Content-Security-Policy on the back-office pages (not on Django admin, whose
    widgets use inline scripts)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path.startswith("/admin/"):
            response.headers.setdefault("Content-Security-Policy", CSP)
        return response


class RejectNulMiddleware:
    """Answers 400 to a request whose path or query string has a NUL character (in a parameter's
    name or value too).

    PostgreSQL text cannot hold NUL: a filter like `?status__exact=%00` in an admin change list, or
    an order number in an API path (`/api/v1/orders/%00`), reaches the database unchecked and
    psycopg raises (a 500). Form fields already refuse NUL (ProhibitNullCharactersValidator); admin
    lookups, searches and URL parts do not, and no legitimate link carries one, so path and query
    string are checked once here for every request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path or "\x00" in request.META.get("QUERY_STRING", "") or any(
            "\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists()
        ):
            raise BadRequest("NUL character in the address")
        return self.get_response(request)


class SqliteIntegerOverflowMiddleware:
    """Answers 400 where an integer from the request is too large for SQLite.

    An admin change list filtered by a foreign key (`?sales_account=99999999999999999999`) passes
    the number to the database unchecked; SQLite's driver raises OverflowError (a 500), where
    PostgreSQL compares and finds nothing. No legitimate link carries such a number, and only
    this error of SQLite's driver is caught: any other OverflowError is still a server error."""

    MESSAGE = "Python int too large to convert to SQLite INTEGER"

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, OverflowError) and str(exception) == self.MESSAGE:
            raise BadRequest("a number in the address is too large") from exception
        return None
