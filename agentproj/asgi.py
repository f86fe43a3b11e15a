"""ASGI entry point: Django (pages, admin, API, static files), websockets, and — while it is the
model in use — the built-in demo model."""

import os

from django.core.asgi import get_asgi_application

from agentproj import tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentproj.settings")
# Before Django builds its handler: with traces on, each request gets a SERVER span (the parent
# of the turn it starts) from a middleware the instrumentation adds.
tracing.configure(instrument_requests=True)
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from agentproj.origins import SameOriginValidator, host_allowed  # noqa: E402
from sessions_app.demo_model import DemoLLM  # noqa: E402
from sessions_app.web.routing import websocket_urlpatterns  # noqa: E402

DEMO_LLM_PREFIX = "/demo-llm/v1"
demo_llm = DemoLLM(prefix=DEMO_LLM_PREFIX)


async def http_application(scope, receive, send):
    if settings.DEMO_LLM_ENABLED and scope["path"].startswith(DEMO_LLM_PREFIX + "/"):
        if host_allowed(dict(scope["headers"]).get(b"host", b"").decode("latin1")):
            await demo_llm(scope, receive, send)
        else:
            await _bad_request(send)
    else:
        await django_asgi_app(scope, receive, send)


async def _bad_request(send):
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": b"Bad Request (400)"})


application = ProtocolTypeRouter(
    {
        "http": http_application,
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
