"""POST /api/sessions/<id>/cancel/: every row of the table in DESIGN.md section 5."""

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.test import AsyncClient

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app.models import ApprovalStatus
from sessions_app.core import leases, lifecycle
from sessions_app.models import Turn
from sessions_app.web import api as sessions_api
from tests.conftest import wait_for
from tests.turn_states import (
    assert_error,
    interrupts,
    new_session,
    queued_turn,
    running_turn,
    turn_in,
    waiting_turn,
)


def cancel(api, session_id, query="", **body):
    return api.post(f"/api/sessions/{session_id}/cancel/{query}", body, format="json")


@pytest.mark.django_db
def test_it_answers_409_when_nothing_is_active(api, user):
    session = new_session(user)
    assert_error(cancel(api, session.pk), 409, "no_active_turn")
    assert not session.events.exists()


@pytest.mark.django_db
def test_it_answers_409_once_the_last_turn_ended(api, user):
    turn = turn_in(TurnStatus.COMPLETED, user)
    assert_error(cancel(api, turn.session_id), 409, "no_active_turn")
    turn.refresh_from_db()
    assert turn.status == TurnStatus.COMPLETED


@pytest.mark.django_db
def test_it_stops_a_queued_turn_at_once(api, user):
    turn = queued_turn(user)
    response = cancel(api, turn.session_id, reason="changed my mind")
    assert response.status_code == 200
    assert response.json() == {"turn": turn.pk, "status": "stopped"}
    turn.refresh_from_db()
    assert turn.status == TurnStatus.STOPPED
    assert turn.stop_reason == "user_cancel"
    assert turn.cancel_requested_by == user
    assert interrupts(turn) == 1
    # A task delivered after the stop finds nothing to run.
    assert leases.turn_take_lease(turn_id=turn.pk, worker_id="late") is None


@pytest.mark.django_db
def test_it_stops_a_turn_waiting_for_approval_at_once(api, user):
    turn, approval = waiting_turn(user)
    response = cancel(api, turn.session_id)
    assert response.status_code == 200
    assert response.json() == {"turn": turn.pk, "status": "stopped"}
    turn.refresh_from_db()
    approval.refresh_from_db()
    assert turn.status == TurnStatus.STOPPED
    assert approval.status == ApprovalStatus.CANCELLED
    assert interrupts(turn) == 1


@pytest.mark.django_db
def test_it_asks_a_running_turn_to_stop_and_repeats_itself(api, user):
    turn, _ = running_turn(user)
    first = cancel(api, turn.session_id, reason="too long")
    assert first.status_code == 202
    assert first.json() == {"turn": turn.pk, "status": "stopping"}
    turn.refresh_from_db()
    assert turn.status == TurnStatus.STOPPING
    assert turn.cancel_requested_by == user
    seqs = list(turn.session.events.values_list("seq", flat=True))

    second = cancel(api, turn.session_id)

    assert second.status_code == 202
    assert second.json() == {"turn": turn.pk, "status": "stopping"}
    turn.refresh_from_db()
    assert turn.status == TurnStatus.STOPPING
    assert list(turn.session.events.values_list("seq", flat=True)) == seqs
    assert interrupts(turn) == 0


@pytest.mark.django_db
@pytest.mark.parametrize("status", [TurnStatus.COMPLETED, TurnStatus.STOPPED, TurnStatus.FAILED])
def test_it_answers_200_with_the_status_of_a_named_terminal_turn(status, api, user):
    turn = turn_in(status, user)
    seqs = list(turn.session.events.values_list("seq", flat=True))
    response = cancel(api, turn.session_id, turn=turn.pk)
    assert response.status_code == 200
    assert response.json() == {"turn": turn.pk, "status": status}
    turn.refresh_from_db()
    assert turn.status == status
    assert list(turn.session.events.values_list("seq", flat=True)) == seqs


@pytest.mark.django_db
def test_it_stops_the_named_active_turn(api, user):
    turn = queued_turn(user)
    response = cancel(api, turn.session_id, turn=turn.pk)
    assert response.status_code == 200
    assert response.json() == {"turn": turn.pk, "status": "stopped"}


@pytest.mark.django_db
def test_it_answers_404_for_a_turn_of_another_session(api, user):
    turn = queued_turn(user)
    elsewhere = new_session(user)
    assert_error(cancel(api, elsewhere.pk, turn=turn.pk), 404, "not_found")
    turn.refresh_from_db()
    assert turn.status == TurnStatus.QUEUED


@pytest.mark.django_db
def test_it_hides_another_users_session_from_cancel(api, other_user):
    turn = queued_turn(other_user)
    assert_error(cancel(api, turn.session_id), 404, "not_found")
    turn.refresh_from_db()
    assert turn.status == TurnStatus.QUEUED
    assert interrupts(turn) == 0


