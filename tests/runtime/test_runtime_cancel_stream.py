"""Stopping a turn while the model streams: the stream is closed at once, the partial text kept,
one interrupt notice, no error, and no further request to the model."""

import logging
import time

import pytest

from agentproj.vocabulary import EventKind, StopReason, TurnStatus
from sessions_app import demo_model
from sessions_app.core import broadcast, lifecycle, sessions
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

STORY_REQUEST = {"messages": [{"role": "user", "content": "tell me a story"}]}
STORY = demo_model.story_text()
STORY_CONTENT_CHUNKS = sum(
    1 for c in demo_model.chunks(STORY_REQUEST) if demo_model.is_content_chunk(c)
)


def _streamed_text(turn) -> str:
    message = turn.events.filter(kind=EventKind.ASSISTANT_MESSAGE).first()
    return message.data.get("text", "") if message else ""


def _start_story_and_cancel_mid_stream(llm, user, run_turn_in_thread):
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(session=session, message="tell me a story", actor=user)
    thread = run_turn_in_thread(turn.pk)
    text_before_cancel = wait_for(lambda: _streamed_text(turn))
    cancelled_at = time.monotonic()
    outcome = lifecycle.turn_request_cancel(session=session, actor=user)
    assert outcome.status == TurnStatus.STOPPING
    assert thread.join() == TurnStatus.STOPPED
    return turn, text_before_cancel, cancelled_at


def _assert_stopped_with_partial_text(turn, text_before_cancel: str) -> None:
    turn.refresh_from_db()
    assert turn.status == TurnStatus.STOPPED
    assert turn.stop_reason == StopReason.USER_CANCEL
    assert turn.error_code == ""
    assert turn.finished_at is not None
    assert turn.lease_token is None

    messages = list(turn.events.filter(kind=EventKind.ASSISTANT_MESSAGE))
    assert len(messages) == 1
    kept = messages[0].data
    assert kept["streaming"] is False
    assert kept["text"].startswith(text_before_cancel)
    assert STORY.startswith(kept["text"])
    assert len(kept["text"]) < len(STORY)

    interrupts = list(turn.events.filter(kind=EventKind.INTERRUPT))
    assert len(interrupts) == 1
    assert interrupts[0].data["reason"] == StopReason.USER_CANCEL
    assert interrupts[0].seq > messages[0].seq
    assert not turn.events.filter(kind=EventKind.ERROR).exists()


def _assert_no_warning_logged(caplog) -> None:
    # Closing the stream ourselves is not a network error: nothing to retry, nothing to report.
    warnings = [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith("sessions_app")
    ]
    assert warnings == [], [r.getMessage() for r in warnings]


def _assert_stream_closed_by_client(llm, cancelled_at: float) -> None:
    # The server notices the closed socket at its next write, one token later.
    wait_for(lambda: llm.requests[0].closed_by_client_at)
    assert len(llm.requests) == 1, "a request reached the model after the cancel"
    seen = llm.requests[0]
    assert seen.started_at < cancelled_at < seen.closed_by_client_at
    assert seen.finished_at is None
    assert 0 < seen.content_chunks_sent < STORY_CONTENT_CHUNKS


def test_it_stops_a_streaming_turn_through_the_control_message(
    llm, user, run_turn_in_thread, settings, caplog
):
    # The row backstop would not look again for a minute: only the control message sent over the
    # channel layer can close the stream before the story ends.
    settings.AGENT_CANCEL_POLL_INTERVAL = 60
    turn, text_before_cancel, cancelled_at = _start_story_and_cancel_mid_stream(
        llm, user, run_turn_in_thread
    )
    _assert_stopped_with_partial_text(turn, text_before_cancel)
    _assert_stream_closed_by_client(llm, cancelled_at)
    _assert_no_warning_logged(caplog)


def test_it_stops_through_the_turn_row_when_the_control_message_is_lost(
    llm, user, run_turn_in_thread, monkeypatch, caplog
):
    signalled = []
    monkeypatch.setattr(broadcast, "signal_turn_on_commit", signalled.append)
    turn, text_before_cancel, cancelled_at = _start_story_and_cancel_mid_stream(
        llm, user, run_turn_in_thread
    )
    assert [signalled_turn.pk for signalled_turn in signalled] == [turn.pk]
    _assert_stopped_with_partial_text(turn, text_before_cancel)
    _assert_stream_closed_by_client(llm, cancelled_at)
    _assert_no_warning_logged(caplog)
