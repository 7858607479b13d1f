"""What the OpenAPI schema says beyond the serializers' shapes (drf-spectacular): every operation's
problem answers with an example each, the RateLimit-* response headers, and the postprocessing hook
that marks the bodies refusing unknown fields. The webhook events are in api.webhook_schema."""

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse

from . import serializers
from .problems import PROBLEM_JSON, problem_body

# (description, an example's detail) of each problem status an operation can answer
_ERRORS = {
    400: ("Invalid input: every problem in `errors`; nothing was written.",
          "The order data is invalid; nothing was written. See errors."),
    401: ("No key, another scheme, or an unknown or revoked key (`WWW-Authenticate: Bearer`).",
          "Authentication credentials were not provided."),
    404: ("No such order of the key's sales account.", "No order 'A-1001'."),
    409: ("The order is paid or cancelled.", "The order is paid or cancelled: there is no dunning to block."),
    413: ("The body is larger than API_MAX_BODY_BYTES.", "The request body is larger than 2097152 bytes."),
    415: ("The body is not JSON (`Content-Type: application/json`).",
          'Unsupported media type "text/plain" in request.'),
    429: ("More than API_RATE_LIMIT requests of this key; `Retry-After` says after how many seconds to try again.",
          "Request was throttled. Expected available in 1 second."),
}
BODY_INVALID = ("The order data is invalid; nothing was written. See errors.",
                [{"field": "total", "detail": "is not a decimal with a dot (write 12.50, not 12,50)"}])
QUERY_INVALID = ("The request is invalid; see errors.",
                 [{"pointer": "/dunning_level", "detail": 'must be 1, 2, 3 or "completed"'}])
UNKNOWN_PARAMETER = ("The request is invalid; see errors.",
                     [{"pointer": "/dunning_levle", "detail": "unknown query parameter (this operation takes none)"}])


def _problem_response(code: int, invalid: tuple[str, list[dict]]) -> OpenApiResponse:
    description, detail = _ERRORS[code]
    example = problem_body(code, detail)
    if code == 400:
        example = problem_body(code, invalid[0]) | {"errors": invalid[1]}
    return OpenApiResponse(serializers.ProblemSerializer, description=description,
                           examples=[OpenApiExample(f"{code}", value=example, response_only=True,
                                                    status_codes=[str(code)], media_type=PROBLEM_JSON)])


def responses(ok: dict, *errors: int, invalid: tuple[str, list[dict]] = BODY_INVALID) -> dict:
    """The operation's answers for the schema: `ok` and the problem documents of `errors`, plus the
    400 (an unknown query parameter), 401 and 429 every operation can answer; `invalid`: the 400
    example's detail and errors."""
    return {**ok, **{(code, PROBLEM_JSON): _problem_response(code, invalid)
                     for code in sorted({*errors, 400, 401, 429})}}


RATE_LIMIT_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")
RATE_LIMIT_PARAMETERS = [
    OpenApiParameter(name, int, OpenApiParameter.HEADER, response=True, description=text)
    for name, text in zip(RATE_LIMIT_HEADERS, (
        "requests of this key per window (API_RATE_LIMIT); on every answer but a 401",
        "what is left of them in the current window",
        "seconds until a request of the window drops out of it"), strict=True)
]


CLOSED = ("OrderIn", "BulkItem", "PaymentIn")  # any other field is a 400 "unknown field"


def closed_request_bodies(result, generator, request, public):
    """drf-spectacular postprocessing hook: the bodies that refuse unknown fields say so
    (`additionalProperties: false`)."""
    for name in CLOSED:
        result["components"]["schemas"][name]["additionalProperties"] = False
    return result
