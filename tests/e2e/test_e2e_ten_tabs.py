"""Ten people at once: ten tabs, each with its own session, ask for a story at the same moment.
All ten stream at once (none waits for another to finish), and Stop in one tab stops only that
one."""

import pytest
from playwright.sync_api import expect

from agentproj.vocabulary import TurnStatus
from sessions_app.models import Turn
from tests.e2e.browser import (
    chip,
    interrupt_notices,
    last_turn,
    new_session,
    send,
    wait_for_assistant_text,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]

TABS = 10


@pytest.mark.serve_env(DEMO_LLM_TOKEN_DELAY="0.1")
def test_ten_tabs_stream_at_once_and_stop_only_their_own(login, user, output_dir):
    first = login("alice", "alice-password-1")
    session_list = first.url
    pages = [first] + [first.context.new_page() for _ in range(TABS - 1)]
    sessions = []
    for number, page in enumerate(pages):
        if page is not first:
            page.goto(session_list)
        sessions.append(new_session(page, f"Tab {number}"))

    for page in pages:
        send(page, "tell me a story")
    turns = [last_turn(session_id) for session_id in sessions]
    texts = [
        wait_for_assistant_text(page, turn.pk, longer_than=20)
        for page, turn in zip(pages, turns, strict=True)
    ]

    # Every tab shows its story streaming while none of them has finished.
    assert all(Turn.objects.get(pk=t.pk).status == TurnStatus.RUNNING for t in turns)
    stopped_page, stopped_turn = pages[3], turns[3]
    stopped_page.locator("#stop").click()
    expect(chip(stopped_page, stopped_turn.pk)).to_have_attribute("data-status", "stopped")
    expect(interrupt_notices(stopped_page, stopped_turn.pk)).to_have_count(1)
    stopped_page.screenshot(path=output_dir / "stopped-tab.png", full_page=True)

    for page, turn, text in zip(pages, turns, texts, strict=True):
        if turn is stopped_turn:
            continue
        more = wait_for_assistant_text(page, turn.pk, longer_than=len(text) + 40)
        assert more.startswith(text)
        assert Turn.objects.get(pk=turn.pk).status == TurnStatus.RUNNING
        expect(interrupt_notices(page, turn.pk)).to_have_count(0)
    pages[0].screenshot(path=output_dir / "still-streaming-tab.png", full_page=True)
