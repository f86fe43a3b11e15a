"""POST/GET /api/sessions/ and GET /api/sessions/<id>/: a user's own sessions, with their
status derived from the active turn; other users' sessions do not exist for them."""

import uuid

import pytest

from sessions_app.core import lifecycle
from sessions_app.core.selectors import SESSIONS_PER_PAGE
from sessions_app.models import AgentSession
from tests.turn_states import (
    assert_error,
    assert_no_exception_text,
    new_session,
    queued_turn,
    running_turn,
    stopping_turn,
    waiting_turn,
)

pytestmark = pytest.mark.django_db


def test_it_creates_a_session(api, user):
    response = api.post("/api/sessions/", {"title": "  Trip planning  "}, format="json")
    assert response.status_code == 201
    body = response.json()
    session = AgentSession.objects.get(pk=body["id"])
    assert session.owner == user
    assert session.title == "Trip planning"
    assert body["title"] == "Trip planning"
    assert (body["status"], body["turn_status"], body["active_turn"]) == ("idle", None, None)


def test_it_creates_a_session_without_a_title(api):
    response = api.post("/api/sessions/", {}, format="json")
    assert response.status_code == 201
    assert response.json()["title"] == ""


def test_it_refuses_an_oversized_title(api):
    response = api.post("/api/sessions/", {"title": "x" * 201}, format="json")
    body = assert_error(response, 400, "invalid")
    assert "title" in body["fields"]
    assert not AgentSession.objects.exists()


def test_it_refuses_malformed_json_without_echoing_the_parser_error(api):
    response = api.post("/api/sessions/", "{not json", content_type="application/json")
    assert_error(response, 400, "invalid_json")
    assert not AgentSession.objects.exists()


def test_it_lists_only_the_users_own_sessions(api, user, other_user):
    mine = new_session(user)
    new_session(other_user)
    response = api.get("/api/sessions/")
    assert response.status_code == 200
    assert [s["id"] for s in response.json()["results"]] == [str(mine.pk)]


def test_it_lists_the_sessions_a_page_at_a_time_newest_first(api, user):
    made = [new_session(user) for _ in range(SESSIONS_PER_PAGE + 1)]

    first = api.get("/api/sessions/").json()
    second = api.get(first["next"]).json()

    assert first["count"] == second["count"] == SESSIONS_PER_PAGE + 1
    listed = [s["id"] for s in first["results"] + second["results"]]
    assert listed == [str(session.pk) for session in reversed(made)]
    assert (len(first["results"]), second["next"]) == (SESSIONS_PER_PAGE, None)
    assert_error(api.get("/api/sessions/?page=3"), 404, "not_found")
    assert_error(api.get("/api/sessions/?page="), 400, "invalid")


@pytest.mark.parametrize(
    ("make", "status", "turn_status"),
    [
        (lambda u: queued_turn(u), "running", "queued"),
        (lambda u: running_turn(u)[0], "running", "running"),
        (lambda u: waiting_turn(u)[0], "waiting_for_approval", "waiting_for_approval"),
        (lambda u: stopping_turn(u)[0], "stopping", "stopping"),
    ],
    ids=["queued", "running", "waiting", "stopping"],
)
def test_it_shows_the_status_of_the_active_turn(make, status, turn_status, api, user):
    turn = make(user)
    listed = api.get("/api/sessions/").json()["results"]
    detail = api.get(f"/api/sessions/{turn.session_id}/")
    assert detail.status_code == 200
    for body in (listed[0], detail.json()):
        assert body["id"] == str(turn.session_id)
        assert (body["status"], body["turn_status"], body["active_turn"]) == (
            status,
            turn_status,
            turn.pk,
        )


def test_it_shows_an_idle_session_once_its_turn_ended(api, user):
    turn = queued_turn(user)
    lifecycle.turn_request_cancel(session=turn.session, actor=user)
    body = api.get(f"/api/sessions/{turn.session_id}/").json()
    assert (body["status"], body["turn_status"], body["active_turn"]) == ("idle", None, None)


def test_it_hides_another_users_session(api, other_user):
    theirs = new_session(other_user)
    assert_error(api.get(f"/api/sessions/{theirs.pk}/"), 404, "not_found")


def test_it_answers_404_for_an_unknown_session(api):
    assert_error(api.get(f"/api/sessions/{uuid.uuid4()}/"), 404, "not_found")


def test_it_never_puts_exception_text_in_session_answers(api, user):
    turn = queued_turn(user)
    for response in (api.get("/api/sessions/"), api.get(f"/api/sessions/{turn.session_id}/")):
        assert_no_exception_text(response)


def test_it_names_the_refused_method(api):
    body = assert_error(api.delete("/api/sessions/"), 405, "method_not_allowed")
    assert body["detail"] == 'Method "DELETE" not allowed.'


def test_it_names_the_refused_media_type(api):
    response = api.post("/api/sessions/", "title=x", content_type="text/plain")
    body = assert_error(response, 415, "unsupported_media_type")
    assert body["detail"] == 'Unsupported media type "text/plain" in request.'
    assert not AgentSession.objects.exists()
