"""A turn that fails shows red, with the user-facing reason and nothing technical."""

import pytest
from playwright.sync_api import expect

from agentproj.vocabulary import ErrorCode, EventKind, TurnStatus
from tests.e2e.browser import chip, interrupt_notices, last_turn, new_session, send

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True, databases="__all__"),
    # Nothing listens on port 9 of loopback: every model call fails to connect.
    pytest.mark.serve_env(
        LLM_BASE_URL="http://127.0.0.1:9/v1", LLM_MAX_RETRIES="1", LLM_RETRY_BASE_DELAY="0.05"
    ),
]

RED_CHIP = "rgb(255, 235, 233)"


def test_it_shows_a_failed_turn_in_red_with_its_reason(login, user, output_dir):
    page = login("alice", "alice-password-1")
    session_id = new_session(page, "Broken model")
    send(page, "hello")
    turn = last_turn(session_id)

    expect(chip(page, turn.pk)).to_have_attribute("data-status", "failed")
    reason = turn.events.get(kind=EventKind.ERROR).data["text"]
    assert reason
    expect(chip(page, turn.pk)).to_have_text(f"Failed: {reason}")
    assert chip(page, turn.pk).evaluate("c => getComputedStyle(c).backgroundColor") == RED_CHIP
    expect(page.locator(".notice.error")).to_have_text(reason)
    expect(interrupt_notices(page, turn.pk)).to_have_count(0)
    expect(page.locator("#stop")).to_be_disabled()
    page_text = page.locator("#timeline").inner_text()
    for technical in ("Traceback", "httpx", "ConnectError", "127.0.0.1:9"):
        assert technical not in page_text
    page.screenshot(path=output_dir / "failed.png", full_page=True)

    turn.refresh_from_db()
    assert turn.status == TurnStatus.FAILED
    assert turn.error_code == ErrorCode.LLM_ERROR
