"""Cancel through the API while a real worker process streams a story: the control message
crosses processes and the worker closes the model stream."""

import pytest

from agentproj.vocabulary import EventKind, StopReason, TurnStatus
from sessions_app import demo_model
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def _events(api, session_id, kind: str) -> list[dict]:
    response = api.get(f"/api/sessions/{session_id}/events/")
    assert response.status_code == 200
    return [e for e in response.json()["results"] if e["kind"] == kind]


def _streamed_text(api, session_id) -> str:
    messages = _events(api, session_id, EventKind.ASSISTANT_MESSAGE)
    return messages[0]["data"]["text"] if messages else ""


def test_it_stops_a_story_running_in_a_worker_process(llm, api, worker_process):
    # The worker's row backstop would not look for a minute: only the control message sent by
    # this (web) process can reach the worker process before the story ends.
    worker_process(AGENT_CANCEL_POLL_INTERVAL="60")
    session_id = api.post("/api/sessions/", {}, format="json").json()["id"]
    started = api.post(
        f"/api/sessions/{session_id}/turns/", {"message": "tell me a story"}, format="json"
    )
    assert started.status_code == 202
    turn_id = started.json()["id"]
    text_before_cancel = wait_for(lambda: _streamed_text(api, session_id), timeout=30)

    cancel = api.post(f"/api/sessions/{session_id}/cancel/", {}, format="json")

    assert cancel.status_code == 202
    assert cancel.json() == {"turn": turn_id, "status": TurnStatus.STOPPING}
    turn_url = f"/api/sessions/{session_id}/turns/{turn_id}/"
    wait_for(lambda: api.get(turn_url).json()["status"] == TurnStatus.STOPPED, timeout=20)
    turn = api.get(turn_url).json()
    assert turn["stop_reason"] == StopReason.USER_CANCEL
    assert turn["error_code"] == ""
    assert len(_events(api, session_id, EventKind.INTERRUPT)) == 1
    assert _events(api, session_id, EventKind.ERROR) == []
    kept = _events(api, session_id, EventKind.ASSISTANT_MESSAGE)[0]["data"]
    assert kept["streaming"] is False
    assert kept["text"].startswith(text_before_cancel)
    assert demo_model.story_text().startswith(kept["text"])
    assert kept["text"] != demo_model.story_text()

    wait_for(lambda: llm.requests[0].closed_by_client_at)
    assert len(llm.requests) == 1
    assert llm.requests[0].finished_at is None
