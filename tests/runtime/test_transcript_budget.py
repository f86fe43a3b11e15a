"""A session longer than the model's context window keeps answering: each model call sends the
most recent whole exchanges that fit, says that the older ones are left out, and the timeline
tells it once per turn that leaves something out."""

import pytest

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app.core import lifecycle, sessions
from sessions_app.models import Agent
from sessions_app.runtime import transcript
from sessions_app.runtime.transcript import ContextWindow, estimate_tokens
from tests.conftest import run_turn_to_end

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

CONTEXT_TOKENS = 4_000
ANSWER_RESERVE = 500
PADDING = "x" * 1_200


def test_it_leaves_out_the_oldest_whole_exchanges_to_fit_the_window(llm, user, settings):
    settings.AGENT_CONTEXT_TOKENS = CONTEXT_TOKENS
    settings.AGENT_ANSWER_RESERVE_TOKENS = ANSWER_RESERVE
    budget = ContextWindow(
        context_tokens=CONTEXT_TOKENS, answer_reserve=ANSWER_RESERVE
    ).input_budget
    session = sessions.session_create(owner=user)
    # The last one asks for the time: two model calls, both leaving exchanges out.
    asked = [f"message {n}: {PADDING}" for n in range(1, 7)] + [f"what time is it? {PADDING}"]
    turns = []
    for message in asked:
        seen = len(llm.requests)
        turn = lifecycle.turn_start(session=session, message=message, actor=user)
        assert run_turn_to_end(turn.pk) == TurnStatus.COMPLETED
        turns.append((turn, llm.requests[seen:]))

    trimmed_turns = 0
    for n, (turn, requests) in enumerate(turns):
        omitted_in_turn = []
        for request in requests:
            messages, tools = request.body["messages"], request.body["tools"]
            assert sum(map(estimate_tokens, messages)) + estimate_tokens(tools) <= budget
            users = [m["content"] for m in messages if m["role"] == "user"]
            # The most recent earlier messages, each with its whole answer; then this turn's.
            omitted = n + 1 - len(users)
            assert users == asked[omitted : n + 1]
            for earlier in users[:-1]:
                at = messages.index({"role": "user", "content": earlier})
                assert messages[at + 1] == {
                    "role": "assistant",
                    "content": f"You said: {earlier}. Ask me for a story, the time, or to send "
                    "an email.",
                }
            system = messages[0]["content"]
            assert (transcript.OMITTED_NOTE in system) == (omitted > 0)
            omitted_in_turn.append(omitted)
        trimmed = turn.events.filter(kind=EventKind.CONTEXT_TRIMMED)
        if any(omitted_in_turn):
            trimmed_turns += 1
            assert [event.data["omitted_exchanges"] for event in trimmed] == [omitted_in_turn[0]]
        else:
            assert not trimmed.exists()
    assert len(turns[-1][1]) == 2
    assert 0 < trimmed_turns < len(turns)


def test_it_keeps_to_the_agent_profiles_window(llm, user):
    small = Agent.objects.create(
        name="Small window",
        instructions="Be brief.",
        all_tools=True,
        context_tokens=CONTEXT_TOKENS,
        answer_reserve_tokens=ANSWER_RESERVE,
    )
    budget = ContextWindow(
        context_tokens=CONTEXT_TOKENS, answer_reserve=ANSWER_RESERVE
    ).input_budget
    by_agent = {
        "small": sessions.session_create(owner=user, agent=small),
        "default": sessions.session_create(owner=user),
    }
    for n in range(1, 7):
        for session in by_agent.values():
            turn = lifecycle.turn_start(session=session, message=f"{n}: {PADDING}", actor=user)
            assert run_turn_to_end(turn.pk) == TurnStatus.COMPLETED

    small_last, default_last = llm.requests[-2].body, llm.requests[-1].body
    assert sum(map(estimate_tokens, small_last["messages"])) <= budget
    assert transcript.OMITTED_NOTE in small_last["messages"][0]["content"]
    assert by_agent["small"].events.filter(kind=EventKind.CONTEXT_TRIMMED).exists()
    assert len([m for m in default_last["messages"] if m["role"] == "user"]) == 6
    assert not by_agent["default"].events.filter(kind=EventKind.CONTEXT_TRIMMED).exists()
