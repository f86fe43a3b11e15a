"""Every API error is ``{"code", "detail"}`` with a stable code; exception text stays in logs.

DRF's views answer through ``exception_handler``. What Django answers before or around them (the
CSRF middleware, a body too large to read, an error outside DRF) goes through the handlers below,
which answer the same JSON under ``/api/`` and Django's own pages elsewhere.
"""

import logging

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpResponse, JsonResponse
from django.views import csrf, defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response

from agentproj.api_auth import CsrfFailed
from agentproj.errors import ServiceError
from agentproj.parsers import InvalidJsonBody

logger = logging.getLogger(__name__)

SERVICE_ERROR_STATUS = {
    "session_busy": status.HTTP_409_CONFLICT,
    "no_active_turn": status.HTTP_409_CONFLICT,
    "not_last_turn": status.HTTP_409_CONFLICT,
    "not_pending": status.HTTP_409_CONFLICT,
    "illegal_transition": status.HTTP_409_CONFLICT,
    "arguments_changed": status.HTTP_409_CONFLICT,
    "invalid_arguments": status.HTTP_400_BAD_REQUEST,
    "not_eligible": status.HTTP_403_FORBIDDEN,
    "grant_not_allowed": status.HTTP_409_CONFLICT,
    "invalid_grant": status.HTTP_400_BAD_REQUEST,
    "policy_denied": status.HTTP_409_CONFLICT,
    "too_many_active_turns": status.HTTP_429_TOO_MANY_REQUESTS,
    "budget_exceeded": status.HTTP_429_TOO_MANY_REQUESTS,
}


API_PREFIX = "/api/"
TOO_LARGE_DETAIL = "The request body is too large."
SERVER_ERROR_DETAIL = "Something went wrong on our side."


def error_response(code: str, detail: str, http_status: int) -> Response:
    return Response({"code": code, "detail": detail}, status=http_status)


def exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        return error_response(
            "too_large", TOO_LARGE_DETAIL, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
        )
    if isinstance(exc, ServiceError):
        response = error_response(exc.code, exc.detail, SERVICE_ERROR_STATUS.get(exc.code, 409))
        response.data.update(exc.extra())
        if exc.retry_after() is not None:
            response["Retry-After"] = str(exc.retry_after())
        return response
    if isinstance(exc, Http404 | ObjectDoesNotExist):
        return error_response("not_found", "Not found.", status.HTTP_404_NOT_FOUND)
    if isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.ValidationError):
        return Response(
            {"code": "invalid", "detail": "The request is not valid.", "fields": exc.detail},
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, exceptions.APIException):
        # These two default details are templates ("{method}"); their formatted detail names only
        # the request's own method or media type; our parser's says what was wrong in its own
        # words. Other details may quote a parser's exception.
        formatted = isinstance(
            exc, exceptions.MethodNotAllowed | exceptions.UnsupportedMediaType | InvalidJsonBody
        )
        response = error_response(
            exc.default_code if isinstance(exc.default_code, str) else "error",
            str(exc.detail if formatted else exc.default_detail),
            exc.status_code,
        )
        if getattr(exc, "auth_header", None):
            response["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            response["Retry-After"] = str(int(exc.wait))
        return response
    logger.exception("unhandled API error in %s", context.get("view"))
    return error_response(
        "server_error", SERVER_ERROR_DETAIL, status.HTTP_500_INTERNAL_SERVER_ERROR
    )


def _json_error(code: str, detail: str, http_status: int) -> JsonResponse:
    return JsonResponse({"code": code, "detail": detail}, status=http_status)


def _is_api(request) -> bool:
    return request.path_info.startswith(API_PREFIX)


@csrf_exempt
def api_not_found(request, *args, **kwargs):
    """Unknown paths under /api/ answer like every other API error.

    CSRF-exempt: it changes nothing, and a POST to a malformed id (``/api/sessions/x/cancel/``)
    should be a JSON 404 like its GET, not the CSRF failure page.
    """
    return _json_error("not_found", "Not found.", status.HTTP_404_NOT_FOUND)


def csrf_failure(request, reason=""):
    """``CSRF_FAILURE_VIEW``: the API's JSON under /api/, Django's page elsewhere."""
    if _is_api(request):
        return _json_error(
            CsrfFailed.default_code, CsrfFailed.default_detail, CsrfFailed.status_code
        )
    return csrf.csrf_failure(request, reason=reason)


def bad_request(request, exception):
    """``handler400``; a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is 413, not a bad request."""
    too_large = isinstance(exception, RequestDataTooBig)
    if _is_api(request):
        if too_large:
            return _json_error(
                "too_large", TOO_LARGE_DETAIL, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
            )
        return _json_error("bad_request", "The request is not valid.", status.HTTP_400_BAD_REQUEST)
    if too_large:
        return HttpResponse(
            TOO_LARGE_DETAIL,
            content_type="text/plain; charset=utf-8",
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    return defaults.bad_request(request, exception)


def permission_denied(request, exception):
    if _is_api(request):
        detail = str(exceptions.PermissionDenied.default_detail)
        return _json_error("permission_denied", detail, status.HTTP_403_FORBIDDEN)
    return defaults.permission_denied(request, exception)


def page_not_found(request, exception):
    if _is_api(request):
        return _json_error("not_found", "Not found.", status.HTTP_404_NOT_FOUND)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        return _json_error(
            "server_error", SERVER_ERROR_DETAIL, status.HTTP_500_INTERNAL_SERVER_ERROR
        )
    return defaults.server_error(request)
