"""A user presses Stop while the answer streams: "Stopping…", then a grey "Stopped" chip, the
partial text kept, and exactly one interrupt notice, even after more clicks and a reload."""

import pytest
from playwright.sync_api import expect

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app.demo_model import story_text
from tests.e2e.browser import (
    assistant_bubbles,
    chip,
    interrupt_notices,
    last_turn,
    new_session,
    seen,
    send,
    wait_for_assistant_text,
    wait_live,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]

GREY_CHIP = "rgb(234, 238, 242)"


def test_it_stops_a_streaming_answer_with_one_notice(login, user, output_dir):
    page = login("alice", "alice-password-1")
    session_id = new_session(page, "Stop mid-stream")
    send(page, "tell me a story")
    turn = last_turn(session_id)
    stop = page.locator("#stop")

    wait_for_assistant_text(page, turn.pk, longer_than=80)
    expect(stop).to_be_enabled()
    stop.dblclick()

    expect(chip(page, turn.pk)).to_have_attribute("data-status", "stopped")
    turn.refresh_from_db()
    assert turn.status == TurnStatus.STOPPED
    partial = turn.events.get(kind=EventKind.ASSISTANT_MESSAGE).data["text"]
    assert partial and story_text().startswith(partial) and partial != story_text()

    # The button said "Stopping…" before the turn was stopped, and nothing else in between.
    stop_texts = seen(page)["stop"]
    assert stop_texts.index("Stopping…") > stop_texts.index("Stop")
    assert stop_texts[-1] == "Stop"
    assert f"{turn.pk}:stopped" in seen(page)["chips"]
    expect(stop).to_be_disabled()
    expect(stop).to_have_text("Stop")

    expect(chip(page, turn.pk)).to_have_text("Stopped")
    expect(chip(page, turn.pk).locator(".stop-icon")).to_be_visible()
    assert chip(page, turn.pk).evaluate("c => getComputedStyle(c).backgroundColor") == GREY_CHIP
    expect(assistant_bubbles(page, turn.pk)).to_have_text(partial)
    expect(interrupt_notices(page, turn.pk)).to_have_count(1)
    expect(interrupt_notices(page, turn.pk)).to_have_text("Stopped by the user.")
    expect(page.locator(".notice.error")).to_have_count(0)
    page.screenshot(path=output_dir / "stopped.png", full_page=True)

    # A click after the end is harmless: the server answers with the final status.
    answer = page.evaluate(
        """async (turn) => {
            const token = document.querySelector("input[name=csrfmiddlewaretoken]").value;
            const response = await fetch(document.querySelector("#chat").dataset.cancelUrl, {
                method: "POST",
                headers: {"Content-Type": "application/json", "X-CSRFToken": token},
                body: JSON.stringify({turn}),
            });
            return [response.status, await response.json()];
        }""",
        turn.pk,
    )
    assert answer == [200, {"turn": turn.pk, "status": "stopped"}]

    page.reload()
    wait_live(page)
    expect(chip(page, turn.pk)).to_have_attribute("data-status", "stopped")
    expect(interrupt_notices(page, turn.pk)).to_have_count(1)
    expect(assistant_bubbles(page, turn.pk)).to_have_text(partial)
    assert turn.events.filter(kind=EventKind.INTERRUPT).count() == 1
