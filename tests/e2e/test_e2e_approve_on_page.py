"""An approver decides a pending tool call right on the chat page; the turn goes on."""

import re

import pytest
from playwright.sync_api import expect

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app.models import ApprovalRequest, ApprovalStatus
from tests.e2e.browser import chip, last_turn, new_session, send

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]


def test_it_lets_an_approver_approve_on_the_page(login, approver, output_dir):
    page = login("carol", "carol-password-1")
    session_id = new_session(page, "Approve here")
    send(page, "send an email to x@example.com")
    turn = last_turn(session_id)
    card = page.locator(f".turn[data-turn='{turn.pk}'] .approval")
    expect(card.locator(".approval-state")).to_contain_text("Waiting for approval by")
    # The expiry counts down, the exact moment on hover.
    approval = ApprovalRequest.objects.get(turn=turn)
    countdown = card.locator("time.countdown")
    expect(countdown).to_have_text(re.compile(r"^(in \d+ (minutes?|hours?|days)|tomorrow)$"))
    assert countdown.get_attribute("datetime") == approval.expires_at.isoformat()

    card.locator("input.reason").fill("looks fine")
    card.locator("button.approve").click()

    expect(card).to_have_attribute("data-state", "approved")
    expect(chip(page, turn.pk)).to_have_attribute("data-status", "completed")
    # The decided card folds into the call's one line, which says who approved it.
    line = page.locator(f".turn[data-turn='{turn.pk}'] .tool-line")
    expect(line).to_contain_text("send_email — approved by carol · ")
    expect(card).to_be_hidden()
    page.locator(f".turn[data-turn='{turn.pk}'] .tool-toggle").click()
    # Opened, the line shows the card, with the decision and its reason told once, and the
    # result.
    expect(card.locator(".approval-state")).to_have_text("")
    expect(card.locator(".decision")).to_have_text("Approved by carol: looks fine")
    expect(card.locator("button.approve")).to_be_hidden()
    expect(page.locator(f".turn[data-turn='{turn.pk}'] .tool.result")).to_contain_text(
        "x@example.com"
    )
    page.screenshot(path=output_dir / "approved.png", full_page=True)

    turn.refresh_from_db()
    assert turn.status == TurnStatus.COMPLETED
    approval = ApprovalRequest.objects.get(turn=turn)
    assert approval.status == ApprovalStatus.APPROVED
    assert approval.decided_by == approver
    assert turn.events.filter(kind=EventKind.TOOL_RESULT, data__ok=True).count() == 1


def test_it_lets_an_approver_reject_on_the_page(login, approver):
    page = login("carol", "carol-password-1")
    session_id = new_session(page, "Reject here")
    send(page, "send an email to x@example.com")
    turn = last_turn(session_id)
    card = page.locator(f".turn[data-turn='{turn.pk}'] .approval")

    card.locator("button.reject").click()

    expect(card).to_have_attribute("data-state", "rejected")
    expect(card.locator(".decision")).to_have_text("Rejected by carol")
    expect(page.locator(f".turn[data-turn='{turn.pk}'] .tool-line")).to_have_text(
        "send_email — rejected by carol"
    )
    expect(chip(page, turn.pk)).to_have_attribute("data-status", "completed")
    assert ApprovalRequest.objects.get(turn=turn).status == ApprovalStatus.REJECTED
