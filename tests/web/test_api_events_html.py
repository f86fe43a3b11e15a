"""An assistant message that no longer streams carries its text as sanitised HTML in the events
API, the same ``html`` the page's socket receives; a streaming one does not."""

import pytest

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app.core import leases, lifecycle
from sessions_app.core.events import serialize_event
from sessions_app.core.rendering import assistant_html
from tests.turn_states import running_turn

pytestmark = pytest.mark.django_db

TEXT = "## Done\n\n- a [link](javascript:alert(1))\n\n<script>alert(1)</script>"


def assistant_events(api, session_id):
    response = api.get(f"/api/sessions/{session_id}/events/")
    assert response.status_code == 200, response.content
    return [e for e in response.json()["results"] if e["kind"] == EventKind.ASSISTANT_MESSAGE]


def test_it_has_no_html_while_the_message_streams(api, user):
    turn, lease = running_turn(user)
    leases.turn_save_progress(turn_id=turn.pk, lease_token=lease, assistant_text=TEXT)
    [event] = assistant_events(api, turn.session_id)
    assert event["data"] == {"text": TEXT, "streaming": True}
    assert "html" not in event


def test_it_renders_the_stored_text_once_the_message_ends(api, user):
    turn, lease = running_turn(user)
    leases.turn_save_progress(turn_id=turn.pk, lease_token=lease, assistant_text=TEXT)
    lifecycle.turn_request_cancel(session=turn.session, actor=user)
    lifecycle.turn_finalize(turn_id=turn.pk, status=TurnStatus.STOPPED, lease_token=lease)
    [event] = assistant_events(api, turn.session_id)
    assert event["data"] == {"text": TEXT, "streaming": False}
    assert event["html"] == assistant_html(TEXT)
    assert "<h2>Done</h2>" in event["html"]
    assert "<script>" not in event["html"]
    assert "href" not in event["html"]


def test_the_socket_sends_the_same_html(user):
    turn, lease = running_turn(user)
    leases.turn_save_progress(turn_id=turn.pk, lease_token=lease, assistant_text=TEXT)
    lifecycle.turn_request_cancel(session=turn.session, actor=user)
    lifecycle.turn_finalize(turn_id=turn.pk, status=TurnStatus.STOPPED, lease_token=lease)
    event = turn.events.get(kind=EventKind.ASSISTANT_MESSAGE)
    assert serialize_event(event)["html"] == assistant_html(TEXT)
    assert all("html" not in serialize_event(e) for e in turn.events.exclude(pk=event.pk))
