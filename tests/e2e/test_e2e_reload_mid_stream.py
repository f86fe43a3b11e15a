"""Reloading mid-stream shows everything generated so far and goes on streaming: no gap, no
duplicate, and leaving the page did not stop the turn."""

import pytest
from playwright.sync_api import expect

from agentproj.vocabulary import EventKind, TurnStatus
from tests.e2e.browser import (
    assistant_bubbles,
    chip,
    interrupt_notices,
    last_turn,
    new_session,
    send,
    wait_for_assistant_text,
    wait_live,
    words,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]


def test_it_resumes_the_stream_after_a_reload_without_gap_or_duplicate(login, user):
    page = login("alice", "alice-password-1")
    session_id = new_session(page, "Reload")
    send(page, "tell me a story")
    turn = last_turn(session_id)
    before = wait_for_assistant_text(page, turn.pk, longer_than=100)

    page.reload()
    wait_live(page)
    after = wait_for_assistant_text(page, turn.pk, longer_than=len(before) + 40)

    assert after.startswith(before)
    turn.refresh_from_db()
    assert turn.status == TurnStatus.RUNNING
    expect(page.locator(".msg.user")).to_have_count(1)
    expect(page.locator(".msg.assistant")).to_have_count(1)
    expect(page.locator(".msg.assistant.streaming")).to_have_count(1)

    page.locator("#stop").click()
    expect(chip(page, turn.pk)).to_have_attribute("data-status", "stopped")
    final = turn.events.get(kind=EventKind.ASSISTANT_MESSAGE).data["text"]
    assert words(final).startswith(after)
    expect(assistant_bubbles(page, turn.pk)).to_have_text(final)
    expect(page.locator(".msg.assistant")).to_have_count(1)
    expect(interrupt_notices(page, turn.pk)).to_have_count(1)
