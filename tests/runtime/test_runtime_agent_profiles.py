"""A turn runs with its session's agent profile: the profile's instructions and model reach the
model server, only the tools it may use are offered (or run), and its model-call limit holds."""

import pytest

from agentproj.vocabulary import ErrorCode, EventKind, TurnStatus
from sessions_app.core import lifecycle, sessions
from sessions_app.models import Agent, Turn
from tests.conftest import ASK_FOR_EMAIL

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def offered(request) -> set[str]:
    return {tool["function"]["name"] for tool in request.body.get("tools", [])}


def run(user, run_turn_in_thread, agent: Agent | None, message: str) -> Turn:
    session = sessions.session_create(owner=user, agent=agent)
    turn = lifecycle.turn_start(session=session, message=message, actor=user)
    run_turn_in_thread(turn.pk).join()
    turn.refresh_from_db()
    return turn


def test_it_sends_the_profiles_instructions_and_model(llm, user, run_turn_in_thread):
    pirate = Agent.objects.create(
        name="Pirate", instructions="Answer like a pirate.", model="pirate-7b", all_tools=True
    )

    turn = run(user, run_turn_in_thread, pirate, "hello")

    assert turn.status == TurnStatus.COMPLETED
    (request,) = llm.requests
    assert request.body["model"] == "pirate-7b"
    assert request.body["messages"] == [
        {"role": "system", "content": "Answer like a pirate."},
        {"role": "user", "content": "hello"},
    ]


def test_it_uses_the_llm_model_setting_and_every_tool_with_the_default_profile(
    llm, user, run_turn_in_thread, settings
):
    settings.LLM_MODEL = "house-model"

    turn = run(user, run_turn_in_thread, None, "hello")

    assert turn.agent.is_default
    (request,) = llm.requests
    assert request.body["model"] == "house-model"
    assert request.body["messages"][0] == {
        "role": "system",
        "content": turn.agent.instructions,
    }
    assert offered(request) == {"get_time", "send_email", "delegate"}


def test_it_never_offers_a_tool_the_profile_does_not_list(llm, user, run_turn_in_thread, outbox):
    clock = Agent.objects.create(name="Clock", instructions="Tell the time.", tools=["get_time"])

    turn = run(user, run_turn_in_thread, clock, ASK_FOR_EMAIL)

    assert turn.status == TurnStatus.COMPLETED
    (request,) = llm.requests
    assert offered(request) == {"get_time"}
    assert not turn.events.filter(kind=EventKind.TOOL_CALL).exists()
    assert outbox == []


def test_it_refuses_to_run_a_tool_the_profile_does_not_list(llm, user, run_turn_in_thread, outbox):
    clock = Agent.objects.create(name="Clock", instructions="Tell the time.", tools=["get_time"])
    # A model that calls a tool it was not offered gets an error, and nothing runs.
    llm.reply(tool_call={"name": "send_email", "arguments": {"to": "x@example.com"}})

    turn = run(user, run_turn_in_thread, clock, ASK_FOR_EMAIL)

    assert turn.status == TurnStatus.COMPLETED
    result = turn.events.get(kind=EventKind.TOOL_RESULT)
    assert (result.data["ok"], result.data["result"]) == (False, "Unknown tool: send_email")
    assert not turn.approval_requests.exists()
    assert outbox == []


def test_it_offers_no_tool_to_a_profile_without_tools(llm, user, run_turn_in_thread):
    plain = Agent.objects.create(name="Plain", instructions="Just talk.")

    run(user, run_turn_in_thread, plain, "what time is it?")

    (request,) = llm.requests
    assert "tools" not in request.body


def test_it_stops_at_the_profiles_model_call_limit(llm, user, run_turn_in_thread, settings):
    settings.AGENT_MAX_MODEL_CALLS = 20
    brief = Agent.objects.create(
        name="Brief", instructions="Be brief.", tools=["get_time"], max_model_calls=2
    )
    for _ in range(3):
        llm.reply(tool_call={"name": "get_time", "arguments": {"timezone": "UTC"}})

    turn = run(user, run_turn_in_thread, brief, "what time is it, again and again")

    assert turn.status == TurnStatus.FAILED
    assert turn.error_code == ErrorCode.MODEL_CALL_LIMIT
    assert len(llm.requests) == 2


def test_it_runs_a_sub_agent_with_its_parents_profile(llm, user, run_turn_in_thread):
    helper = Agent.objects.create(
        name="Helper",
        instructions="Help, briefly.",
        model="helper-model",
        tools=["delegate", "send_email", "get_time"],
    )

    parent = run(user, run_turn_in_thread, helper, "delegate what time is it")

    assert parent.status == TurnStatus.COMPLETED
    child = Turn.objects.get(parent=parent)
    assert child.agent == helper
    assert child.agent_snapshot == parent.agent_snapshot
    sub_agent_request = llm.requests[1]
    assert sub_agent_request.body["model"] == "helper-model"
    assert sub_agent_request.body["messages"][0] == {
        "role": "system",
        "content": "Help, briefly.",
    }
    # The sub-agent rule (no approval, no further sub-agents) on top of the profile's list.
    assert offered(llm.requests[0]) == {"delegate", "send_email", "get_time"}
    assert offered(sub_agent_request) == {"get_time"}


def test_it_runs_a_sub_agent_with_only_what_its_parents_profile_allows(
    llm, user, run_turn_in_thread
):
    delegator = Agent.objects.create(name="Delegator", instructions="Delegate.", tools=["delegate"])

    run(user, run_turn_in_thread, delegator, "delegate what time is it")

    assert "tools" not in llm.requests[1].body
