"""Each tool use is one line on the page, with its arguments, result and decided card inside it.
A call that did not run reads as not run, not as failed, and a rejection's reason is told
once (by the decision); a note written for the model about how a call was made stays out of
the user's view."""

import pytest

from agentproj.vocabulary import TurnStatus
from approvals_app import services as approval_services
from tests.html_tree import parse

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

REASON = "wrong recipient, ask Ann first"


def timeline_of(client, user, turn):
    client.force_login(user)
    response = client.get(f"/sessions/{turn.session_id}/")
    assert response.status_code == 200
    return parse(response.content.decode()).by_id("timeline")


def timeline_text(client, user, turn) -> str:
    return timeline_of(client, user, turn).visible_text


def test_an_approved_call_is_one_line_holding_its_card_and_result(
    client, user, approver, llm, email_waiting_for_approval, run_turn_in_thread
):
    turn, approval = email_waiting_for_approval()
    approval_services.approval_decide(approval_id=approval.pk, actor=approver, approve=True)
    llm.reply("Sent.")
    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED

    timeline = timeline_of(client, user, turn)

    (use,) = timeline.by_class("tool-use")
    (line,) = use.by_class("tool-line")
    assert line.visible_text.startswith("send_email — approved by carol · ")
    assert line.visible_text.endswith(" s")
    # The card, its one decision and the result are inside the line, not beside it.
    assert len(use.by_class("approval")) == 1
    assert [d.visible_text.strip() for d in use.by_class("decision")] == ["Approved by carol"]
    (result,) = use.by_class("tool", "result")
    assert "Email sent to" in result.visible_text
    assert timeline.visible_text.count("Approved by carol") == 1
    (events,) = timeline.by_class("turn-events")
    assert [item.attrs["data-kind"] for item in events.child_elements()] == [
        "user_message",
        "tool_call",
        "assistant_message",
    ]


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
    assert text.count("Rejected by carol") == 1
    assert "send_email — rejected by carol" in text
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
