"""Regenerate keeps the answers as versions of one turn: the new one shows as "2/2", the
previous-version button brings back the first answer ("1/2"), and a reload keeps the choice."""

import pytest
from playwright.sync_api import expect

from agentproj.vocabulary import TurnStatus
from sessions_app.core import selectors
from tests.conftest import wait_for
from tests.e2e.browser import (
    assistant_bubbles,
    chip,
    last_turn,
    new_session,
    send,
    turn_locator,
    wait_live,
    words,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]


def version_count(page, turn_id: int):
    return turn_locator(page, turn_id).locator(".turn-foot .version-count")


def test_regenerate_keeps_both_answers_one_click_apart(login, user, output_dir):
    page = login("alice", "alice-password-1")
    session_id = new_session(page, "Versions")
    send(page, "hello there")
    first = last_turn(session_id)
    expect(chip(page, first.pk)).to_have_attribute("data-status", "completed")

    turn_locator(page, first.pk).get_by_role("button", name="Regenerate").click()

    second = wait_for(lambda: (turn := last_turn(session_id)).pk != first.pk and turn)
    assert (second.version_of_id, second.user_message) == (first.pk, "hello there")
    expect(chip(page, second.pk)).to_have_attribute("data-status", "completed")
    expect(version_count(page, second.pk)).to_have_text("2/2")
    expect(turn_locator(page, first.pk)).to_be_hidden()
    expect(page.locator("#message")).to_be_focused()
    page.screenshot(path=output_dir / "version-2-of-2.png", full_page=True)

    turn_locator(page, second.pk).get_by_role("button", name="Previous version").click()

    expect(turn_locator(page, second.pk)).to_be_hidden()
    expect(turn_locator(page, first.pk)).to_be_visible()
    expect(version_count(page, first.pk)).to_have_text("1/2")
    answer = words(selectors.turn_answer(first.pk))
    expect(assistant_bubbles(page, first.pk)).to_have_text(answer)
    expect(
        turn_locator(page, first.pk).get_by_role("button", name="Previous version")
    ).to_be_disabled()
    first.refresh_from_db()
    assert first.shown and first.status == TurnStatus.COMPLETED

    page.reload()
    wait_live(page)

    expect(turn_locator(page, first.pk)).to_be_visible()
    expect(turn_locator(page, second.pk)).to_be_hidden()
    expect(version_count(page, first.pk)).to_have_text("1/2")
    page.screenshot(path=output_dir / "version-1-of-2-after-reload.png", full_page=True)
    turn_locator(page, first.pk).get_by_role("button", name="Next version").click()
    expect(turn_locator(page, second.pk)).to_be_visible()
    expect(version_count(page, second.pk)).to_have_text("2/2")


def test_a_sent_message_is_edited_in_place(login, user):
    page = login("alice", "alice-password-1")
    session_id = new_session(page, "Edit in place")
    send(page, "hello there")
    first = last_turn(session_id)
    expect(chip(page, first.pk)).to_have_attribute("data-status", "completed")
    message = turn_locator(page, first.pk).locator(".msg.user")

    message.get_by_role("button", name="Edit this message").click()
    box = message.locator(".message-editor textarea")
    expect(box).to_be_focused()
    expect(box).to_have_value("hello there")
    box.fill("hello again")
    message.get_by_role("button", name="Save and send").click()

    edited = wait_for(lambda: (turn := last_turn(session_id)).pk != first.pk and turn)
    assert (edited.version_of_id, edited.user_message) == (first.pk, "hello again")
    expect(turn_locator(page, edited.pk).locator(".msg.user .bubble")).to_have_text("hello again")
    expect(chip(page, edited.pk)).to_have_attribute("data-status", "completed")
    expect(version_count(page, edited.pk)).to_have_text("2/2")
    expect(turn_locator(page, first.pk)).to_be_hidden()

    turn_locator(page, edited.pk).get_by_role("button", name="Previous version").click()

    expect(turn_locator(page, first.pk).locator(".msg.user .bubble")).to_have_text("hello there")
    expect(turn_locator(page, first.pk).locator(".message-editor")).to_have_count(0)