@pytest.mark.django_db
def test_it_refuses_an_oversized_reason(api, user):
    turn = queued_turn(user)
    assert_error(cancel(api, turn.session_id, reason="x" * 501), 400, "invalid")
    turn.refresh_from_db()
    assert turn.status == TurnStatus.QUEUED


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_it_waits_for_the_worker_to_finish_the_stop(api, user, llm, run_turn_in_thread):
    session = new_session(user)
    turn = lifecycle.turn_start(session=session, message="tell me a story", actor=user)
    worker = run_turn_in_thread(turn.pk)
    wait_for(lambda: turn.events.filter(kind=EventKind.ASSISTANT_MESSAGE).exists())

    response = cancel(api, session.pk, query="?wait=1")

    assert response.status_code == 200
    assert response.json() == {"turn": turn.pk, "status": "stopped"}
    assert worker.join() == TurnStatus.STOPPED
    turn.refresh_from_db()
    assert turn.status == TurnStatus.STOPPED
    assert interrupts(turn) == 1
    # The partial story is kept, no longer streaming.
    message = turn.events.get(kind=EventKind.ASSISTANT_MESSAGE)
    assert message.data["text"] and message.data["streaming"] is False
    # The model's stream was closed by the client before the story was over.
    (seen,) = llm.requests
    wait_for(lambda: seen.closed_by_client_at is not None or seen.finished_at is not None)
    assert seen.closed_by_client_at is not None and seen.finished_at is None


@pytest.mark.django_db
def test_it_answers_404_for_a_named_turn_beyond_any_row(api, user):
    turn = queued_turn(user)
    assert_error(cancel(api, turn.session_id, turn=10**20), 404, "not_found")
    turn.refresh_from_db()
    assert turn.status == TurnStatus.QUEUED


@pytest.mark.django_db
@pytest.mark.parametrize("wait", ["25374", "soon", ""])
def test_it_refuses_a_wait_that_is_no_boolean_and_stops_nothing(wait, api, user):
    turn = queued_turn(user)
    body = assert_error(cancel(api, turn.session_id, query=f"?wait={wait}"), 400, "invalid")
    assert "wait" in body["fields"]
    turn.refresh_from_db()
    assert turn.status == TurnStatus.QUEUED


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_it_waits_for_a_worker_process_to_finish_the_stop(api, user, llm, worker_process):
    worker_process()
    session = new_session(user)
    turn = lifecycle.turn_start(session=session, message="tell me a story", actor=user)
    wait_for(lambda: turn.events.filter(kind=EventKind.ASSISTANT_MESSAGE).exists(), timeout=60)

    response = cancel(api, session.pk, query="?wait=1")

    assert response.status_code == 200
    assert response.json() == {"turn": turn.pk, "status": "stopped"}
    turn.refresh_from_db()
    assert turn.status == TurnStatus.STOPPED
    assert interrupts(turn) == 1


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_wait_that_runs_out_answers_202_stopping(api, user, monkeypatch):
    monkeypatch.setattr(sessions_api, "CANCEL_WAIT_SECONDS", 0.5)
    # Its worker is gone: nothing will finish the stop before housekeeping does.
    turn, _ = running_turn(user)

    response = cancel(api, turn.session_id, query="?wait=1")

    assert response.status_code == 202
    assert response.json() == {"turn": turn.pk, "status": "stopping"}


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_other_requests_are_answered_while_a_cancel_waits(user, monkeypatch):
    """The wait holds no thread: a read sent while a ``?wait=1`` cancel waits is answered first
    (sync views share one thread per process)."""
    monkeypatch.setattr(sessions_api, "CANCEL_WAIT_SECONDS", 3.0)
    turn, _ = running_turn(user)
    answered = []

    async def scenario():
        client = AsyncClient()
        await client.aforce_login(user)

        async def request(name: str, call):
            response = await call
            answered.append((name, response.status_code))

        waiting = asyncio.ensure_future(
            request(
                "cancel",
                client.post(
                    f"/api/sessions/{turn.session_id}/cancel/?wait=1",
                    {},
                    content_type="application/json",
                ),
            )
        )
        stopping = database_sync_to_async(
            lambda: Turn.objects.filter(pk=turn.pk, status=TurnStatus.STOPPING).exists()
        )
        while not await stopping():
            await asyncio.sleep(0.02)
        await request("read", client.get(f"/api/sessions/{turn.session_id}/"))
        await waiting

    async_to_sync(scenario)()

    assert answered == [("read", 200), ("cancel", 202)]
