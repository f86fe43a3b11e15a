"""Controls that agree and a keyboard that never gets lost: while a turn runs Enter does what
the highlighted button says (queue), a message waiting in line can be withdrawn and never runs,
the shortcuts are listed and work (new chat, the message box), and after approving the
keyboard is in the composer."""

import pytest
from playwright.sync_api import expect

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app.models import AgentSession
from tests.e2e.browser import (
    chip,
    last_turn,
    new_session,
    send,
    turn_locator,
    wait_for_assistant_text,
    wait_live,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]


def test_enter_queues_as_the_highlighted_button_says_and_a_queued_message_is_withdrawn(
    login, user, output_dir
):
    page = login("alice", "alice-password-1")
    session_id = new_session(page, "Line")
    send(page, "tell me a story")
    story = last_turn(session_id)
    wait_for_assistant_text(page, story.pk, longer_than=40)

    # The one highlighted button is Queue, and Enter queues.
    highlighted = page.locator("#composer .actions button.primary:visible")
    expect(highlighted).to_have_count(1)
    expect(highlighted).to_have_text("Queue")
    page.fill("#message", "hello")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('#message').value === ''")
    queued = last_turn(session_id)
    assert queued.pk != story.pk and queued.status == TurnStatus.PENDING
    expect(chip(page, queued.pk)).to_have_text("Waiting in line")
    page.screenshot(path=output_dir / "queued.png", full_page=True)

    turn_locator(page, queued.pk).get_by_role("button", name="Cancel").click()

    expect(chip(page, queued.pk)).to_have_attribute("data-status", "stopped")
    expect(turn_locator(page, queued.pk).get_by_role("button", name="Cancel")).to_have_count(0)
    expect(page.locator("#message")).to_be_focused()
    # The story goes on; the withdrawn message never runs, even after the story ends.
    story.refresh_from_db()
    assert story.status == TurnStatus.RUNNING
    page.locator("#stop").click()
    expect(chip(page, story.pk)).to_have_attribute("data-status", "stopped")
    queued.refresh_from_db()
    assert queued.status == TurnStatus.STOPPED and queued.started_at is None
    assert not queued.events.filter(kind=EventKind.ASSISTANT_MESSAGE).exists()


def test_the_shortcuts_are_listed_and_work(login, user, output_dir):
    page = login("alice", "alice-password-1")
    first = new_session(page, "Shortcuts")
    # A new session opens with the message box focused.
    expect(page.locator("#message")).to_be_focused()

    page.locator("#shortcuts-open").focus()
    page.keyboard.press("?")
    dialog = page.locator("#shortcuts-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("New chat")
    page.screenshot(path=output_dir / "shortcuts.png", full_page=True)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.locator("#message")).to_be_focused()

    page.locator("#shortcuts-open").focus()
    page.keyboard.press("/")
    expect(page.locator("#message")).to_be_focused()
    expect(page.locator("#message")).to_have_value("")

    page.keyboard.press("Control+Shift+O")
    page.wait_for_url(lambda url: first not in url and url.rstrip("/").count("/") >= 4)
    wait_live(page)
    second = page.url.rstrip("/").rsplit("/", 1)[-1]
    assert second != first
    assert AgentSession.objects.filter(owner=user, pk=second).exists()
    expect(page.locator("#message")).to_be_focused()


def test_after_approving_the_keyboard_is_in_the_composer(login, approver):
    page = login("carol", "carol-password-1")
    session_id = new_session(page, "Approve by keyboard")
    send(page, "send an email to x@example.com")
    turn = last_turn(session_id)
    card = turn_locator(page, turn.pk).locator(".approval")
    expect(card.locator(".approval-state")).to_contain_text("Waiting for approval by")

    card.locator("button.approve").focus()
    page.keyboard.press("Enter")

    expect(chip(page, turn.pk)).to_have_attribute("data-status", "completed")
    expect(page.locator("#message")).to_be_focused()
