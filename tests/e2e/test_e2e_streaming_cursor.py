"""While an answer streams, its cursor ends the text's last line instead of sitting on a line
of its own below the answer."""

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import last_turn, new_session, send, turn_locator, wait_for_assistant_text

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]

CURSOR = '"▍"'


@pytest.mark.serve_env(DEMO_LLM_TOKEN_DELAY="0.1")
def test_the_streaming_cursor_ends_the_last_line(login, user):
    page = login("alice", "alice-password-1")
    session_id = new_session(page, "Cursor")
    send(page, "tell me a story")
    turn = last_turn(session_id)
    wait_for_assistant_text(page, turn.pk, longer_than=20)
    bubble = turn_locator(page, turn.pk).locator(".msg.assistant.streaming .bubble")
    expect(bubble).to_have_count(1)
    # The block still being written is drawn apart (a box-less .open-block) until it closes.
    cursor = bubble.evaluate(
        """bubble => {
            const open = bubble.querySelector(":scope > .open-block:last-child");
            const last = (open || bubble).lastElementChild;
            return {
                onBubble: getComputedStyle(bubble, "::after").content,
                onOpenBlock: open ? getComputedStyle(open, "::after").content : "none",
                onLastBlock: getComputedStyle(last, "::after").content,
                lastBlock: last.tagName,
            };
        }"""
    )
    assert cursor == {
        "onBubble": "none",
        "onOpenBlock": "none",
        "onLastBlock": CURSOR,
        "lastBlock": "P",
    }
    page.locator("#stop").click()
