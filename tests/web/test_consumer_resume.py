"""Resuming over the websocket replays exactly the persisted events after the page's last seq."""

import pytest
from asgiref.sync import async_to_sync

from agentproj.vocabulary import TurnStatus
from sessions_app.core import lifecycle, sessions
from sessions_app.web import consumers
from tests.sockets import session_cookie, session_socket

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def resume(session_id, cookie: bytes, after_seq: int) -> tuple[list[dict], dict]:
    """The events replayed after ``after_seq`` and the closing ``replayed`` message."""

    async def scenario():
        communicator = session_socket(session_id, cookie)
        try:
            accepted, _ = await communicator.connect(timeout=5)
            assert accepted
            await communicator.send_json_to({"type": "resume", "after_seq": after_seq})
            replayed = []
            while True:
                message = await communicator.receive_json_from(timeout=5)
                if message["type"] == "replayed":
                    # Nothing is live in this session: the replay is all there is.
                    assert await communicator.receive_nothing(timeout=0.3)
                    return replayed, message
                assert message["type"] == "event"
                replayed.append(message["event"])
        finally:
            await communicator.disconnect()

    return async_to_sync(scenario)()


def persisted(session) -> list[dict]:
    return [
        {"seq": e.seq, "turn": e.turn_id, "kind": e.kind, "data": e.data}
        for e in session.events.order_by("seq")
    ]


def test_it_replays_exactly_the_events_after_the_given_seq_in_order(llm, user, run_turn_in_thread):
    session = sessions.session_create(owner=user)
    first = lifecycle.turn_start(session=session, message="hello", actor=user)
    assert run_turn_in_thread(first.pk).join() == TurnStatus.COMPLETED
    second = lifecycle.turn_start(session=session, message="and again", actor=user)
    lifecycle.turn_request_cancel(session=session, actor=user)
    second.refresh_from_db()
    assert second.status == TurnStatus.STOPPED
    session.refresh_from_db()
    everything = persisted(session)
    assert len(everything) >= 8
    cookie = session_cookie(user)

    after = everything[3]["seq"]
    replayed, done = resume(session.pk, cookie, after)
    assert [{k: e[k] for k in ("seq", "turn", "kind", "data")} for e in replayed] == everything[4:]
    assert done["last_seq"] == session.last_seq

    replayed, done = resume(session.pk, cookie, 0)
    assert [e["seq"] for e in replayed] == [e["seq"] for e in everything]

    replayed, done = resume(session.pk, cookie, session.last_seq)
    assert replayed == []
    assert done["last_seq"] == session.last_seq


def test_it_replays_a_long_timeline_whole_in_batches(llm, user, run_turn_in_thread, monkeypatch):
    monkeypatch.setattr(consumers, "REPLAY_BATCH", 3)
    session = sessions.session_create(owner=user)
    for message in ("hello", "and again"):
        turn = lifecycle.turn_start(session=session, message=message, actor=user)
        assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED
    session.refresh_from_db()
    everything = persisted(session)
    assert len(everything) > 3 * consumers.REPLAY_BATCH

    replayed, done = resume(session.pk, session_cookie(user), 1)

    assert [e["seq"] for e in replayed] == [e["seq"] for e in everything[1:]]
    assert done["last_seq"] == session.last_seq
