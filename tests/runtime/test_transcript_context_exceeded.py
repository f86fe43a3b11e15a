"""A model server that refuses a request as longer than its context window (OpenAI's 400
``context_length_exceeded``) gets the request again once, with the oldest exchanges left out to
fit the window it stated (or half as much when it stated none); the session keeps to that
window from then on. Refused again, the turn fails with plain words."""

import pytest

from agentproj.vocabulary import ErrorCode, EventKind, TurnStatus
from sessions_app.core import lifecycle, sessions
from sessions_app.runtime.transcript import ContextWindow, estimate_tokens
from tests.conftest import run_turn_to_end

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

PADDING = "x" * 1_200
STATED_LIMIT = 6_000
# What the model's window leaves for the messages, whatever the answer's reserve.
BUDGET = ContextWindow(context_tokens=STATED_LIMIT, answer_reserve=STATED_LIMIT).input_budget
TOO_LONG = "The conversation is too long for the model's context window"


def refusal(limit: int | None = STATED_LIMIT, counted: int = 9_000) -> str:
    stated = f"This model's maximum context length is {limit:,} tokens. " if limit else ""
    return (
        f"{stated}However, your messages resulted in {counted:,} tokens. "
        "Please reduce the length of the messages."
    )


def size(request) -> int:
    return sum(map(estimate_tokens, request.body["messages"])) + estimate_tokens(
        request.body["tools"]
    )


def users(request) -> list[str]:
    return [m["content"] for m in request.body["messages"] if m["role"] == "user"]


def session_with_history(user, turns: int = 5):
    session = sessions.session_create(owner=user)
    for n in range(turns):
        turn = lifecycle.turn_start(session=session, message=f"message {n}: {PADDING}", actor=user)
        assert run_turn_to_end(turn.pk) == TurnStatus.COMPLETED
    return session


def test_it_retries_within_the_stated_window_and_keeps_to_it(llm, user):
    session = session_with_history(user)
    llm.refuse_as_too_long(refusal(counted=1_000))
    turn = lifecycle.turn_start(session=session, message="and now?", actor=user)

    assert run_turn_to_end(turn.pk) == TurnStatus.COMPLETED

    refused, retried = llm.requests[-2:]
    assert refused.behaviour == "status"
    assert size(retried) <= BUDGET < size(refused)
    assert users(retried) == users(refused)[len(users(refused)) - len(users(retried)) :]
    assert 1 < len(users(retried)) < len(users(refused))
    assert turn.events.filter(kind=EventKind.CONTEXT_TRIMMED).count() == 1
    turn.refresh_from_db()
    assert turn.checkpoint["context"] == {"limit": STATED_LIMIT}

    # The next turn keeps to the window at once.
    seen = len(llm.requests)
    later = lifecycle.turn_start(session=session, message="and then?", actor=user)
    assert run_turn_to_end(later.pk) == TurnStatus.COMPLETED
    [request] = llm.requests[seen:]
    assert size(request) <= BUDGET


@pytest.mark.parametrize(
    "counted",
    [
        "However, your messages resulted in 12,000 tokens.",
        "However, you requested 12500 tokens (12000 in the messages, 500 in the completion).",
    ],
)
def test_it_believes_the_count_the_refusal_states(counted, llm, user):
    session = session_with_history(user)
    llm.refuse_as_too_long(
        f"This model's maximum context length is {STATED_LIMIT} tokens. {counted}"
    )
    turn = lifecycle.turn_start(session=session, message="and now?", actor=user)

    assert run_turn_to_end(turn.pk) == TurnStatus.COMPLETED

    # The server counts this conversation at nearly three times the estimate: the retry is
    # measured by its count, and leaves out the earlier exchanges that fit the window by the
    # estimate alone (as in the first test).
    refused, retried = llm.requests[-2:]
    scale = 12_000 / size(refused)
    assert scale > 2
    assert size(retried) * scale <= BUDGET
    assert users(retried) == ["and now?"]


def test_it_halves_what_it_sends_when_the_refusal_states_no_window(llm, user):
    session = session_with_history(user)
    llm.refuse_as_too_long(refusal(limit=None, counted=1_000))
    turn = lifecycle.turn_start(session=session, message="and now?", actor=user)

    assert run_turn_to_end(turn.pk) == TurnStatus.COMPLETED

    refused, retried = llm.requests[-2:]
    assert size(retried) <= size(refused) // 2
    assert users(retried)[-1] == "and now?"


def test_it_fails_with_plain_words_when_refused_again(llm, user):
    session = session_with_history(user)
    llm.refuse_as_too_long(refusal(counted=1_000), times=2)
    seen = len(llm.requests)
    turn = lifecycle.turn_start(session=session, message="and now?", actor=user)

    assert run_turn_to_end(turn.pk) == TurnStatus.FAILED

    turn.refresh_from_db()
    assert turn.error_code == ErrorCode.LLM_ERROR
    assert turn.events.get(kind=EventKind.ERROR).data["text"].startswith(TOO_LONG)
    assert len(llm.requests) == seen + 2


def test_it_does_not_send_the_same_request_again_when_nothing_can_be_left_out(llm, user):
    llm.refuse_as_too_long(refusal(counted=1_000))
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(session=session, message="hello", actor=user)

    assert run_turn_to_end(turn.pk) == TurnStatus.FAILED

    assert turn.events.get(kind=EventKind.ERROR).data["text"].startswith(TOO_LONG)
    assert len(llm.requests) == 1
