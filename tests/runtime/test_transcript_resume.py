"""A turn resumed after an approval, or requeued by a draining worker, sends the model the same
history as a turn that ran without a break: the history is read from the database each time."""

import asyncio

import pytest

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app import services as approval_services
from sessions_app import demo_model
from sessions_app.core import lifecycle, sessions
from sessions_app.models import Turn
from sessions_app.runtime.host import TurnHost
from sessions_app.runtime.loop import REQUEUED
from tests.conftest import ASK_FOR_EMAIL, run_turn_to_end, wait_for

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

BOUND = 30.0


def complete(session, user, message: str) -> Turn:
    turn = lifecycle.turn_start(session=session, message=message, actor=user)
    assert run_turn_to_end(turn.pk) == TurnStatus.COMPLETED
    return turn


def test_a_turn_resumed_after_an_approval_goes_on_from_what_it_sent(llm, user, approver, outbox):
    session = sessions.session_create(owner=user)
    complete(session, user, "what time is it?")
    complete(session, user, "hello")
    turn = lifecycle.turn_start(session=session, message=ASK_FOR_EMAIL, actor=user)
    assert run_turn_to_end(turn.pk) == TurnStatus.WAITING_FOR_APPROVAL
    before = llm.requests[-1].body["messages"]

    approval = turn.approval_requests.get()
    approval_services.approval_decide(approval_id=approval.pk, actor=approver, approve=True)
    assert run_turn_to_end(turn.pk) == TurnStatus.COMPLETED

    after = llm.requests[-1].body["messages"]
    # What an uninterrupted turn sends on its second model call: the first call's messages,
    # then the model's tool call and the tool's result.
    assert after[: len(before)] == before
    assert [m["role"] for m in after[len(before) :]] == ["assistant", "tool"]
    assert after[len(before)]["tool_calls"][0]["id"] == approval.tool_call_id
    assert after[-1]["content"] == "Email sent to x@example.com."
    assert [m for m in before if m["role"] == "user"] == [
        {"role": "user", "content": "what time is it?"},
        {"role": "user", "content": "hello"},
        {"role": "user", "content": ASK_FOR_EMAIL},
    ]


def test_a_turn_requeued_by_a_drain_sends_what_it_sent_before(llm, user, settings):
    settings.AGENT_DRAIN_MODE = "requeue"
    session = sessions.session_create(owner=user)
    complete(session, user, "what time is it?")
    turn = lifecycle.turn_start(session=session, message="tell me a story", actor=user)
    story_request = len(llm.requests)

    def story_streaming() -> bool:
        return len(llm.requests) > story_request and llm.requests[-1].content_chunks_sent >= 3

    async def drain_mid_story() -> str:
        async with TurnHost(capacity=2) as host:
            hosted = await host.admit(turn.pk)
            await asyncio.to_thread(wait_for, story_streaming, BOUND)
            await host.drain(0.0)
            return await asyncio.wait_for(hosted.task, BOUND)

    assert asyncio.run(drain_mid_story()) == REQUEUED
    turn.refresh_from_db()
    assert turn.status == TurnStatus.QUEUED
    before = llm.requests[-1].body["messages"]

    llm.token_delay = 0.001
    assert run_turn_to_end(turn.pk) == TurnStatus.COMPLETED
    assert llm.requests[-1].body["messages"] == before

    # The timeline keeps the text the drain cut off; the next turn sees the story once, as the
    # model told it.
    texts = turn.events.filter(kind=EventKind.ASSISTANT_MESSAGE).order_by("seq")
    cut_off, told = (event.data["text"] for event in texts)
    assert told == demo_model.story_text() != cut_off
    assert told.startswith(cut_off)
    complete(session, user, "thanks")
    after = llm.requests[-1].body["messages"]
    asked = after.index({"role": "user", "content": "tell me a story"})
    assert after[asked + 1 :] == [
        {"role": "assistant", "content": demo_model.story_text()},
        {"role": "user", "content": "thanks"},
    ]
