"""After its websocket drops, the page reconnects by itself and catches up from where it was:
what happened while it was away (more text, the stop, the notice) shows once, with no gap."""

import re

import pytest
from playwright.sync_api import expect

from agentproj.vocabulary import EventKind, TurnStatus
from tests.conftest import wait_for
from tests.e2e.browser import (
    api_post,
    assistant_bubbles,
    chip,
    interrupt_notices,
    last_turn,
    new_session,
    send,
    wait_for_assistant_text,
    words,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]


def test_it_reconnects_and_catches_up_after_a_drop(login, user):
    page = login("alice", "alice-password-1")
    sockets = []
    network = {"up": True}

    def route(ws):
        # While the "network" is down every reconnection attempt is dropped at once.
        if not network["up"]:
            ws.close()
            return
        ws.connect_to_server()
        sockets.append(ws)

    # The session's own socket (the sidebar's list of sessions has one of its own).
    page.route_web_socket(re.compile(r"/ws/sessions/[0-9a-f-]{36}/"), route)
    session_id = new_session(page, "Reconnect")
    send(page, "tell me a story")
    turn = last_turn(session_id)
    before = wait_for_assistant_text(page, turn.pk, longer_than=60)

    network["up"] = False
    sockets[-1].close()
    expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
    # While the page is away the turn goes on, then is stopped elsewhere.
    wait_for(lambda: len(turn.events.get(kind=EventKind.ASSISTANT_MESSAGE).data["text"]) > 200)
    status, _ = api_post(page, f"/api/sessions/{session_id}/cancel/", {"turn": turn.pk})
    assert status in (200, 202)
    wait_for(lambda: last_turn(session_id).status == TurnStatus.STOPPED, timeout=30)
    final = turn.events.get(kind=EventKind.ASSISTANT_MESSAGE).data["text"]
    assert words(final).startswith(before) and len(words(final)) > len(before)

    network["up"] = True
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    assert len(sockets) == 2
    expect(chip(page, turn.pk)).to_have_attribute("data-status", "stopped")
    expect(assistant_bubbles(page, turn.pk)).to_have_text(final)
    expect(page.locator(".msg.assistant")).to_have_count(1)
    expect(page.locator(".msg.user")).to_have_count(1)
    expect(interrupt_notices(page, turn.pk)).to_have_count(1)
    expect(page.locator("#stop")).to_be_disabled()
