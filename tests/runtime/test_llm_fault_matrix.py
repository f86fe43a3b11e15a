"""The model server misbehaving, one fault per test, against a real HTTP server on loopback. Every
turn ends, within a bounded wait, in a clean state: retried then completed, or ``failed`` with
one error notice in plain words; never left ``running``, never showing exception text.

Covered elsewhere: 5xx, 429 with ``Retry-After``, a stream dropped mid-text and a request the
server refuses (test_runtime_retries.py); a stalled stream and a stop during a stall or the
back-off after it (test_runtime_stalled_model.py).
"""

import logging
import socket

import pytest

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app import demo_model
from sessions_app.core import lifecycle, sessions
from sessions_app.models import Turn
from tests.conftest import wait_for
from tests.model_failures import (
    assert_failed_with_one_readable_error,
    assert_stopped_by_the_user_without_error,
)

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

HELLO_REPLY, _ = demo_model.plan({"messages": [{"role": "user", "content": "hello"}]})
TIME_CALL = {"name": "get_time", "arguments": {"timezone": "UTC"}}
# Far longer than any test waits: only a stop can end a turn backing off this long.
FOREVER = 3600.0


@pytest.fixture(autouse=True)
def every_response_ends(llm):
    """After each test, every response the server began has ended: sent in full, or hung up on
    by the client (an endless stream the client never closed would fail here)."""
    yield
    wait_for(lambda: all(r.finished_at or r.closed_by_client_at for r in llm.requests))


def _start_turn(user, run_turn_in_thread, message: str = "hello"):
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(session=session, message=message, actor=user)
    return session, turn, run_turn_in_thread(turn.pk)


def _run_turn(user, run_turn_in_thread, message: str = "hello"):
    _, turn, thread = _start_turn(user, run_turn_in_thread, message)
    outcome = thread.join()
    turn.refresh_from_db()
    return turn, outcome


def _assistant_texts(turn) -> list[str]:
    return [
        event.data["text"]
        for event in turn.events.filter(kind=EventKind.ASSISTANT_MESSAGE).order_by("seq")
    ]


def _error_text(turn) -> str:
    return turn.events.get(kind=EventKind.ERROR).data["text"]


def test_a_refused_connection_is_retried_then_fails_in_plain_words(
    user, run_turn_in_thread, settings, caplog
):
    caplog.set_level(logging.WARNING, logger="sessions_app.runtime.llm")
    settings.LLM_MAX_RETRIES = 2
    with socket.socket() as never_listening:
        # A port that is bound but never listens: every connection to it is refused.
        never_listening.bind(("127.0.0.1", 0))
        settings.LLM_BASE_URL = f"http://127.0.0.1:{never_listening.getsockname()[1]}/v1"
        turn, outcome = _run_turn(user, run_turn_in_thread)

    assert outcome == TurnStatus.FAILED
    assert_failed_with_one_readable_error(turn)
    assert _error_text(turn) == "The model server could not be reached."
    retries = [r for r in caplog.records if r.getMessage().startswith("model call failed")]
    assert len(retries) == 2


def test_a_stream_cut_mid_tool_call_is_retried_and_the_half_call_never_runs(
    llm, user, run_turn_in_thread
):
    llm.cut_in_tool_call(TIME_CALL)
    llm.reply(tool_call=TIME_CALL)

    turn, outcome = _run_turn(user, run_turn_in_thread, "what time is it")

    assert outcome == TurnStatus.COMPLETED
    assert [r.behaviour for r in llm.requests] == ["cut_tool_call", "reply", "demo"]
    assert llm.requests[0].finished_at
    # One call recorded and run: the complete one from the retry.
    call = turn.events.get(kind=EventKind.TOOL_CALL).data
    assert (call["tool"], call["arguments"]) == ("get_time", {"timezone": "UTC"})
    result = turn.events.get(kind=EventKind.TOOL_RESULT).data
    assert result["ok"] is True
    assert not turn.events.filter(kind=EventKind.ERROR).exists()
    told_the_model = llm.requests[2].body["messages"]
    assert [m["role"] for m in told_the_model[-2:]] == ["assistant", "tool"]
    assert sum(1 for m in told_the_model if m.get("tool_calls")) == 1


