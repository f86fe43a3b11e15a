"""The composer as in familiar chat apps: Enter sends, Shift+Enter adds a line, Esc stops; after a
stop, "Edit and resend" starts a new turn and "Regenerate" a new version of the stopped one,
which stays one click away; and the timeline is on the page even with JavaScript off."""

import pytest
from playwright.sync_api import expect

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app.models import TimelineEvent, Turn
from tests.e2e.browser import (
    chip,
    interrupt_notices,
    last_turn,
    new_session,
    turn_locator,
    wait_for_assistant_text,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]


def focused_id(page) -> str:
    return page.evaluate("() => document.activeElement && document.activeElement.id")


def turn_count(session_id: str) -> int:
    return Turn.objects.filter(session_id=session_id, parent__isnull=True).count()


def send_with_enter(page, text: str) -> None:
    page.fill("#message", text)
    page.keyboard.press("Enter")
    # The box empties once the server accepted the message.
    expect(page.locator("#message")).to_have_value("")


def stop_with_escape(page, turn_id: int) -> None:
    wait_for_assistant_text(page, turn_id, longer_than=40)
    page.keyboard.press("Escape")
    expect(chip(page, turn_id)).to_have_attribute("data-status", "stopped")
    expect(interrupt_notices(page, turn_id)).to_have_count(1)


def test_enter_sends_shift_enter_adds_a_line_and_escape_stops(login, user):
    page = login("alice", "alice-password-1")
    session_id = new_session(page, "Keys")
    box = page.locator("#message")

    box.click()
    page.keyboard.type("first line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    expect(box).to_have_value("first line\nsecond line")
    assert turn_count(session_id) == 0

    page.keyboard.press("Enter")
    expect(box).to_have_value("")
    turn = last_turn(session_id)
    assert turn.user_message == "first line\nsecond line"
    expect(turn_locator(page, turn.pk).locator(".msg.user .bubble")).to_have_text(
        "first line\nsecond line"
    )
    # Focus stays in the composer, ready for the next message.
    assert focused_id(page) == "message"
    expect(chip(page, turn.pk)).to_have_attribute("data-status", "completed")
    expect(turn_locator(page, turn.pk).locator(".turn-usage")).to_contain_text("tokens")

    page.keyboard.type("tell me a story")
    page.keyboard.press("Enter")
    expect(box).to_have_value("")
    story = last_turn(session_id)
    assert story.pk != turn.pk
    stop_with_escape(page, story.pk)
    story.refresh_from_db()
    assert story.status == TurnStatus.STOPPED

    # Stop is reachable by keyboard too: from the composer, Tab leads to it.
    page.keyboard.type("tell me a story")
    page.keyboard.press("Enter")
    expect(box).to_have_value("")
    third = last_turn(session_id)
    wait_for_assistant_text(page, third.pk, longer_than=20)
    for _ in range(6):
        if focused_id(page) == "stop":
            break
        page.keyboard.press("Tab")
    assert focused_id(page) == "stop"
    page.keyboard.press("Enter")
    expect(chip(page, third.pk)).to_have_attribute("data-status", "stopped")
    expect(interrupt_notices(page, third.pk)).to_have_count(1)
    # The disabled Stop hands the keyboard back to the composer.
    assert focused_id(page) == "message"


def test_edit_and_resend_and_regenerate_start_new_turns_and_versions(login, user, output_dir):
    page = login("alice", "alice-password-1")
    session_id = new_session(page, "Again")
    send_with_enter(page, "tell me a story")
    first = last_turn(session_id)
    stop_with_escape(page, first.pk)

    actions = turn_locator(page, first.pk).locator(".turn-actions")
    expect(actions).to_be_visible()
    actions.get_by_role("button", name="Regenerate").click()
    expect(page.locator(".timeline > .turn")).to_have_count(2)
    # The keyboard is in the composer, not lost with the button that went.
    expect(page.locator("#message")).to_be_focused()
    second = last_turn(session_id)
    assert second.pk != first.pk and second.user_message == "tell me a story"
    assert second.version_of_id == first.pk
    # The stopped answer is the turn's first version, hidden and kept as it was.
    expect(turn_locator(page, first.pk)).to_be_hidden()
    expect(actions).to_be_hidden()
    expect(interrupt_notices(page, first.pk)).to_have_count(1)
    stop_with_escape(page, second.pk)
    page.screenshot(path=output_dir / "regenerated-and-stopped.png", full_page=True)

    turn_locator(page, second.pk).get_by_role("button", name="Edit and resend").click()
    box = page.locator("#message")
    expect(box).to_have_value("tell me a story")
    assert focused_id(page) == "message"
    send_with_enter(page, "hello there")
    expect(page.locator(".timeline > .turn")).to_have_count(3)
    third = last_turn(session_id)
    assert third.user_message == "hello there"
    expect(chip(page, third.pk)).to_have_attribute("data-status", "completed")
    # A completed answer may be regenerated; there is nothing to edit and resend.
    third_actions = turn_locator(page, third.pk).locator(".turn-actions")
    expect(third_actions.get_by_role("button")).to_have_text(["Regenerate"])

    statuses = list(
        Turn.objects.filter(session_id=session_id).order_by("index").values_list("status")
    )
    assert statuses == [(TurnStatus.STOPPED,), (TurnStatus.STOPPED,), (TurnStatus.COMPLETED,)]
    interrupts = TimelineEvent.objects.filter(session_id=session_id, kind=EventKind.INTERRUPT)
    assert interrupts.count() == 2


def test_the_timeline_shows_without_javascript(login, browser, server, user):
    page = login("alice", "alice-password-1")
    session_id = new_session(page, "No script")
    send_with_enter(page, "tell me a story")
    turn = last_turn(session_id)
    stop_with_escape(page, turn.pk)
    text = turn.events.get(kind=EventKind.ASSISTANT_MESSAGE).data["text"]

    context = browser.new_context(
        java_script_enabled=False, storage_state=page.context.storage_state()
    )
    try:
        plain = context.new_page()
        plain.goto(f"{server}/sessions/{session_id}/")
        expect(plain.locator(".msg.user .bubble")).to_have_text("tell me a story")
        expect(plain.locator(".msg.assistant .bubble")).to_have_text(text)
        expect(interrupt_notices(plain, turn.pk)).to_have_count(1)
        expect(chip(plain, turn.pk)).to_have_text("Stopped")
        # Nothing but the server drew it: the socket never connected.
        expect(plain.locator("#connection")).to_have_attribute("data-state", "connecting")
    finally:
        context.close()
