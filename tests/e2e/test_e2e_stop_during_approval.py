"""A turn waiting for approval shows the pending request; Stop ends it with one notice and the
request shows as cancelled."""

import pytest
from playwright.sync_api import expect

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app.models import ApprovalRequest, ApprovalStatus
from tests.e2e.browser import chip, interrupt_notices, last_turn, new_session, seen, send, wait_live

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]


def test_it_stops_a_turn_waiting_for_approval_with_one_notice(login, user, output_dir):
    page = login("alice", "alice-password-1")
    session_id = new_session(page, "Stop during approval")
    send(page, "send an email to x@example.com")
    turn = last_turn(session_id)

    card = page.locator(f".turn[data-turn='{turn.pk}'] .approval")
    expect(card).to_have_attribute("data-state", "pending")
    expect(card.locator(".approval-state")).to_contain_text("Waiting for approval by")
    expect(card.locator("code")).to_have_text("send_email")
    expect(card.locator("pre")).to_contain_text('"to": "x@example.com"')
    expect(chip(page, turn.pk)).to_have_text("Waiting for approval")
    # alice is not an approver: she sees the request but cannot decide it.
    expect(card.locator("button.approve")).to_be_hidden()
    page.screenshot(path=output_dir / "waiting.png", full_page=True)

    page.locator("#stop").click()

    expect(chip(page, turn.pk)).to_have_attribute("data-status", "stopped")
    expect(chip(page, turn.pk)).to_have_text("Stopped")
    expect(card).to_have_attribute("data-state", "cancelled")
    expect(card.locator(".approval-state")).to_have_text("Cancelled")
    expect(interrupt_notices(page, turn.pk)).to_have_count(1)
    expect(page.locator("#stop")).to_be_disabled()
    assert "Stopping…" in seen(page)["stop"]
    page.screenshot(path=output_dir / "stopped.png", full_page=True)

    turn.refresh_from_db()
    assert turn.status == TurnStatus.STOPPED
    assert turn.events.filter(kind=EventKind.INTERRUPT).count() == 1
    assert not turn.events.filter(kind=EventKind.TOOL_RESULT).exists()
    assert ApprovalRequest.objects.get(turn=turn).status == ApprovalStatus.CANCELLED

    page.reload()
    wait_live(page)
    expect(interrupt_notices(page, turn.pk)).to_have_count(1)
    expect(card).to_have_attribute("data-state", "cancelled")
