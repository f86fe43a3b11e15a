"""Events written by a separate worker process reach the page's socket over the real channel
layer: the turn's progress, the streamed tokens, and its stop."""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app.core import sessions
from sessions_app.models import Turn
from tests.sockets import session_cookie, session_socket

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def test_it_delivers_a_worker_processs_events_and_deltas_to_the_socket(
    llm, user, api, worker_process
):
    worker_process()
    session = sessions.session_create(owner=user)
    cookie = session_cookie(user)

    def start_turn() -> int:
        response = api.post(
            f"/api/sessions/{session.pk}/turns/", {"message": "tell me a story"}, format="json"
        )
        assert response.status_code == 202
        return response.json()["id"]

    def cancel(turn_id: int) -> int:
        response = api.post(f"/api/sessions/{session.pk}/cancel/", {"turn": turn_id}, format="json")
        return response.status_code

    async def scenario():
        communicator = session_socket(session.pk, cookie)
        seen = []
        try:
            accepted, _ = await communicator.connect(timeout=5)
            assert accepted
            await communicator.send_json_to({"type": "resume", "after_seq": 0})
            assert (await communicator.receive_json_from(timeout=5))["type"] == "replayed"
            turn_id = await database_sync_to_async(start_turn)()
            cancelled = False
            while True:
                message = await communicator.receive_json_from(timeout=60)
                seen.append(message)
                deltas = [m for m in seen if m["type"] == "delta"]
                if not cancelled and len(deltas) >= 3:
                    assert await database_sync_to_async(cancel)(turn_id) in (200, 202)
                    cancelled = True
                if (
                    message["type"] == "event"
                    and message["event"]["kind"] == EventKind.STATUS
                    and message["event"]["data"]["status"] == TurnStatus.STOPPED
                ):
                    return turn_id, seen
        finally:
            await communicator.disconnect()

    turn_id, seen = async_to_sync(scenario)()

    statuses = [
        m["event"]["data"]["status"]
        for m in seen
        if m["type"] == "event" and m["event"]["kind"] == EventKind.STATUS
    ]
    # "running" is written by the worker process when it takes the turn.
    assert statuses[:2] == [TurnStatus.QUEUED, TurnStatus.RUNNING]
    assert statuses[-1] == TurnStatus.STOPPED
    assistant_seqs = {
        m["event"]["seq"]
        for m in seen
        if m["type"] == "event" and m["event"]["kind"] == EventKind.ASSISTANT_MESSAGE
    }
    assert len(assistant_seqs) == 1
    deltas = [m["delta"] for m in seen if m["type"] == "delta"]
    assert {d["seq"] for d in deltas} == assistant_seqs
    assert all(d["turn"] == turn_id and d["text"] for d in deltas)
    interrupts = [
        m for m in seen if m["type"] == "event" and m["event"]["kind"] == EventKind.INTERRUPT
    ]
    assert len(interrupts) == 1

    turn = Turn.objects.get(pk=turn_id)
    assert turn.status == TurnStatus.STOPPED
    final_text = turn.events.get(kind=EventKind.ASSISTANT_MESSAGE).data["text"]
    last_live = [
        m["event"]["data"]["text"]
        for m in seen
        if m["type"] == "event" and m["event"]["kind"] == EventKind.ASSISTANT_MESSAGE
    ][-1]
    assert last_live == final_text
    assert final_text.startswith("Chapter 1.")
