"""MCP tools under the approval policies: a read-only tool runs unasked, a destructive or
unannotated one waits for a person, a policy rule (by the tool's offered name) overrides both,
and an approved call runs once, with the approved arguments, however often it is resumed."""

import pytest
from rest_framework.test import APIClient

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app.models import ApprovalStatus, Outcome, PolicyRule
from sessions_app.core import lifecycle, sessions

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def ask(llm, user, run_turn_in_thread, server_log):
    def ask(message: str):
        session = sessions.session_create(owner=user)
        turn = lifecycle.turn_start(session=session, message=message, actor=user)
        run_turn_in_thread(turn.pk).join()
        turn.refresh_from_db()
        return turn

    return ask


@pytest.mark.parametrize(
    "message",
    ['call testsrv__wipe {"target": "disk"}', 'call testsrv__note {"text": "remember"}'],
    ids=["destructive", "unannotated"],
)
def test_it_waits_for_approval_of_a_tool_not_annotated_read_only(ask, server_log, message):
    turn = ask(message)

    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL
    approval = turn.approval_requests.get()
    assert approval.tool_name == message.split()[1]
    assert approval.status == ApprovalStatus.PENDING
    call = turn.events.get(kind=EventKind.TOOL_CALL)
    assert call.data["policy"] == {
        "rule": None,
        "name": "the tool's default",
        "outcome": Outcome.REQUIRE_APPROVAL,
    }
    assert server_log.entries("wipe") == server_log.entries("note") == []


def test_it_runs_a_read_only_tool_unasked(ask, server_log):
    turn = ask('call testsrv__echo {"text": "hello"}')

    assert turn.status == TurnStatus.COMPLETED
    assert not turn.approval_requests.exists()
    assert turn.events.get(kind=EventKind.TOOL_RESULT).data["result"] == "echo: hello"


def test_a_policy_rule_overrides_the_annotations(ask, server_log):
    allow = PolicyRule.objects.create(
        name="Scratch may be wiped",
        tool_name="testsrv__wipe",
        field="target",
        operator="equals",
        value="scratch",
        outcome=Outcome.ALLOW,
    )
    PolicyRule.objects.create(
        name="Echoes need a person", tool_name="testsrv__echo", outcome=Outcome.REQUIRE_APPROVAL
    )

    wiped = ask('call testsrv__wipe {"target": "scratch"}')
    echoed = ask('call testsrv__echo {"text": "hello"}')

    assert wiped.status == TurnStatus.COMPLETED
    assert wiped.events.get(kind=EventKind.TOOL_CALL).data["policy"]["rule"] == allow.pk
    assert wiped.events.get(kind=EventKind.TOOL_RESULT).data["result"] == "wiped scratch"
    assert echoed.status == TurnStatus.WAITING_FOR_APPROVAL
    assert echoed.approval_requests.get().tool_name == "testsrv__echo"
    assert server_log.entries("echo") == []


def test_an_approved_call_runs_once_with_the_approved_arguments(
    ask, server_log, approver, run_turn_in_thread, llm
):
    turn = ask('call testsrv__wipe {"target": "disk"}')
    approval = turn.approval_requests.get()
    client = APIClient()
    client.force_authenticate(approver)

    response = client.post(
        f"/api/approvals/{approval.pk}/approve/",
        {"arguments": {"target": "scratch"}},
        format="json",
    )

    assert response.status_code == 200
    first, second = run_turn_in_thread(turn.pk), run_turn_in_thread(turn.pk)
    assert sorted([first.join(), second.join()]) == sorted([TurnStatus.COMPLETED, "skipped"])
    assert [entry["target"] for entry in server_log.entries("wipe")] == ["scratch"]
    turn.refresh_from_db()
    approval.refresh_from_db()
    assert turn.status == TurnStatus.COMPLETED
    assert approval.executed_at is not None
    result = turn.events.get(kind=EventKind.TOOL_RESULT)
    assert result.data["ok"] is True
    assert result.data["result"] == "wiped scratch"
    assert llm.requests[-1].body["messages"][-1]["content"] == (
        result.data["note"] + result.data["result"]
    )


def test_edited_arguments_are_checked_against_the_tool_schema(ask, approver):
    turn = ask('call testsrv__wipe {"target": "disk"}')
    approval = turn.approval_requests.get()
    client = APIClient()
    client.force_authenticate(approver)

    response = client.post(
        f"/api/approvals/{approval.pk}/approve/", {"arguments": {"target": 7}}, format="json"
    )

    assert response.status_code == 400
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING
