"""POST /api/sessions/<id>/turns/ and GET /api/sessions/<id>/turns/<turn_id>/."""

import pytest
from django.conf import settings

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app.core import leases, lifecycle
from sessions_app.models import Turn
from tests.turn_states import (
    assert_error,
    assert_no_exception_text,
    new_session,
    queued_turn,
    running_turn,
)

pytestmark = pytest.mark.django_db

TURN_FIELDS = {
    "id",
    "session",
    "parent",
    "index",
    "user_message",
    "status",
    "stop_reason",
    "error_code",
    "cancel_requested_at",
    "created_at",
    "started_at",
    "finished_at",
    "usage",
    "version_of",
    "shown",
}


def send(api, session, message, **extra):
    return api.post(
        f"/api/sessions/{session.pk}/turns/", {"message": message, **extra}, format="json"
    )


def test_it_queues_a_turn_for_a_message(api, user):
    session = new_session(user)
    response = send(api, session, "What time is it?")
    assert response.status_code == 202
    body = response.json()
    assert set(body) == TURN_FIELDS
    assert (body["status"], body["index"], body["user_message"]) == (
        "queued",
        1,
        "What time is it?",
    )
    turn = Turn.objects.get(pk=body["id"])
    assert turn.session_id == session.pk and turn.status == TurnStatus.QUEUED
    assert turn.events.get(kind=EventKind.USER_MESSAGE).data == {"text": "What time is it?"}


@pytest.mark.parametrize("message", ["", "   \n\t "], ids=["empty", "blank"])
def test_it_refuses_an_empty_message(message, api, user):
    session = new_session(user)
    body = assert_error(send(api, session, message), 400, "invalid")
    assert "message" in body["fields"]
    assert not session.turns.exists()


def test_it_refuses_a_request_without_a_message(api, user):
    session = new_session(user)
    response = api.post(f"/api/sessions/{session.pk}/turns/", {}, format="json")
    assert_error(response, 400, "invalid")
    assert not session.turns.exists()


def test_it_refuses_an_oversized_message(api, user):
    session = new_session(user)
    body = assert_error(send(api, session, "x" * (settings.AGENT_MAX_MESSAGE_CHARS + 1)), 400)
    assert "message" in body["fields"]
    assert not session.turns.exists()


def test_it_accepts_a_message_of_exactly_the_limit(api, user):
    session = new_session(user)
    response = send(api, session, "x" * settings.AGENT_MAX_MESSAGE_CHARS)
    assert response.status_code == 202
    assert session.turns.get().status == TurnStatus.QUEUED


def test_it_refuses_an_unknown_on_busy(api, user):
    session = new_session(user)
    body = assert_error(send(api, session, "hi", on_busy="shout"), 400, "invalid")
    assert "on_busy" in body["fields"]
    assert not session.turns.exists()


@pytest.mark.parametrize("extra", [{}, {"on_busy": "reject"}], ids=["default", "reject"])
def test_it_refuses_a_message_while_a_turn_is_active(extra, api, user):
    turn, _ = running_turn(user)
    assert_error(send(api, turn.session, "another", **extra), 409, "session_busy")
    assert list(turn.session.turns.values_list("pk", flat=True)) == [turn.pk]
    turn.refresh_from_db()
    assert turn.status == TurnStatus.RUNNING


def test_it_hides_another_users_session_from_messages(api, other_user):
    theirs = new_session(other_user)
    assert_error(send(api, theirs, "hello"), 404, "not_found")
    assert not theirs.turns.exists()


def test_it_shows_a_turn(api, user):
    turn, lease = running_turn(user)
    leases.turn_save_progress(turn_id=turn.pk, lease_token=lease, usage={"total_tokens": 42})
    lifecycle.turn_request_cancel(session=turn.session, actor=user)
    lifecycle.turn_finalize(turn_id=turn.pk, status=TurnStatus.STOPPED, lease_token=lease)

    response = api.get(f"/api/sessions/{turn.session_id}/turns/{turn.pk}/")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == TURN_FIELDS
    assert (body["id"], body["status"], body["stop_reason"], body["error_code"]) == (
        turn.pk,
        "stopped",
        "user_cancel",
        "",
    )
    assert body["usage"] == {"total_tokens": 42}
    for stamp in ("created_at", "started_at", "finished_at", "cancel_requested_at"):
        assert body[stamp]


def test_it_shows_why_a_turn_failed(api, user):
    turn, lease = running_turn(user)
    lifecycle.turn_finalize(
        turn_id=turn.pk, status=TurnStatus.FAILED, lease_token=lease, error_code="llm_error"
    )
    body = api.get(f"/api/sessions/{turn.session_id}/turns/{turn.pk}/").json()
    assert (body["status"], body["error_code"], body["stop_reason"]) == ("failed", "llm_error", "")
    assert_no_exception_text(api.get(f"/api/sessions/{turn.session_id}/events/"))


def test_it_hides_another_users_turn(api, other_user):
    theirs = queued_turn(other_user)
    assert_error(api.get(f"/api/sessions/{theirs.session_id}/turns/{theirs.pk}/"), 404)


def test_it_hides_a_turn_under_another_session(api, user):
    turn = queued_turn(user)
    elsewhere = new_session(user)
    assert_error(api.get(f"/api/sessions/{elsewhere.pk}/turns/{turn.pk}/"), 404, "not_found")
    assert_error(api.get(f"/api/sessions/{turn.session_id}/turns/{turn.pk + 1000}/"), 404)


def test_it_answers_404_for_a_turn_id_beyond_any_row(api, user):
    turn = queued_turn(user)
    assert_error(api.get(f"/api/sessions/{turn.session_id}/turns/{10**20}/"), 404, "not_found")
