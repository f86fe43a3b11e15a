"""Stop while a sub-agent streams: the parent and its sub-agent both end stopped, each with one
notice, the sub-agent's text kept inside its box."""

import pytest
from playwright.sync_api import expect

from agentproj.vocabulary import EventKind, StopReason, TurnStatus
from sessions_app.models import Turn
from tests.conftest import wait_for
from tests.e2e.browser import chip, interrupt_notices, last_turn, new_session, send, wait_live

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]


def test_it_stops_a_turn_and_its_sub_agent_with_one_notice_each(login, user, output_dir):
    page = login("alice", "alice-password-1")
    session_id = new_session(page, "Stop a sub-agent")
    send(page, "delegate tell me a story")
    parent = last_turn(session_id)
    child = wait_for(lambda: Turn.objects.filter(parent=parent).first(), timeout=30)
    child_text = page.locator(f".turn[data-turn='{child.pk}'] .msg.assistant .bubble")
    expect(child_text).to_contain_text("Chapter 1.")
    # A sub-agent is one line with its status, like a tool use, and opens to its work.
    toggle = page.locator(f".turn[data-turn='{child.pk}'] > .sub-agent-toggle")
    expect(toggle).to_contain_text("Sub-agent")
    expect(child_text).to_be_hidden()
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(child_text).to_be_visible()

    page.click("#stop")

    expect(chip(page, parent.pk)).to_have_attribute("data-status", "stopped")
    expect(chip(page, child.pk)).to_have_attribute("data-status", "stopped")
    parent.refresh_from_db()
    child.refresh_from_db()
    assert (parent.status, parent.stop_reason) == (TurnStatus.STOPPED, StopReason.USER_CANCEL)
    assert (child.status, child.stop_reason) == (TurnStatus.STOPPED, StopReason.PARENT_STOPPED)
    kept = child.events.get(kind=EventKind.ASSISTANT_MESSAGE).data["text"]
    expect(child_text).to_have_text(kept)
    expect(interrupt_notices(page, parent.pk)).to_have_count(1)
    expect(interrupt_notices(page, child.pk)).to_have_count(1)
    expect(page.locator(".notice.interrupt")).to_have_count(2)
    expect(page.locator(".notice.error")).to_have_count(0)
    page.screenshot(path=output_dir / "stopped-sub-agent.png", full_page=True)

    page.reload()
    wait_live(page)
    expect(chip(page, child.pk)).to_have_attribute("data-status", "stopped")
    expect(page.locator(".notice.interrupt")).to_have_count(2)
