"""The same session open in two tabs: both follow the turn; closing one stops nothing; a Stop in
one shows in both, with one notice each."""

import pytest
from playwright.sync_api import expect

from agentproj.vocabulary import TurnStatus
from tests.e2e.browser import (
    chip,
    interrupt_notices,
    last_turn,
    new_session,
    send,
    wait_for_assistant_text,
    wait_live,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]


def test_it_updates_both_tabs_of_the_same_session(login, user, output_dir):
    first = login("alice", "alice-password-1")
    session_id = new_session(first, "Two tabs")
    second = first.context.new_page()
    second.goto(first.url)
    wait_live(second)

    send(first, "tell me a story")
    turn = last_turn(session_id)
    expect(second.locator(".msg.user .bubble")).to_have_text("tell me a story")
    seen_in_first = wait_for_assistant_text(first, turn.pk, longer_than=60)
    seen_in_second = wait_for_assistant_text(second, turn.pk, longer_than=len(seen_in_first))
    assert seen_in_second.startswith(seen_in_first)
    expect(second.locator("#stop")).to_be_enabled()

    first.close()
    more = wait_for_assistant_text(second, turn.pk, longer_than=len(seen_in_second) + 40)
    assert more.startswith(seen_in_second)
    turn.refresh_from_db()
    assert turn.status == TurnStatus.RUNNING

    third = second.context.new_page()
    third.goto(second.url)
    wait_live(third)
    second.locator("#stop").click()
    for page in (second, third):
        expect(chip(page, turn.pk)).to_have_attribute("data-status", "stopped")
        expect(interrupt_notices(page, turn.pk)).to_have_count(1)
        expect(page.locator("#stop")).to_be_disabled()
        expect(page.locator(".msg.assistant")).to_have_count(1)
    assert (
        second.locator(".msg.assistant .bubble").text_content()
        == third.locator(".msg.assistant .bubble").text_content()
    )
    third.screenshot(path=output_dir / "stopped-in-other-tab.png", full_page=True)
