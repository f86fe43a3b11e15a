"""Cookie authentication for the API whose CSRF failure says what happened.

DRF reports a failed CSRF check as a plain ``permission_denied``; a client whose page or token
went stale then reads "You do not have permission" and looks for the wrong cause.
"""

from drf_spectacular.authentication import SessionScheme
from rest_framework import authentication, exceptions, status


class CsrfFailed(exceptions.APIException):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "csrf_failed"
    default_detail = (
        "The CSRF check failed: reload the page, or authenticate with a token instead of a cookie."
    )


class SessionAuthentication(authentication.SessionAuthentication):
    def enforce_csrf(self, request):
        try:
            super().enforce_csrf(request)
        except exceptions.PermissionDenied as exc:
            raise CsrfFailed() from exc


class CsrfCheckedSessionScheme(SessionScheme):
    """The OpenAPI schema describes this class as the session cookie it is."""

    target_class = "agentproj.api_auth.SessionAuthentication"
