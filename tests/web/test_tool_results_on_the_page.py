"""A call that did not run reads as not run, not as failed, and a rejection's reason is told
once (by the decision); a note written for the model about how a call was made stays out of
the user's view."""

import pytest

from agentproj.vocabulary import TurnStatus
from approvals_app import services as approval_services
from tests.html_tree import parse

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

REASON = "wrong recipient, ask Ann first"


def timeline_text(client, user, turn) -> str:
    client.force_login(user)
    response = client.get(f"/sessions/{turn.session_id}/")
    assert response.status_code == 200
    page = parse(response.content.decode())
    return page.by_id("timeline").visible_text


def test_a_rejected_call_is_not_run_with_its_reason_told_once(
    client, user, approver, llm, email_waiting_for_approval, run_turn_in_thread
):
    turn, approval = email_waiting_for_approval()
    approval_services.approval_decide(
        approval_id=approval.pk, actor=approver, approve=False, reason=REASON
    )
    llm.reply("Understood: I will not send it.")
    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED

    text = timeline_text(client, user, turn)

    assert text.count(REASON) == 1
    assert "Not run: send_email" in text
    assert "Failed" not in text
    assert "Completed" in text


def test_the_note_for_the_model_about_an_edit_is_not_shown(
    client, user, approver, llm, email_waiting_for_approval, run_turn_in_thread
):
    turn, approval = email_waiting_for_approval()
    edited = {**approval.arguments, "to": "y@example.com"}
    approval_services.approval_decide(
        approval_id=approval.pk, actor=approver, approve=True, arguments=edited
    )
    llm.reply("Sent.")
    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED

    text = timeline_text(client, user, turn)

    assert "Email sent to y@example.com." in text
    assert "Note: a person" not in text
    # The model was told.
    assert llm.requests[-1].body["messages"][-1]["content"].startswith("Note: a person (carol)")
