"""The view follows a streaming answer while the reader is at the bottom, stays put when they
scroll up (offering "Jump to latest"), and a reload mid-stream opens at the newest text."""

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import (
    assistant_bubbles,
    last_turn,
    new_session,
    send,
    wait_for_assistant_text,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]

SMALL = {"width": 1100, "height": 500}
AT_BOTTOM = """() => {
    const doc = document.scrollingElement;
    return doc.scrollHeight - doc.scrollTop - doc.clientHeight < 80;
}"""


def scroll_top(page) -> float:
    return page.evaluate("() => document.scrollingElement.scrollTop")


@pytest.mark.serve_env(DEMO_LLM_TOKEN_DELAY="0.03")
def test_it_follows_at_the_bottom_stays_when_scrolled_up_and_jumps_back(login, user):
    page = login("alice", "alice-password-1", viewport=SMALL)
    session_id = new_session(page, "Scrolling")
    send(page, "tell me a story")
    turn = last_turn(session_id)
    text = wait_for_assistant_text(page, turn.pk, longer_than=1200)

    # At the bottom, the view follows the stream.
    page.wait_for_function(AT_BOTTOM)
    expect(page.locator("#jump-latest")).to_be_hidden()

    # Scrolled up, it stays put while the text grows, and offers the way down.
    page.mouse.wheel(0, -3000)
    page.wait_for_function("() => document.scrollingElement.scrollTop < 50")
    wait_for_assistant_text(page, turn.pk, longer_than=len(text) + 200)
    assert scroll_top(page) < 50
    jump = page.locator("#jump-latest")
    expect(jump).to_be_visible()

    jump.click()
    page.wait_for_function(AT_BOTTOM)
    expect(jump).to_be_hidden()
    expect(page.locator("#message")).to_be_focused()

    # A reload mid-stream opens at the newest text.
    page.mouse.wheel(0, -3000)
    page.wait_for_function("() => document.scrollingElement.scrollTop < 50")
    page.reload()
    page.wait_for_selector("#connection[data-state=live]")
    wait_for_assistant_text(page, turn.pk, longer_than=len(text) + 400)
    page.wait_for_function(AT_BOTTOM)
    expect(assistant_bubbles(page, turn.pk).last).to_be_in_viewport()
    page.locator("#stop").click()
