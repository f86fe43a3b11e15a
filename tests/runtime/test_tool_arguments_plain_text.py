"""Tool arguments are held to the plain-text rule and to JSON's limits: a control character, a
line break in a mail's subject, a bidi override, a number that is not finite or a nesting too
deep, from the model or from an approver's edit, is an invalid argument the model (or the
approver) is told about. The turn goes on, nothing is sent, and on PostgreSQL no write fails."""

import pytest
from rest_framework.test import APIClient

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app.models import ApprovalRequest, ApprovalStatus
from sessions_app.core import lifecycle, sessions
from tests.turn_states import assert_error

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

MAIL = {"to": "ann@example.com", "subject": "Hello", "body": "Hi Ann."}
CONTROL_CHARACTERS = "Control characters, bidirectional text controls and Unicode noncharacters"
NOT_FINITE = "The JSON holds a number that is not finite"


def mail_with(**changes) -> dict:
    return {**MAIL, **changes}


# What the model sends (an object, or its JSON text as written), and what it must be told.
MODEL_MISTAKES = {
    "NUL in the body": (
        mail_with(body="Hi\x00 Ann."),
        f"Invalid arguments for send_email: body: {CONTROL_CHARACTERS} are not allowed. "
        "(U+0000 at position 3)",
    ),
    "ESC in the subject": (
        mail_with(subject="\x1b[31mURGENT"),
        "Invalid arguments for send_email: subject: Line breaks, control characters,",
    ),
    "CR/LF in the subject": (
        mail_with(subject="Hello\r\nBcc: spy@evil.com"),
        "Invalid arguments for send_email: subject: Line breaks, control characters,",
    ),
    "a right-to-left override in the body": (
        mail_with(body="Pay invoice \u202egnp.exe"),
        f"Invalid arguments for send_email: body: {CONTROL_CHARACTERS} are not allowed. "
        "(U+202E at position 13)",
    ),
    "a control character in an argument's name": (
        {**MAIL, "x\x07": "y"},
        "Invalid arguments for send_email: a name in the arguments: Line breaks,",
    ),
    "1e999": (
        '{"to": "ann@example.com", "subject": "Hello", "body": "Hi.", "n": 1e999}',
        f"The tool arguments are not accepted: {NOT_FINITE}",
    ),
    "NaN": (
        '{"to": "ann@example.com", "subject": "Hello", "body": "Hi.", "n": NaN}',
        f"The tool arguments are not accepted: {NOT_FINITE}",
    ),
    "a 5000-digit number": (
        '{"to": "ann@example.com", "subject": "Hello", "body": "Hi.", "n": ' + "9" * 5000 + "}",
        f"The tool arguments are not accepted: {NOT_FINITE}",
    ),
    "100-deep nesting": (
        '{"to": "ann@example.com", "subject": "Hello", "body": ' + "[" * 100 + "]" * 100 + "}",
        "The tool arguments are not accepted: The JSON is nested more than 32 levels deep.",
    ),
}


@pytest.mark.parametrize("arguments, told", MODEL_MISTAKES.values(), ids=MODEL_MISTAKES.keys())
def test_it_tells_the_model_and_sends_nothing(
    arguments, told, llm, user, outbox, run_turn_in_thread
):
    llm.reply(tool_call={"name": "send_email", "arguments": arguments})
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(session=session, message="mail ann", actor=user)

    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED

    turn.refresh_from_db()
    assert turn.status == TurnStatus.COMPLETED
    assert not turn.events.filter(kind=EventKind.ERROR).exists()
    assert outbox == []
    assert not ApprovalRequest.objects.exists()
    call = turn.events.get(kind=EventKind.TOOL_CALL).data
    # Refused before any rule, and not recorded: a NUL would fail PostgreSQL's write.
    assert (call["arguments"], "policy" in call) == ({}, False)
    result = turn.events.get(kind=EventKind.TOOL_RESULT).data
    assert result["ok"] is False
    assert result["result"].startswith(told)
    told_model = [m for m in llm.requests[1].body["messages"] if m["role"] == "tool"]
    assert [m["content"] for m in told_model] == [result["result"]]


@pytest.mark.parametrize(
    "edit",
    [mail_with(subject="Hello\x00"), mail_with(subject="Re:\nBcc: spy@evil.com")],
    ids=["NUL", "line break in the subject"],
)
def test_it_refuses_an_approvers_edit_that_breaks_the_rule(
    edit, email_waiting_for_approval, approver, outbox
):
    _, approval = email_waiting_for_approval()
    client = APIClient()
    client.force_authenticate(approver)

    response = client.post(
        f"/api/approvals/{approval.pk}/approve/", {"arguments": edit}, format="json"
    )

    body = assert_error(response, 400, "invalid_arguments")
    assert body["detail"].startswith("Invalid arguments for send_email: subject: ")
    approval.refresh_from_db()
    assert (approval.status, approval.edited_arguments) == (ApprovalStatus.PENDING, None)
    assert outbox == []