def test_lines_that_are_no_sse_field_are_ignored_and_the_turn_completes(
    llm, user, run_turn_in_thread
):
    # The SSE format ignores lines it does not know and decodes with replacement characters: a
    # stray line from a proxy or a server's debug output loses nothing of the answer.
    llm.insert_raw(
        b"this line is no field at all\n"
        b"\xff\xfe\x80 undecodable bytes\n"
        b": a comment\n"
        b"unknown-field: value\n"
        b"\n",
        after_chunks=2,
    )

    turn, outcome = _run_turn(user, run_turn_in_thread)

    assert outcome == TurnStatus.COMPLETED
    assert [r.behaviour for r in llm.requests] == ["raw"]
    assert _assistant_texts(turn) == [HELLO_REPLY]
    assert not turn.events.filter(kind=EventKind.ERROR).exists()


@pytest.mark.parametrize(
    "bad_line",
    [
        b"data: {not json\n\n",
        b"data: 42\n\n",
        b'data: ["a", "list"]\n\n',
        b'data: "text"\n\n',
        b'data: {"choices": ["not an object"]}\n\n',
        b'data: {"choices": [{"delta": {"content": 5}}]}\n\n',
        b'data: {"choices": [{"delta": {"tool_calls": [{"index": "0"}]}}]}\n\n',
    ],
    ids=[
        "invalid-json",
        "a-number",
        "a-list",
        "a-string",
        "a-choice-that-is-no-object",
        "content-that-is-no-text",
        "a-tool-call-index-that-is-no-number",
    ],
)
def test_a_data_line_that_is_no_chat_chunk_fails_the_turn_without_a_retry(
    bad_line, llm, user, run_turn_in_thread
):
    llm.insert_raw(bad_line, after_chunks=3)

    turn, outcome = _run_turn(user, run_turn_in_thread)

    assert outcome == TurnStatus.FAILED
    assert_failed_with_one_readable_error(turn)
    assert _error_text(turn) == "The model server sent a response that is not a chat stream."
    assert len(llm.requests) == 1
    # The words that came before the bad line stay, as a stopped turn's text does.
    assert _assistant_texts(turn) == [" ".join(HELLO_REPLY.split(" ")[:3]) + " "]


def test_chunks_without_choices_are_ignored_and_the_turn_completes(llm, user, run_turn_in_thread):
    llm.insert_raw(
        b"data: {}\n\n"
        b'data: {"id": "chatcmpl-1", "object": "chat.completion.chunk"}\n\n'
        b'data: {"choices": null, "usage": null}\n\n'
        b'data: {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}\n\n'
        b'data: {"choices": [{"index": 0, "delta": {}}]}\n\n',
        after_chunks=2,
    )

    turn, outcome = _run_turn(user, run_turn_in_thread)

    assert outcome == TurnStatus.COMPLETED
    assert _assistant_texts(turn) == [HELLO_REPLY]
    assert not turn.events.filter(kind=EventKind.ERROR).exists()


def test_a_never_ending_answer_is_cut_at_the_output_limit(llm, user, run_turn_in_thread, settings):
    settings.AGENT_MAX_OUTPUT_CHARS = 1000
    piece = "and on "
    llm.stream_text(piece)

    turn, outcome = _run_turn(user, run_turn_in_thread)

    assert outcome == TurnStatus.FAILED
    assert_failed_with_one_readable_error(turn)
    assert _error_text(turn) == "The answer was longer than the limit of 1,000 characters."
    assert _assistant_texts(turn) == [(piece * 1000)[:1000]]
    # Not retried, and the stream was closed by the client: the server did not end it.
    assert len(llm.requests) == 1
    endless = wait_for(lambda: llm.requests[0].closed_by_client_at and llm.requests[0])
    assert endless.finished_at is None


def test_a_50_mb_answer_is_cut_at_the_default_limit_without_being_read_whole(
    llm, user, run_turn_in_thread, settings
):
    limit = settings.AGENT_MAX_OUTPUT_CHARS
    fifty_mb = 50 * 2**20
    llm.stream_text("x" * 2**16, total_chars=fifty_mb)

    turn, outcome = _run_turn(user, run_turn_in_thread)

    assert outcome == TurnStatus.FAILED
    assert_failed_with_one_readable_error(turn)
    assert _error_text(turn) == f"The answer was longer than the limit of {limit:,} characters."
    assert _assistant_texts(turn) == ["x" * limit]
    flood = wait_for(lambda: llm.requests[0].closed_by_client_at and llm.requests[0])
    assert flood.finished_at is None
    assert flood.content_chars_sent < fifty_mb
    assert len(llm.requests) == 1


def test_the_output_limit_counts_every_model_call_of_the_turn(
    llm, user, run_turn_in_thread, settings
):
    # The first call writes 10 characters of text and a 27-character tool call (name and
    # arguments): 13 characters of the limit are left for the answer after the tool result.
    settings.AGENT_MAX_OUTPUT_CHARS = 50
    llm.reply("Let me see", tool_call=TIME_CALL)
    llm.reply("0123456789" * 3)

    turn, outcome = _run_turn(user, run_turn_in_thread, "what time is it")

    assert outcome == TurnStatus.FAILED
    assert_failed_with_one_readable_error(turn)
    assert _error_text(turn) == "The answer was longer than the limit of 50 characters."
    assert _assistant_texts(turn) == ["Let me see", "0123456789012"]
    assert turn.events.get(kind=EventKind.TOOL_RESULT).data["ok"] is True


def test_a_sub_agent_that_writes_without_end_is_cut_at_the_limit_and_its_parent_carries_on(
    llm, user, run_turn_in_thread, settings
):
    settings.AGENT_MAX_OUTPUT_CHARS = 500
    llm.reply(tool_call={"name": "delegate", "arguments": {"task": "write for ever"}})
    llm.stream_text("more ")

    parent, outcome = _run_turn(user, run_turn_in_thread, "delegate write for ever")

    assert outcome == TurnStatus.COMPLETED
    child = Turn.objects.get(parent=parent)
    assert_failed_with_one_readable_error(child)
    assert _assistant_texts(child) == ["more " * 100]
    result = parent.events.get(kind=EventKind.TOOL_RESULT).data
    assert (result["ok"], result["result"]) == (False, "The sub-agent failed.")
    assert not parent.events.filter(kind=EventKind.ERROR).exists()
    assert [r.behaviour for r in llm.requests] == ["reply", "text", "demo"]
    endless = wait_for(lambda: llm.requests[1].closed_by_client_at and llm.requests[1])
    assert endless.finished_at is None


@pytest.mark.parametrize("failure", ["server-error", "rate-limited", "dropped-stream"])
def test_stop_during_the_back_off_after_a_failed_attempt_ends_the_turn_at_once(
    failure, llm, user, run_turn_in_thread, settings
):
    settings.LLM_RETRY_BASE_DELAY = FOREVER
    settings.LLM_RETRY_MAX_DELAY = FOREVER
    if failure == "server-error":
        llm.fail(500)
    elif failure == "rate-limited":
        llm.rate_limit(str(FOREVER))
    else:
        llm.drop_after(2)
    session, turn, thread = _start_turn(user, run_turn_in_thread)
    # The attempt is over on the server's side: the turn is (about to be) waiting to retry.
    wait_for(lambda: llm.wait_for_requests(1)[0].finished_at)

    lifecycle.turn_request_cancel(session=session, actor=user)

    assert thread.join() == TurnStatus.STOPPED
    assert_stopped_by_the_user_without_error(turn)
    assert len(llm.requests) == 1
