"""A user sends a message and watches the answer arrive token by token, then complete."""

from itertools import pairwise

import pytest
from playwright.sync_api import expect

from agentproj.vocabulary import EventKind, TurnStatus
from tests.e2e.browser import (
    assistant_bubbles,
    chip,
    last_turn,
    new_session,
    seen,
    send,
    turn_locator,
    words,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]


def test_it_streams_the_answer_token_by_token(login, user, output_dir):
    page = login("alice", "alice-password-1")
    session_id = new_session(page, "Streaming")
    expect(page.locator("#stop")).to_be_disabled()

    send(page, "hello there")
    turn = last_turn(session_id)
    expect(turn_locator(page, turn.pk).locator(".msg.user .bubble")).to_have_text("hello there")
    expect(chip(page, turn.pk)).to_have_attribute("data-status", "completed")

    turn.refresh_from_db()
    assert turn.status == TurnStatus.COMPLETED
    final = turn.events.get(kind=EventKind.ASSISTANT_MESSAGE).data["text"]
    expect(assistant_bubbles(page, turn.pk)).to_have_count(1)
    expect(assistant_bubbles(page, turn.pk)).to_have_text(final)
    expect(page.locator(".msg.assistant.streaming")).to_have_count(0)
    expect(chip(page, turn.pk)).to_have_text("Completed")
    expect(page.locator("#stop")).to_be_disabled()
    expect(page.locator("#send")).to_be_visible()

    # The text grew through several partial states, each the beginning of the next.
    texts = [t for t in seen(page)["assistant"] if t]
    assert len(texts) >= 3, texts
    assert texts[-1] == words(final)
    for shorter, longer in pairwise(texts):
        assert longer.startswith(shorter)
    page.screenshot(path=output_dir / "completed.png", full_page=True)
