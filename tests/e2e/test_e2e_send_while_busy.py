"""Sending while a turn is active: the box stays usable and the page offers "Stop and send" and
"Queue"; a refusal from the server reads as a sentence, not a status code."""

import re

import pytest
from playwright.sync_api import expect

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app.models import TimelineEvent, Turn
from tests.e2e.browser import (
    api_post,
    chip,
    interrupt_notices,
    last_turn,
    new_session,
    send,
    wait_for_assistant_text,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]


def test_it_queues_or_interrupts_while_a_turn_is_active(login, user, output_dir):
    page = login("alice", "alice-password-1")
    session_id = new_session(page, "Busy")
    send(page, "tell me a story")
    story = last_turn(session_id)
    wait_for_assistant_text(page, story.pk, longer_than=40)

    expect(page.locator("#send")).to_be_hidden()
    expect(page.locator("#send-interrupt")).to_be_visible()
    expect(page.locator("#send-queue")).to_be_visible()
    expect(page.locator("#message")).to_be_editable()

    send(page, "hello", button="#send-queue")
    queued = last_turn(session_id)
    assert queued.pk != story.pk and queued.status == TurnStatus.PENDING
    expect(chip(page, queued.pk)).to_have_text("Waiting in line")
    story.refresh_from_db()
    assert story.status == TurnStatus.RUNNING

    send(page, "hi again", button="#send-interrupt")
    latest = last_turn(session_id)
    for turn in (queued, latest):
        expect(chip(page, turn.pk)).to_have_attribute("data-status", "completed")
    expect(chip(page, story.pk)).to_have_attribute("data-status", "stopped")
    expect(interrupt_notices(page, story.pk)).to_have_count(1)
    expect(page.locator(".notice.interrupt")).to_have_count(1)
    expect(page.locator("#send")).to_be_visible()
    expect(page.locator("#stop")).to_be_disabled()
    page.screenshot(path=output_dir / "after-interrupt.png", full_page=True)

    statuses = dict(Turn.objects.filter(session_id=session_id).values_list("index", "status"))
    assert statuses == {1: TurnStatus.STOPPED, 2: TurnStatus.COMPLETED, 3: TurnStatus.COMPLETED}
    interrupts = TimelineEvent.objects.filter(session_id=session_id, kind=EventKind.INTERRUPT)
    assert interrupts.count() == 1


def test_it_explains_a_refused_message_in_words(login, user):
    page = login("alice", "alice-password-1")
    # The page's socket goes nowhere, so it cannot know that another client started a turn.
    page.route_web_socket(re.compile(r"/ws/sessions/"), lambda ws: None)
    session_id = new_session_without_live(page)
    status, _ = api_post(page, f"/api/sessions/{session_id}/turns/", {"message": "hello"})
    assert status == 202

    page.fill("#message", "me too")
    page.click("#send")

    expect(page.locator("#notice")).to_have_text(
        "A turn is still active. Use “Stop and send” or “Queue”."
    )
    expect(page.locator("#message")).to_have_value("me too")
    assert Turn.objects.filter(session_id=session_id).count() == 1


def new_session_without_live(page) -> str:
    page.fill("input[name=title]", "Refused")
    page.click("#new-session")
    page.wait_for_url(re.compile(r"/sessions/[0-9a-f-]{36}/$"))
    return page.url.rstrip("/").rsplit("/", 1)[-1]
