"""Host and origin checks for what Django's middleware never sees: websocket handshakes and the
demo model, both answered by the ASGI router in front of Django.

Websocket handshakes pass the same origin rule as Django's CSRF check.

A browser sends the user's cookies with a websocket handshake whatever page opened it, so the
Origin must be this site's own origin — scheme, host and port, as the request reached us — or one
listed in ``CSRF_TRUSTED_ORIGINS`` (wildcard subdomains included): exactly what
``CsrfViewMiddleware`` accepts for a form post. Comparing hosts alone would let another app on an
allowed host (a dev server on ``localhost:3000``, say) read a user's timeline. The Host header
must be allowed by ``ALLOWED_HOSTS``, as Django requires of every HTTP request.
"""

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import is_same_domain, split_domain_port, validate_host


class SameOriginValidator:
    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if origin_allowed(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)


def origin_allowed(scope) -> bool:
    headers = {
        name.decode("latin1").lower(): value.decode("latin1") for name, value in scope["headers"]
    }
    origin = headers.get("origin")
    host = _host(headers)
    if not origin or not host:
        return False
    if not host_allowed(host):
        return False
    if origin == f"{_scheme(scope, headers)}://{host}":
        return True
    return _trusted(origin)


def host_allowed(host: str) -> bool:
    """Whether a Host header names this site, by ``ALLOWED_HOSTS`` (as ``request.get_host()``)."""
    domain, _ = split_domain_port(host)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


def _host(headers: dict[str, str]) -> str:
    if settings.USE_X_FORWARDED_HOST and "x-forwarded-host" in headers:
        return headers["x-forwarded-host"].split(",")[0].strip()
    return headers.get("host", "")


def _scheme(scope, headers: dict[str, str]) -> str:
    if settings.SECURE_PROXY_SSL_HEADER:
        meta_name, secure_value = settings.SECURE_PROXY_SSL_HEADER
        header = meta_name.removeprefix("HTTP_").replace("_", "-").lower()
        if header in headers:
            return "https" if headers[header].split(",")[0].strip() == secure_value else "http"
    return "https" if scope.get("scheme") in ("wss", "https") else "http"


def _trusted(origin: str) -> bool:
    trusted = settings.CSRF_TRUSTED_ORIGINS
    if origin in trusted:
        return True
    try:
        parsed = urlsplit(origin)
    except ValueError:
        return False
    for pattern in trusted:
        if "*" not in pattern:
            continue
        allowed = urlsplit(pattern)
        if allowed.scheme == parsed.scheme and is_same_domain(
            parsed.netloc, allowed.netloc.lstrip("*")
        ):
            return True
    return False
