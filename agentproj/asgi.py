"""ASGI entry point: Django (pages, admin, API), websockets, and the built-in demo model."""

import os

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentproj.settings")
# Static files are served in-process so that one command runs the whole app.
django_asgi_app = ASGIStaticFilesHandler(get_asgi_application())

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from sessions_app.routing import websocket_urlpatterns  # noqa: E402
from sessions_app.runtime.demo_llm import DemoLLM  # noqa: E402

DEMO_LLM_PREFIX = "/demo-llm/v1"
demo_llm = DemoLLM(prefix=DEMO_LLM_PREFIX)


async def http_application(scope, receive, send):
    if scope["path"].startswith(DEMO_LLM_PREFIX + "/"):
        await demo_llm(scope, receive, send)
    else:
        await django_asgi_app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http_application,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
