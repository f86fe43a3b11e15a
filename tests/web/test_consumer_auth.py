"""Who may watch a session over the websocket: its owner, from an allowed origin, nobody else."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from agentproj.asgi import application
from sessions_app.core import sessions
from tests.sockets import session_cookie

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

ALLOWED_ORIGIN = b"http://127.0.0.1"


def try_to_connect(session_id, *, cookie: bytes | None, origin: bytes = ALLOWED_ORIGIN):
    """Returns (accepted, close code) for one connection attempt; always disconnects."""

    async def attempt():
        headers = [(b"origin", origin), (b"host", b"127.0.0.1")]
        if cookie:
            headers.append((b"cookie", cookie))
        communicator = WebsocketCommunicator(
            application, f"/ws/sessions/{session_id}/", headers=headers
        )
        try:
            return await communicator.connect(timeout=5)
        finally:
            await communicator.disconnect()

    return async_to_sync(attempt)()


def test_it_refuses_an_anonymous_visitor(user):
    session = sessions.session_create(owner=user)
    accepted, code = try_to_connect(session.pk, cookie=None)
    assert not accepted
    assert code == 4401


def test_it_refuses_another_users_session(user, other_user):
    session = sessions.session_create(owner=user)
    accepted, code = try_to_connect(session.pk, cookie=session_cookie(other_user))
    assert not accepted
    assert code == 4404


def test_it_refuses_a_foreign_origin_even_with_a_valid_login(user):
    session = sessions.session_create(owner=user)
    accepted, _ = try_to_connect(
        session.pk, cookie=session_cookie(user), origin=b"http://evil.example"
    )
    assert not accepted


def test_it_accepts_the_owner(user):
    session = sessions.session_create(owner=user)
    accepted, _ = try_to_connect(session.pk, cookie=session_cookie(user))
    assert accepted
