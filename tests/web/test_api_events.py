"""GET /api/sessions/<id>/events/?after=<seq>: the session's timeline, in seq order."""

import pytest

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app.core import leases, lifecycle, sessions
from sessions_app.web import api as sessions_api
from tests.turn_states import assert_error, assert_no_exception_text, queued_turn, running_turn

pytestmark = pytest.mark.django_db


def events(api, session_id, query=""):
    response = api.get(f"/api/sessions/{session_id}/events/{query}")
    assert response.status_code == 200, response.content
    assert_no_exception_text(response)
    return response.json()["results"]


def stopped_turn_with_output(user):
    turn, lease = running_turn(user)
    leases.turn_save_progress(turn_id=turn.pk, lease_token=lease, assistant_text="Once upon")
    lifecycle.turn_request_cancel(session=turn.session, actor=user)
    lifecycle.turn_finalize(turn_id=turn.pk, status=TurnStatus.STOPPED, lease_token=lease)
    return turn


def test_it_lists_the_timeline_in_order(api, user):
    turn = stopped_turn_with_output(user)
    results = events(api, turn.session_id)
    fields = {"seq", "turn", "kind", "data", "created_at"}
    for event in results:
        # A finished assistant message carries its rendered HTML too (test_api_events_html.py).
        extra = {"html"} if event["kind"] == EventKind.ASSISTANT_MESSAGE else set()
        assert set(event) == fields | extra
    seqs = [e["seq"] for e in results]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert [e["kind"] for e in results] == [
        EventKind.USER_MESSAGE,
        EventKind.STATUS,  # queued
        EventKind.STATUS,  # running
        EventKind.ASSISTANT_MESSAGE,
        EventKind.STATUS,  # stopping
        EventKind.INTERRUPT,
        EventKind.STATUS,  # stopped
    ]
    assert {e["turn"] for e in results} == {turn.pk}
    assert results[0]["data"] == {"text": "hello"}
    assert results[3]["data"] == {"text": "Once upon", "streaming": False}
    assert results[-1]["data"]["status"] == "stopped"


def test_it_lists_only_events_after_a_seq(api, user):
    turn = stopped_turn_with_output(user)
    everything = events(api, turn.session_id)
    middle = everything[2]["seq"]
    assert events(api, turn.session_id, f"?after={middle}") == everything[3:]
    assert events(api, turn.session_id, f"?after={everything[-1]['seq']}") == []
    assert events(api, turn.session_id, "?after=0") == everything


@pytest.mark.parametrize("after", ["soon", "null", "-1", "1.5", ""])
def test_it_refuses_a_malformed_after(after, api, user):
    turn = queued_turn(user)
    response = api.get(f"/api/sessions/{turn.session_id}/events/?after={after}")
    body = assert_error(response, 400, "invalid")
    assert "after" in body["fields"]


def test_it_lists_nothing_for_a_new_session(api, user):
    session = sessions.session_create(owner=user)
    assert events(api, session.pk) == []


def test_it_hides_another_users_events(api, other_user):
    turn = queued_turn(other_user)
    assert_error(api.get(f"/api/sessions/{turn.session_id}/events/"), 404, "not_found")


def test_it_pages_a_long_timeline(api, user, monkeypatch):
    monkeypatch.setattr(sessions_api, "EVENTS_PAGE", 3)
    turn = stopped_turn_with_output(user)
    url = f"/api/sessions/{turn.session_id}/events/"

    pages = [api.get(url).json()]
    while pages[-1]["has_more"]:
        pages.append(api.get(f"{url}?after={pages[-1]['results'][-1]['seq']}").json())

    assert len(pages) > 1
    assert all(len(page["results"]) == 3 for page in pages[:-1])
    seqs = [e["seq"] for page in pages for e in page["results"]]
    assert seqs == list(turn.session.events.order_by("seq").values_list("seq", flat=True))
