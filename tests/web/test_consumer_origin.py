"""A websocket handshake passes the same origin rule as a CSRF-checked form post: the page must
come from this site's own scheme, host and port, or from an origin in CSRF_TRUSTED_ORIGINS.
Cookies ride along whatever page opens the socket, so another app on an allowed host (another
port, the other scheme) must not read a user's timeline."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from agentproj.asgi import application
from sessions_app.core import sessions
from tests.sockets import session_cookie

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

HOST = "127.0.0.1:8000"


def connects(path: str, cookie: bytes, *, origin: str | None, host: str = HOST, **headers) -> bool:
    """Whether the handshake is accepted; always disconnects."""

    async def attempt():
        sent = [(b"host", host.encode()), (b"cookie", cookie)]
        if origin is not None:
            sent.append((b"origin", origin.encode()))
        sent += [
            (name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()
        ]
        communicator = WebsocketCommunicator(application, path, headers=sent)
        try:
            accepted, _ = await communicator.connect(timeout=5)
            return accepted
        finally:
            await communicator.disconnect()

    return async_to_sync(attempt)()


@pytest.fixture
def timeline(user):
    """(path, the owner's cookie) of a session's timeline socket."""
    session = sessions.session_create(owner=user)
    return f"/ws/sessions/{session.pk}/", session_cookie(user)


def test_it_accepts_the_sites_own_origin(timeline):
    path, cookie = timeline
    assert connects(path, cookie, origin=f"http://{HOST}")


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1",  # another port (the default one)
        "http://127.0.0.1:3000",
        "https://127.0.0.1:8000",  # the other scheme
        "http://localhost:8000",  # another allowed host
        "http://[::1]:5173",
        "http://evil.example",
        "null",
    ],
)
def test_it_refuses_any_other_origin_even_with_a_valid_login(timeline, origin):
    path, cookie = timeline
    assert not connects(path, cookie, origin=origin)


def test_it_refuses_a_handshake_without_an_origin(timeline):
    path, cookie = timeline
    assert not connects(path, cookie, origin=None)


def test_it_refuses_another_app_on_an_allowed_host(timeline):
    path, cookie = timeline
    assert not connects(path, cookie, origin="http://localhost:3000", host="localhost:8000")


def test_it_refuses_a_host_that_allowed_hosts_does_not_list(timeline):
    # DNS rebinding: the browser thinks it talks to evil.example, which resolves to us.
    path, cookie = timeline
    assert not connects(path, cookie, origin="http://evil.example", host="evil.example")


def test_behind_a_tls_proxy_the_origin_is_https(timeline, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    path, cookie = timeline
    https = {"x_forwarded_proto": "https"}
    assert connects(path, cookie, origin=f"https://{HOST}", **https)
    assert not connects(path, cookie, origin=f"http://{HOST}", **https)


def test_it_accepts_the_origins_csrf_trusts(timeline, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com", "https://*.example.org"]
    path, cookie = timeline
    assert connects(path, cookie, origin="https://chat.example.com")
    assert connects(path, cookie, origin="https://team.example.org")
    assert not connects(path, cookie, origin="http://chat.example.com")
    assert not connects(path, cookie, origin="https://chat.example.com:8443")


def test_the_approval_queue_socket_has_the_same_rule(approver):
    cookie = session_cookie(approver)
    assert connects("/ws/approvals/", cookie, origin=f"http://{HOST}")
    assert not connects("/ws/approvals/", cookie, origin="http://127.0.0.1:3000")
