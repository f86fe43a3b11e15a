"""An approver edits a pending call's arguments on the chat page's card and approves: the call
runs once with exactly the edited arguments, and the timeline keeps both versions."""

import email
import json

import pytest
from playwright.sync_api import expect

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app.models import ApprovalRequest, ApprovalStatus
from tests.e2e.browser import chip, last_turn, new_session, send, wait_live

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]

REQUESTED = {
    "to": "x@example.com",
    "subject": "A message from agentproj",
    "body": "Hello! You asked me to write: send an email to x@example.com",
}
EDITED = {"to": "y@example.com", "subject": "Edited on the page", "body": "Changed by carol."}
# What Django's file backend writes after each message.
MESSAGE_SEPARATOR = b"\n" + b"-" * 79 + b"\n"


@pytest.fixture
def mail_dir(tmp_path, monkeypatch):
    """Where the served site writes the e-mails it sends (Django's file backend): the test reads
    what really left. Set in the environment before ``server`` starts, which passes it on."""
    folder = tmp_path / "mail"
    monkeypatch.setenv("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
    monkeypatch.setenv("EMAIL_FILE_PATH", str(folder))
    return folder


@pytest.fixture
def server(mail_dir, server):
    return server


def sent_by_the_tool(mail_dir) -> list[email.message.Message]:
    """The e-mails the send_email tool sent (it names its call in X-Idempotency-Key)."""
    messages = []
    for path in sorted(mail_dir.glob("*.log")) if mail_dir.exists() else []:
        for raw in path.read_bytes().split(MESSAGE_SEPARATOR):
            message = email.message_from_bytes(raw.strip())
            if message["X-Idempotency-Key"]:
                messages.append(message)
    return messages


def approval_card(page, turn_id: int):
    return page.locator(f".turn[data-turn='{turn_id}'] .approval")


def test_it_runs_the_call_with_the_arguments_edited_on_the_card(
    login, approver, mail_dir, output_dir
):
    page = login("carol", "carol-password-1")
    session_id = new_session(page, "Edit here")
    send(page, "send an email to x@example.com")
    turn = last_turn(session_id)
    card = approval_card(page, turn.pk)
    expect(card.locator(".approval-state")).to_contain_text("Waiting for approval by")

    card.locator("button.edit-arguments").click()
    editor = card.locator("textarea.arguments-editor")
    expect(editor).to_be_visible()
    # Prefilled with the requested arguments, pretty-printed, in the order the card shows them.
    assert editor.input_value() == json.dumps(REQUESTED, indent=2, sort_keys=True)
    assert card.locator("pre.requested-arguments").text_content() == editor.input_value()
    editor.fill(json.dumps(EDITED, indent=2))
    card.locator("button.approve").click()

    expect(card).to_have_attribute("data-state", "approved")
    expect(chip(page, turn.pk)).to_have_attribute("data-status", "completed")
    page.screenshot(path=output_dir / "edited.png", full_page=True)

    def shows_both_versions():
        # The card keeps what the model asked for; the decision shows what ran, and who changed it.
        # Decided, the card is inside the call's line, opened here.
        page.locator(f".turn[data-turn='{turn.pk}'] .tool-toggle").click()
        expect(card).to_be_visible()
        expect(card.locator("pre.requested-arguments")).to_contain_text('"to": "x@example.com"')
        decision = card.locator(".decision")
        expect(decision).to_have_count(1)
        expect(decision.locator(".decision-text")).to_have_text("Approved by carol")
        expect(decision.locator(".edited")).to_contain_text("Arguments changed by carol:")
        assert json.loads(decision.locator("pre.edited-arguments").text_content()) == EDITED
        result = page.locator(f".turn[data-turn='{turn.pk}'] .tool.result")
        expect(result).to_contain_text("Email sent to y@example.com.")

    shows_both_versions()
    # A fresh page, drawn from the stored timeline, shows the same.
    page.reload()
    wait_live(page)
    shows_both_versions()

    turn.refresh_from_db()
    assert turn.status == TurnStatus.COMPLETED
    approval = ApprovalRequest.objects.get(turn=turn)
    assert approval.status == ApprovalStatus.APPROVED
    assert (approval.arguments, approval.edited_arguments) == (REQUESTED, EDITED)
    assert approval.edited_by == approver
    assert turn.events.filter(kind=EventKind.TOOL_RESULT).count() == 1
    [sent] = sent_by_the_tool(mail_dir)
    assert (sent["To"], sent["Subject"]) == (EDITED["to"], EDITED["subject"])
    assert sent.get_payload(decode=True).decode().strip() == EDITED["body"]


def test_it_keeps_the_request_pending_when_the_edit_is_refused(login, approver, mail_dir):
    page = login("carol", "carol-password-1")
    session_id = new_session(page, "Refused edit")
    send(page, "send an email to x@example.com")
    turn = last_turn(session_id)
    card = approval_card(page, turn.pk)
    error = card.locator(".approval-error")
    expect(card.locator(".approval-state")).to_contain_text("Waiting for approval by")
    card.locator("button.edit-arguments").click()
    editor = card.locator("textarea.arguments-editor")

    # The tool's schema refuses it: the server's explanation, not its JSON.
    editor.fill(json.dumps({"to": "y@example.com", "body": "No subject."}))
    card.locator("button.approve").click()
    expect(error).to_have_text("Invalid arguments for send_email: 'subject' is a required property")

    # Not JSON at all: the page says so without asking the server.
    editor.fill('{"to": "y@example.com",')
    card.locator("button.approve").click()
    expect(error).to_contain_text("The arguments are not valid JSON")

    expect(card).to_have_attribute("data-state", "pending")
    expect(card.locator("button.approve")).to_be_visible()
    expect(editor).to_have_value('{"to": "y@example.com",')
    expect(chip(page, turn.pk)).to_have_attribute("data-status", "waiting_for_approval")
    approval = ApprovalRequest.objects.get(turn=turn)
    assert approval.status == ApprovalStatus.PENDING
    assert approval.edited_arguments is None
    assert not approval.decisions.exists()
    assert not turn.events.filter(kind=EventKind.APPROVAL_DECIDED).exists()
    assert sent_by_the_tool(mail_dir) == []
