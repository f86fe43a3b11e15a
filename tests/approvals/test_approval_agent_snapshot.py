"""A turn runs with its profile as it was when the turn was created: a profile edited while the
turn waits (for a worker, or for approval) changes the turns created after the edit, not it."""

import pytest

from agentproj.vocabulary import ErrorCode, TurnStatus
from approvals_app import services as approval_services
from sessions_app.core import lifecycle, sessions
from sessions_app.models import Agent
from tests.conftest import ASK_FOR_EMAIL

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def offered(request) -> set[str]:
    return {tool["function"]["name"] for tool in request.body.get("tools", [])}


@pytest.fixture
def writer():
    return Agent.objects.create(
        name="Writer", instructions="Old instructions.", model="old-model", tools=["send_email"]
    )


def edit(agent: Agent) -> None:
    agent.instructions = "New instructions."
    agent.model = "new-model"
    agent.tools = ["get_time"]
    # The turn below has made one model call already: with this limit it could make no more.
    agent.max_model_calls = 1
    agent.save()


def test_it_resumes_after_approval_with_the_profile_it_started_with(
    writer, llm, user, approver, run_turn_in_thread, outbox
):
    session = sessions.session_create(owner=user, agent=writer)
    turn = lifecycle.turn_start(session=session, message=ASK_FOR_EMAIL, actor=user)
    assert run_turn_in_thread(turn.pk).join() == TurnStatus.WAITING_FOR_APPROVAL
    snapshot = Agent.objects.get(pk=writer.pk)

    edit(writer)
    approval_services.approval_decide(
        approval_id=turn.approval_requests.get().pk, actor=approver, approve=True
    )

    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED
    assert [m.to for m in outbox] == [["x@example.com"]]
    first, resumed = llm.requests
    for request in (first, resumed):
        assert request.body["model"] == "old-model"
        assert request.body["messages"][0] == {"role": "system", "content": "Old instructions."}
        assert offered(request) == {"send_email"}
    turn.refresh_from_db()
    assert turn.agent == writer
    assert turn.agent_snapshot == {
        "id": writer.pk,
        "name": "Writer",
        "instructions": snapshot.instructions,
        "model": snapshot.model,
        "tools": snapshot.tools,
        "all_tools": False,
        "max_model_calls": None,
        "context_tokens": None,
        "answer_reserve_tokens": None,
    }

    # The next turn has the edited profile, its limit of one model call included.
    later = lifecycle.turn_start(session=session, message="what time is it?", actor=user)
    assert run_turn_in_thread(later.pk).join() == TurnStatus.FAILED
    later.refresh_from_db()
    assert later.error_code == ErrorCode.MODEL_CALL_LIMIT
    (request,) = llm.requests[2:]
    assert request.body["model"] == "new-model"
    assert request.body["messages"][0] == {"role": "system", "content": "New instructions."}
    assert offered(request) == {"get_time"}


def test_it_runs_a_queued_turn_with_the_profile_it_was_created_with(
    writer, llm, user, run_turn_in_thread
):
    session = sessions.session_create(owner=user, agent=writer)
    turn = lifecycle.turn_start(session=session, message="hello", actor=user)

    edit(writer)

    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED
    (request,) = llm.requests
    assert request.body["model"] == "old-model"
    assert request.body["messages"][0] == {"role": "system", "content": "Old instructions."}
    assert offered(request) == {"send_email"}
