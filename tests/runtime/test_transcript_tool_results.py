"""A turn's model input holds the earlier turns' tool calls and their results, as the model API
shapes them: a built-in tool, an approved one, a rejected one with its reason, a sub-agent."""

import json

import pytest

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app import services as approval_services
from sessions_app.core import lifecycle, sessions
from sessions_app.models import Turn

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

ASK_THE_TOOL = "what did the tool say?"


def ask_what_the_tool_said(session, user, run_turn_in_thread, llm) -> list[dict]:
    """Run a turn asking about the tool; returns the messages its model call sent."""
    turn = lifecycle.turn_start(session=session, message=ASK_THE_TOOL, actor=user)
    seen = len(llm.requests)
    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED
    assert len(llm.requests) == seen + 1
    return llm.requests[-1].body["messages"]


def assert_told(messages: list[dict], earlier: Turn) -> str:
    """``messages`` hold ``earlier``'s user message, then its tool call as an assistant message,
    then the call's recorded result; returns that result."""
    call = earlier.events.get(kind=EventKind.TOOL_CALL).data
    result = earlier.events.get(kind=EventKind.TOOL_RESULT).data
    asked = messages.index({"role": "user", "content": earlier.user_message})
    answer = messages[asked + 1]
    assert answer["role"] == "assistant"
    assert answer["tool_calls"] == [
        {
            "id": call["tool_call_id"],
            "type": "function",
            "function": {"name": call["tool"], "arguments": json.dumps(call["arguments"])},
        }
    ]
    assert messages[asked + 2] == {
        "role": "tool",
        "tool_call_id": call["tool_call_id"],
        "content": result["result"],
    }
    assert messages[-1] == {"role": "user", "content": ASK_THE_TOOL}
    return result["result"]


def last_answer(session) -> str:
    return (
        session.events.filter(kind=EventKind.ASSISTANT_MESSAGE).order_by("seq").last().data["text"]
    )


def test_it_remembers_a_built_in_tools_result(llm, user, run_turn_in_thread):
    session = sessions.session_create(owner=user)
    first = lifecycle.turn_start(session=session, message="what time is it?", actor=user)
    assert run_turn_in_thread(first.pk).join() == TurnStatus.COMPLETED

    messages = ask_what_the_tool_said(session, user, run_turn_in_thread, llm)

    said = assert_told(messages, first)
    assert "UTC" in said
    assert messages[0]["role"] == "system"
    assert messages[4] == {
        "role": "assistant",
        "content": f"Done. The tool reported: {said}",
    }
    assert last_answer(session) == f"The last tool result I was given: {said}"


@pytest.mark.parametrize(
    ("approve", "told"),
    [(True, "Email sent to x@example.com."), (False, "Rejected by carol: wrong recipient")],
)
def test_it_remembers_a_decided_calls_result(
    approve, told, email_waiting_for_approval, approver, llm, user, run_turn_in_thread
):
    first, approval = email_waiting_for_approval()
    approval_services.approval_decide(
        approval_id=approval.pk, actor=approver, approve=approve, reason="wrong recipient"
    )
    assert run_turn_in_thread(first.pk).join() == TurnStatus.COMPLETED

    messages = ask_what_the_tool_said(first.session, user, run_turn_in_thread, llm)

    assert assert_told(messages, first) == told
    assert last_answer(first.session) == f"The last tool result I was given: {told}"


def test_it_remembers_a_sub_agents_answer_as_the_delegate_tools_result(
    llm, user, run_turn_in_thread
):
    session = sessions.session_create(owner=user)
    first = lifecycle.turn_start(session=session, message="delegate say hello", actor=user)
    assert run_turn_in_thread(first.pk).join() == TurnStatus.COMPLETED
    child = Turn.objects.get(parent=first)

    messages = ask_what_the_tool_said(session, user, run_turn_in_thread, llm)

    said = assert_told(messages, first)
    assert said == child.events.get(kind=EventKind.ASSISTANT_MESSAGE).data["text"]
    # The sub-agent's own conversation stays its own.
    assert {"role": "user", "content": child.user_message} not in messages
