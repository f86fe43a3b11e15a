"""Websocket helpers shared by the consumer tests: a logged-in user's cookie, and a socket to a
session's timeline or to the approval queue over the real ASGI application."""

from contextlib import asynccontextmanager

from channels.testing import WebsocketCommunicator
from django.test import Client

from agentproj.asgi import application

# A page served at http://127.0.0.1 opens its socket to the same origin.
ALLOWED_ORIGIN = b"http://127.0.0.1"
HOST = b"127.0.0.1"


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def session_socket(session_id, cookie: bytes) -> WebsocketCommunicator:
    return WebsocketCommunicator(
        application,
        f"/ws/sessions/{session_id}/",
        headers=[(b"origin", ALLOWED_ORIGIN), (b"host", HOST), (b"cookie", cookie)],
    )


def queue_socket(cookie: bytes | None) -> WebsocketCommunicator:
    headers = [(b"origin", ALLOWED_ORIGIN), (b"host", b"127.0.0.1")]
    if cookie:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, "/ws/approvals/", headers=headers)


def list_socket(cookie: bytes) -> WebsocketCommunicator:
    """The session list's socket: rows re-rendered as the user's sessions change."""
    return WebsocketCommunicator(
        application,
        "/ws/sessions/",
        headers=[(b"origin", ALLOWED_ORIGIN), (b"host", HOST), (b"cookie", cookie)],
    )


@asynccontextmanager
async def resumed_session_socket(session_id, cookie: bytes, after_seq: int = 0):
    """A session's socket, open and resumed after ``after_seq``: the replay comes next."""
    socket = session_socket(session_id, cookie)
    try:
        accepted, _ = await socket.connect(timeout=5)
        assert accepted
        await socket.send_json_to({"type": "resume", "after_seq": after_seq})
        yield socket
    finally:
        await socket.disconnect()
