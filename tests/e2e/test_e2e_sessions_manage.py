"""Managing sessions in the browser: search the list, rename from the list and from the session
page, watch a session's status change on an open list, and delete a session whose turn is still
streaming, with a confirmation first."""

import re

import pytest
from playwright.sync_api import expect

from sessions_app.models import AgentSession
from tests.e2e.browser import (
    interrupt_notices,
    last_turn,
    new_session,
    send,
    wait_for_assistant_text,
    wait_live,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]


def list_url(page) -> str:
    return re.match(r"https?://[^/]+", page.url).group(0) + "/sessions/"


def row(page, session_id: str):
    return page.locator(f"#session-{session_id}")


def test_it_searches_renames_and_shows_status_live_on_the_list(login, user, output_dir):
    tab = login("alice", "alice-password-1")
    lisbon = new_session(tab, "Trip to Lisbon")
    tab.goto(list_url(tab))
    taxes = new_session(tab, "Tax return")
    tab.goto(list_url(tab))

    tab.fill("#search", "LISBON")
    tab.keyboard.press("Enter")
    expect(row(tab, lisbon)).to_be_visible()
    expect(row(tab, taxes)).to_have_count(0)
    tab.get_by_role("link", name="Show all").click()
    expect(row(tab, taxes)).to_be_visible()

    # Another list open in a second tab follows the rename made in this one.
    watcher = tab.context.new_page()
    watcher.goto(list_url(tab))
    row(tab, taxes).get_by_text("Rename").click()
    field = row(tab, taxes).get_by_label("New title for Tax return")
    field.fill("Taxes 2026")
    field.press("Enter")
    expect(row(tab, taxes).locator("a").first).to_have_text("Taxes 2026")
    expect(row(watcher, taxes).locator("a").first).to_have_text("Taxes 2026")
    assert AgentSession.objects.get(pk=taxes).title == "Taxes 2026"

    # The list's status chip follows a turn run from the session's page.
    chip = row(watcher, lisbon).locator(".chip")
    expect(chip).to_have_text("Idle")
    tab.goto(f"{list_url(tab)}{lisbon}/")
    wait_live(tab)
    send(tab, "tell me a story")
    expect(chip).to_have_text("Running")
    watcher.screenshot(path=output_dir / "running-on-the-list.png", full_page=True)
    tab.locator("#stop").click()
    expect(chip).to_have_text("Idle")

    # A session started in the other tab appears at the top of the open list.
    tab.goto(list_url(tab))
    started = new_session(tab, "Started elsewhere")
    expect(watcher.locator("#sessions > li").first).to_have_id(f"session-{started}")
    expect(row(watcher, started).locator("a").first).to_have_text("Started elsewhere")


def test_it_names_and_renames_a_session_on_its_page_live(login, user, output_dir):
    tab = login("alice", "alice-password-1")
    tab.click("#new-session")
    tab.wait_for_url(re.compile(r"/sessions/[0-9a-f-]{36}/$"))
    wait_live(tab)
    # A new chat is called so until its first message names it, and one types at once.
    expect(tab.locator("#session-title")).to_have_text("New chat")
    expect(tab.locator("#message")).to_be_focused()
    other = tab.context.new_page()
    other.goto(tab.url)
    wait_live(other)
    expect(other.locator("#session-title")).to_have_text("New chat")

    send(tab, "What time is it?\nin Lisbon")
    for page in (tab, other):
        expect(page.locator("#session-title")).to_have_text("What time is it?")

    tab.get_by_text("Rename", exact=True).click()
    tab.fill("#rename-title", "Clocks")
    tab.press("#rename-title", "Enter")
    for page in (tab, other):
        expect(page.locator("#session-title")).to_have_text("Clocks")
    expect(other).to_have_title("Clocks · agentproj")
    # Renamed without leaving the page: the conversation is still there.
    expect(tab.locator(".msg.user")).to_have_count(1)
    tab.screenshot(path=output_dir / "renamed.png", full_page=True)


def test_it_deletes_a_streaming_session_after_confirmation(login, user, output_dir):
    tab = login("alice", "alice-password-1")
    session_id = new_session(tab, "Long story")
    watcher = tab.context.new_page()
    watcher.goto(tab.url)
    wait_live(watcher)
    send(tab, "tell me a long story")
    turn = last_turn(session_id)
    wait_for_assistant_text(watcher, turn.pk, longer_than=40)

    tab.locator("#delete").click()
    dialog = tab.locator("#delete-dialog")
    expect(dialog).to_be_visible()
    # Escape keeps the session: nothing happens without a confirmation.
    tab.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert AgentSession.objects.filter(pk=session_id).exists()

    tab.locator("#delete").click()
    expect(dialog).to_be_visible()
    # By keyboard: the safe choice has the focus, the destructive one is a Shift+Tab away.
    expect(tab.get_by_role("button", name="Keep it")).to_be_focused()
    tab.keyboard.press("Shift+Tab")
    expect(tab.get_by_role("button", name="Delete session")).to_be_focused()
    tab.keyboard.press("Enter")

    tab.wait_for_url(re.compile(r"/sessions/$"))
    expect(tab.locator(f"#session-{session_id}")).to_have_count(0)
    # The other tab saw the turn stopped, with its one notice, and is told the session is gone.
    expect(interrupt_notices(watcher, turn.pk)).to_have_count(1)
    expect(watcher.locator("#head-notice")).to_contain_text("This session was deleted.")
    expect(watcher.locator("#rename")).to_be_hidden()
    expect(watcher.locator("#delete")).to_be_hidden()
    watcher.screenshot(path=output_dir / "deleted-in-other-tab.png", full_page=True)
    assert not AgentSession.objects.filter(pk=session_id).exists()


def test_a_deletion_is_confirmed_in_red_and_told_after(login, user):
    page = login("alice", "alice-password-1")
    session_id = new_session(page, "Short lived")

    page.locator("#delete").click()
    confirm = page.locator("#confirm-delete")
    expect(confirm).to_be_visible()
    background = confirm.evaluate("(button) => getComputedStyle(button).backgroundColor")
    red, green, blue = (int(n) for n in re.findall(r"\d+", background)[:3])
    assert red > 150 and red > 2 * green and red > 2 * blue, background
    confirm.click()

    page.wait_for_url(re.compile(r"/sessions/$"))
    expect(page.locator(".messages")).to_have_text("Deleted “Short lived”.")
    assert not AgentSession.objects.filter(pk=session_id).exists()
    # Told once: the next page does not repeat it.
    page.reload()
    expect(page.locator(".messages")).to_have_count(0)
