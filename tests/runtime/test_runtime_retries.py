"""Genuine model failures: retried a bounded number of times, then the turn fails cleanly with
``llm_error`` and one error notice a user can read; a 429's ``Retry-After`` is honoured."""

import pytest

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app import demo_model
from sessions_app.core import lifecycle, sessions
from tests.model_failures import assert_failed_with_one_readable_error

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

HELLO_REPLY, _ = demo_model.plan({"messages": [{"role": "user", "content": "hello"}]})


def _run_hello_turn(user, run_turn_in_thread):
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(session=session, message="hello", actor=user)
    outcome = run_turn_in_thread(turn.pk).join()
    turn.refresh_from_db()
    return turn, outcome


def test_it_fails_the_turn_after_retrying_server_errors(llm, user, run_turn_in_thread, settings):
    settings.LLM_MAX_RETRIES = 2
    llm.fail(500, times=3)
    turn, outcome = _run_hello_turn(user, run_turn_in_thread)
    assert outcome == TurnStatus.FAILED
    assert_failed_with_one_readable_error(turn)
    assert [r.behaviour for r in llm.requests] == ["status"] * 3


def test_it_retries_a_stream_dropped_mid_answer_and_keeps_only_the_new_answer(
    llm, user, run_turn_in_thread
):
    llm.drop_after(3)
    turn, outcome = _run_hello_turn(user, run_turn_in_thread)
    assert outcome == TurnStatus.COMPLETED
    assert turn.status == TurnStatus.COMPLETED
    assert [r.behaviour for r in llm.requests] == ["drop", "demo"]
    assert llm.requests[0].content_chunks_sent == 3
    messages = list(turn.events.filter(kind=EventKind.ASSISTANT_MESSAGE))
    assert len(messages) == 1
    assert messages[0].data == {"text": HELLO_REPLY, "streaming": False}
    assert not turn.events.filter(kind=EventKind.ERROR).exists()


def test_it_fails_the_turn_when_every_stream_is_dropped(llm, user, run_turn_in_thread, settings):
    settings.LLM_MAX_RETRIES = 2
    llm.drop_after(2, times=3)
    turn, outcome = _run_hello_turn(user, run_turn_in_thread)
    assert outcome == TurnStatus.FAILED
    assert_failed_with_one_readable_error(turn)
    assert [r.behaviour for r in llm.requests] == ["drop"] * 3


def test_it_does_not_retry_a_request_the_server_refuses(llm, user, run_turn_in_thread):
    llm.fail(400)
    turn, outcome = _run_hello_turn(user, run_turn_in_thread)
    assert outcome == TurnStatus.FAILED
    assert_failed_with_one_readable_error(turn)
    assert len(llm.requests) == 1


def test_it_waits_as_long_as_retry_after_says_before_retrying(llm, user, run_turn_in_thread):
    # The back-off without Retry-After would be a few hundredths of a second (the fixture's base
    # delay); Retry-After asks for a whole second, a lower bound the client must respect.
    llm.rate_limit("1")
    turn, outcome = _run_hello_turn(user, run_turn_in_thread)
    assert outcome == TurnStatus.COMPLETED
    assert turn.status == TurnStatus.COMPLETED
    rate_limited, retried = llm.requests
    assert rate_limited.behaviour == "status"
    assert retried.behaviour == "demo"
    assert retried.started_at - rate_limited.started_at >= 1.0
    assert not turn.events.filter(kind=EventKind.ERROR).exists()
    assert turn.events.get(kind=EventKind.ASSISTANT_MESSAGE).data["text"] == HELLO_REPLY
