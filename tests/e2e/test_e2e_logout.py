"""Logging out in one tab ends the live view in the other: its socket is closed and the page says
so instead of reconnecting."""

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import new_session

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]


def test_it_stops_the_live_page_when_the_user_logs_out_elsewhere(login, user, output_dir):
    chat = login("alice", "alice-password-1")
    new_session(chat, "Logging out")
    other_tab = chat.context.new_page()
    other_tab.goto(chat.url)

    other_tab.click("header form button[type=submit]")
    other_tab.wait_for_url("**/accounts/login/")

    expect(chat.locator("#connection")).to_have_attribute("data-state", "ended")
    expect(chat.locator("#notice")).to_contain_text("You are logged out")
    chat.screenshot(path=output_dir / "after-logout.png", full_page=True)
