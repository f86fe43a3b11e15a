"""Conversation memory as a user meets it with the demo model: it remembers what a tool said in
an earlier turn, and when the session outgrows the context window the page says quietly that
the model no longer sees the oldest messages, and the answers go on."""

import pytest
from playwright.sync_api import expect

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app.runtime import transcript
from tests.e2e.browser import assistant_bubbles, chip, last_turn, new_session, send, turn_locator

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True, databases="__all__"),
    pytest.mark.serve_env(
        AGENT_CONTEXT_TOKENS="3000", AGENT_ANSWER_RESERVE_TOKENS="500", DEMO_LLM_TOKEN_DELAY="0.01"
    ),
]

LONG = "Please remember this. " * 60


def send_and_wait(page, session_id: str, text: str):
    send(page, text)
    turn = last_turn(session_id)
    expect(chip(page, turn.pk)).to_have_attribute("data-status", TurnStatus.COMPLETED)
    return turn


def test_it_remembers_the_tool_and_says_quietly_when_it_forgets(login, user, output_dir):
    page = login("alice", "alice-password-1")
    session_id = new_session(page, "Memory")

    timed = send_and_wait(page, session_id, "what time is it?")
    told = timed.events.get(kind=EventKind.TOOL_RESULT).data["result"]
    asked = send_and_wait(page, session_id, "what did the tool say?")
    expect(assistant_bubbles(page, asked.pk)).to_have_text(
        f"The last tool result I was given: {told}"
    )
    expect(page.locator(".notice.trimmed")).to_have_count(0)

    turns = [send_and_wait(page, session_id, f"{n}. {LONG}") for n in range(1, 5)]

    trimmed = [turn for turn in turns if turn.events.filter(kind=EventKind.CONTEXT_TRIMMED)]
    assert trimmed
    first = trimmed[0]
    notice = turn_locator(page, first.pk).locator(".notice.trimmed")
    expect(notice).to_have_text(transcript.TRIMMED_TEXT)
    # A quiet line: smaller than the messages, without a banner's background.
    assert notice.evaluate("n => parseFloat(getComputedStyle(n).fontSize)") < 14
    assert notice.evaluate("n => getComputedStyle(n).backgroundColor") == "rgba(0, 0, 0, 0)"
    expect(page.locator(".notice.trimmed")).to_have_count(len(trimmed))
    page.screenshot(path=output_dir / "trimmed.png", full_page=True)

    # The page built live and the page loaded fresh show the same.
    page.reload()
    expect(page.locator(".notice.trimmed")).to_have_count(len(trimmed))
    later = send_and_wait(page, session_id, "still there?")
    expect(assistant_bubbles(page, later.pk)).to_have_text(
        "You said: still there?. Ask me for a story, the time, or to send an email."
    )
