"""A model server that sends its headers and then nothing. After ``LLM_STREAM_IDLE_TIMEOUT``
without a byte the attempt fails and may be retried; when every attempt stalls, the turn fails with
``llm_error`` and one error notice a user can read. Stop during the stall, or during the back-off
before the retry, still ends the turn at once."""

import pytest

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app import demo_model
from sessions_app.core import lifecycle, sessions
from tests.conftest import wait_for
from tests.model_failures import (
    assert_failed_with_one_readable_error,
    assert_stopped_by_the_user_without_error,
)

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

HELLO_REPLY, _ = demo_model.plan({"messages": [{"role": "user", "content": "hello"}]})
# Far longer than any test waits: only a stop can end a turn stalled or backing off this long.
FOREVER = 3600.0


def _start_hello_turn(user, run_turn_in_thread):
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(session=session, message="hello", actor=user)
    return session, turn, run_turn_in_thread(turn.pk)


def test_it_fails_the_turn_when_every_attempt_stalls(llm, user, run_turn_in_thread, settings):
    settings.LLM_STREAM_IDLE_TIMEOUT = 0.5
    settings.LLM_MAX_RETRIES = 1
    llm.stall(times=2)

    _, turn, thread = _start_hello_turn(user, run_turn_in_thread)

    # join() gives up (and fails the test) long before the old read timeout would have fired.
    assert thread.join() == TurnStatus.FAILED
    turn.refresh_from_db()
    assert_failed_with_one_readable_error(turn)
    error = turn.events.get(kind=EventKind.ERROR).data["text"]
    assert error == "The model server sent nothing for 0.5 seconds."
    assert [r.behaviour for r in llm.requests] == ["stall", "stall"]
    assert all(r.closed_by_client_at for r in llm.requests)


def test_a_stalled_attempt_is_retried_and_the_answer_kept(llm, user, run_turn_in_thread, settings):
    settings.LLM_STREAM_IDLE_TIMEOUT = 0.5
    llm.stall()

    _, turn, thread = _start_hello_turn(user, run_turn_in_thread)

    assert thread.join() == TurnStatus.COMPLETED
    assert [r.behaviour for r in llm.requests] == ["stall", "demo"]
    assert turn.events.get(kind=EventKind.ASSISTANT_MESSAGE).data["text"] == HELLO_REPLY
    assert not turn.events.filter(kind=EventKind.ERROR).exists()


def test_stop_during_a_stall_ends_the_turn_at_once(llm, user, run_turn_in_thread, settings):
    settings.LLM_STREAM_IDLE_TIMEOUT = FOREVER
    llm.stall()
    session, turn, thread = _start_hello_turn(user, run_turn_in_thread)
    llm.wait_for_requests(1)

    lifecycle.turn_request_cancel(session=session, actor=user)

    assert thread.join() == TurnStatus.STOPPED
    assert_stopped_by_the_user_without_error(turn)
    wait_for(lambda: llm.requests[0].closed_by_client_at)
    assert len(llm.requests) == 1


def test_stop_during_the_back_off_after_a_stall_ends_the_turn_at_once(
    llm, user, run_turn_in_thread, settings
):
    settings.LLM_STREAM_IDLE_TIMEOUT = 0.3
    settings.LLM_RETRY_BASE_DELAY = FOREVER
    settings.LLM_RETRY_MAX_DELAY = FOREVER
    llm.stall()
    session, turn, thread = _start_hello_turn(user, run_turn_in_thread)
    # The client gave up on the stalled stream: the turn now waits before its retry.
    wait_for(lambda: llm.wait_for_requests(1)[0].closed_by_client_at)

    lifecycle.turn_request_cancel(session=session, actor=user)

    assert thread.join() == TurnStatus.STOPPED
    assert_stopped_by_the_user_without_error(turn)
    assert len(llm.requests) == 1
