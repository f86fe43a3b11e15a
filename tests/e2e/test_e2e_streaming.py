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


# Characters beyond the Basic Multilingual Plane count once on the server and twice in a
# JavaScript string: the page must still take every delta and checkpoint where its text ends.
EMOJI_MESSAGE = "\n\n".join(
    " ".join(f"{emoji} word{n}" for n in range(12)) for emoji in ("🙂", "🚀", "🎉", "🌍")
)


def test_text_with_emoji_streams_on_without_a_gap(login, user, output_dir):
    page = login("alice", "alice-password-1")
    session_id = new_session(page, "Emoji")

    send(page, EMOJI_MESSAGE)
    turn = last_turn(session_id)
    expect(chip(page, turn.pk)).to_have_attribute("data-status", "completed")

    final = turn.events.get(kind=EventKind.ASSISTANT_MESSAGE).data["text"]
    expect(assistant_bubbles(page, turn.pk).locator("p")).to_have_count(4)
    # Past the first emoji the text still grew piece by piece (deltas and checkpoints taken),
    # never going back or skipping: had the page lost count, it would have stood still there
    # until the final message.
    texts = [t for t in seen(page)["assistant"] if "word0" in t]
    assert texts[-1] == words(final)
    for shorter, longer in pairwise(texts):
        assert longer.startswith(shorter)
    partial = [t for t in texts[:-1] if "🚀" in t]
    assert len(partial) >= 3, texts
    page.screenshot(path=output_dir / "emoji.png", full_page=True)
