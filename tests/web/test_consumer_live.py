"""After its resume, a page receives new timeline events live, in the order they were written."""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app.core import broadcast, lifecycle, sessions
from tests.sockets import session_cookie, session_socket

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

# Longer than the Redis client's default read timeout (5 s).
QUIET_SECONDS = 7


def test_it_forwards_live_events_and_token_deltas(user):
    # Titled: an untitled session's first message also names it, a message of its own
    # (tests/web/test_consumer_sessions_manage.py).
    session = sessions.session_create(owner=user, title="Live events")
    cookie = session_cookie(user)

    def start_and_stop_a_turn():
        turn = lifecycle.turn_start(session=session, message="hello", actor=user)
        lifecycle.turn_request_cancel(session=session, actor=user)
        return turn

    async def scenario():
        communicator = session_socket(session.pk, cookie)
        try:
            accepted, _ = await communicator.connect(timeout=5)
            assert accepted
            await communicator.send_json_to({"type": "resume", "after_seq": 0})
            assert await communicator.receive_json_from(timeout=5) == {
                "type": "replayed",
                "last_seq": 0,
            }
            turn = await database_sync_to_async(start_and_stop_a_turn)()
            live = [await communicator.receive_json_from(timeout=10) for _ in range(4)]
            # A worker's turn host sends deltas through its outbox.
            outbox = broadcast.Outbox(get_channel_layer())
            broadcast.send_delta(
                outbox,
                session_id=session.pk,
                payload={"seq": 99, "turn": turn.pk, "offset": 0, "text": "Once"},
            )
            await outbox.close(timeout=10)
            delta = await communicator.receive_json_from(timeout=10)
            return turn, live, delta
        finally:
            await communicator.disconnect()

    turn, live, delta = async_to_sync(scenario)()

    assert all(message["type"] == "event" for message in live)
    received = [(m["event"]["seq"], m["event"]["kind"], m["event"]["data"]) for m in live]
    assert [(seq, kind) for seq, kind, _ in received] == [
        (1, EventKind.USER_MESSAGE),
        (2, EventKind.STATUS),
        (3, EventKind.INTERRUPT),
        (4, EventKind.STATUS),
    ]
    assert received[0][2] == {"text": "hello"}
    assert received[1][2]["status"] == TurnStatus.QUEUED
    assert received[3][2]["status"] == TurnStatus.STOPPED
    assert delta == {
        "type": "delta",
        "delta": {"seq": 99, "turn": turn.pk, "offset": 0, "text": "Once"},
    }
    turn.refresh_from_db()
    assert turn.status == TurnStatus.STOPPED


def test_it_keeps_a_quiet_socket_live(user):
    """A page may sit without a message for a while (a user reading); the next event still
    arrives. On Redis, a read timeout as long as the layer's blocking receive closed such
    sockets after 5 s."""
    session = sessions.session_create(owner=user)
    cookie = session_cookie(user)

    async def scenario():
        communicator = session_socket(session.pk, cookie)
        try:
            accepted, _ = await communicator.connect(timeout=5)
            assert accepted
            await communicator.send_json_to({"type": "resume", "after_seq": 0})
            assert (await communicator.receive_json_from(timeout=5))["type"] == "replayed"
            assert await communicator.receive_nothing(timeout=QUIET_SECONDS, interval=0.5)
            await database_sync_to_async(lifecycle.turn_start)(
                session=session, message="hello", actor=user
            )
            return await communicator.receive_json_from(timeout=10)
        finally:
            await communicator.disconnect()

    message = async_to_sync(scenario)()

    assert message["type"] == "event"
    assert message["event"]["kind"] == EventKind.USER_MESSAGE
