"""Every API error is ``{"code", "detail"}`` with a stable code; exception text stays in logs."""

import logging

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response

from sessions_app.services import ServiceError

logger = logging.getLogger(__name__)

SERVICE_ERROR_STATUS = {
    "session_busy": status.HTTP_409_CONFLICT,
    "no_active_turn": status.HTTP_409_CONFLICT,
    "not_pending": status.HTTP_409_CONFLICT,
    "illegal_transition": status.HTTP_409_CONFLICT,
    "arguments_changed": status.HTTP_409_CONFLICT,
}


def error_response(code: str, detail: str, http_status: int) -> Response:
    return Response({"code": code, "detail": detail}, status=http_status)


def exception_handler(exc, context):
    if isinstance(exc, ServiceError):
        return error_response(exc.code, exc.detail, SERVICE_ERROR_STATUS.get(exc.code, 409))
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
        # the request's own method or media type. Other details may quote a parser's exception.
        formatted = isinstance(exc, exceptions.MethodNotAllowed | exceptions.UnsupportedMediaType)
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
        "server_error", "Something went wrong on our side.", status.HTTP_500_INTERNAL_SERVER_ERROR
    )


@csrf_exempt
def api_not_found(request, *args, **kwargs):
    """Unknown paths under /api/ answer like every other API error.

    CSRF-exempt: it changes nothing, and a POST to a malformed id (``/api/sessions/x/cancel/``)
    should be a JSON 404 like its GET, not the CSRF failure page.
    """
    return JsonResponse({"code": "not_found", "detail": "Not found."}, status=404)
