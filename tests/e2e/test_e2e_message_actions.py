"""What a reader does with the messages and tool uses on the chat page: copies an answer with
one click, sees when each message was written (relative, exact on hover, a ``<time>`` with the
machine-readable moment), and opens a tool use's one line to its arguments and result."""

import re
from datetime import datetime

import pytest
from playwright.sync_api import expect

from agentproj.vocabulary import EventKind
from tests.e2e.browser import assistant_bubbles, chip, last_turn, new_session, send, turn_locator

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]


def test_an_answer_is_copied_with_one_click(login, user, server):
    page = login("alice", "alice-password-1")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
    session_id = new_session(page, "Copy")
    send(page, "hello there")
    turn = last_turn(session_id)
    expect(chip(page, turn.pk)).to_have_attribute("data-status", "completed")

    answer = turn_locator(page, turn.pk).locator(".msg.assistant")
    answer.locator("button.copy-answer").click()

    expect(answer.locator("button.copy-answer")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.strip() == assistant_bubbles(page, turn.pk).inner_text().strip()
    assert copied.strip()


def test_each_message_says_when_it_was_written(login, user):
    page = login("alice", "alice-password-1")
    session_id = new_session(page, "Times")
    send(page, "hello there")
    turn = last_turn(session_id)
    expect(chip(page, turn.pk)).to_have_attribute("data-status", "completed")
    page.reload()

    times = turn_locator(page, turn.pk).locator(".msg time.msg-time")
    expect(times).to_have_count(2)
    written = turn.events.get(kind=EventKind.USER_MESSAGE).created_at
    user_time = times.first
    moment = datetime.fromisoformat(user_time.get_attribute("datetime"))
    assert abs((moment - written).total_seconds()) < 1
    # Just written: relative on screen, the exact time on hover.
    expect(user_time).to_have_text(re.compile(r"now|minute", re.IGNORECASE))
    assert re.search(r"\d{1,2}:\d{2}", user_time.get_attribute("title"))


def test_a_tool_use_is_one_line_that_opens_to_its_arguments_and_result(login, user):
    page = login("alice", "alice-password-1")
    session_id = new_session(page, "Tool line")
    send(page, "what time is it?")
    turn = last_turn(session_id)
    expect(chip(page, turn.pk)).to_have_attribute("data-status", "completed")

    use = turn_locator(page, turn.pk).locator(".tool-use")
    expect(use).to_have_count(1)
    toggle = use.locator("button.tool-toggle")
    expect(toggle).to_have_text(re.compile(r"Used get_time · \d+\.\d s"))
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(use.locator(".tool.result")).to_be_hidden()

    toggle.click()

    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(use.locator("pre.tool-arguments")).to_be_visible()
    expect(use.locator(".tool.result")).to_be_visible()
    expect(use.locator(".tool.result")).to_contain_text("UTC")
    toggle.click()
    expect(use.locator(".tool.result")).to_be_hidden()
