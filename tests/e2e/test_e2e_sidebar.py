"""The chat page's sessions sidebar in a browser: the user's sessions by last activity, kept live
(a session made elsewhere appears at the top, one whose turn starts moves there, one that waits
for approval says so), a filter by title, collapsed at desktop width and remembered, and a drawer
on a 420 px screen that the Sessions button opens and Esc closes."""

import re

import pytest
from playwright.sync_api import expect

from sessions_app.core import sessions
from tests.e2e.approvals import in_thread
from tests.e2e.browser import api_post, wait_live
from tests.e2e.test_e2e_accessibility import axe_problems, describe

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]

NARROW = {"width": 420, "height": 800}


def session_titled(user, title: str):
    return in_thread(lambda: sessions.session_create(owner=user, title=title))


def origin(page) -> str:
    return re.match(r"https?://[^/]+", page.url).group(0)


def open_session(page, session_id) -> None:
    page.goto(f"{origin(page)}/sessions/{session_id}/")
    wait_live(page)


def items(page):
    return page.locator("#sidebar-sessions > li")


def item(page, session_id):
    return page.locator(f"#sidebar-session-{session_id}")


def listed_ids(page) -> list[str]:
    return [i.get_attribute("data-session") for i in items(page).all()]


def test_it_lists_by_last_activity_and_keeps_the_list_live(login, user, approver, output_dir):
    page = login("alice", "alice-password-1")
    made = [session_titled(user, t) for t in ("Oldest", "Middle", "Newest")]
    oldest, middle, newest = (str(s.pk) for s in made)
    open_session(page, middle)

    assert listed_ids(page) == [newest, middle, oldest]
    expect(item(page, middle).locator("a")).to_have_attribute("aria-current", "page")
    expect(page.locator("#sidebar a[aria-current]")).to_have_count(1)

    # A session made in another tab or by the API appears at the top at once.
    status, created = api_post(page, "/api/sessions/", {"title": "Made elsewhere"})
    assert status == 201
    expect(items(page).first).to_have_id(f"sidebar-session-{created['id']}")
    expect(items(page).first).to_contain_text("Made elsewhere")

    # A message to the oldest session moves it to the top; its dot says that it waits.
    status, _ = api_post(
        page,
        f"/api/sessions/{oldest}/turns/",
        {"message": "send an email to bob@example.com saying hi"},
    )
    assert status == 202
    expect(items(page).first).to_have_id(f"sidebar-session-{oldest}")
    expect(item(page, oldest)).to_have_attribute("data-status", "waiting_for_approval")
    expect(item(page, oldest).locator("a")).to_have_accessible_name("Oldest (Waiting for approval)")
    page.screenshot(path=output_dir / "sidebar-live.png")

    # A message on this page moves its own session to the top, still marked current.
    status, _ = api_post(page, f"/api/sessions/{middle}/turns/", {"message": "What time is it?"})
    assert status == 202
    expect(items(page).first).to_have_id(f"sidebar-session-{middle}")
    expect(item(page, middle).locator("a")).to_have_attribute("aria-current", "page")
    expect(page.locator("#sidebar a[aria-current]")).to_have_count(1)
    # Its turn ends before the next step: its last events are activity too.
    expect(item(page, middle)).to_have_attribute("data-status", "idle")

    # Typing filters the list by title; clearing it shows them all again.
    page.fill("#sidebar-search", "ELSE")
    expect(items(page).locator("visible=true")).to_have_count(1)
    expect(items(page).locator("visible=true")).to_contain_text("Made elsewhere")
    page.fill("#sidebar-search", "nothing like it")
    expect(page.locator("#sidebar-none")).to_be_visible()
    page.fill("#sidebar-search", "")
    expect(items(page).locator("visible=true")).to_have_count(4)

    # New chat opens a new session, at the top of its own sidebar.
    page.click("#sidebar-new-chat")
    page.wait_for_url(re.compile(r"/sessions/[0-9a-f-]{36}/$"))
    wait_live(page)
    new_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    expect(items(page).first).to_have_id(f"sidebar-session-{new_id}")
    expect(items(page).first.locator("a")).to_have_attribute("aria-current", "page")


def test_it_collapses_at_desktop_width_and_remembers_it(login, user, output_dir):
    page = login("alice", "alice-password-1")
    session = session_titled(user, "Here")
    open_session(page, session.pk)
    toggle = page.locator("#sidebar-collapse")
    expect(page.locator("#sidebar-open")).to_be_hidden()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(item(page, session.pk)).to_be_visible()
    width_beside = page.locator("#chat").bounding_box()["width"]

    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(page.locator("#sidebar-body")).to_be_hidden()
    assert page.locator("#chat").bounding_box()["width"] > width_beside
    page.screenshot(path=output_dir / "collapsed.png")
    problems = axe_problems(page)
    assert problems == [], describe(problems)

    page.reload()
    wait_live(page)
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(page.locator("#sidebar-body")).to_be_hidden()

    toggle.click()
    expect(item(page, session.pk)).to_be_visible()
    page.reload()
    expect(item(page, session.pk)).to_be_visible()


def test_it_is_a_drawer_on_a_narrow_screen(login, user, output_dir):
    page = login("alice", "alice-password-1", viewport=NARROW)
    here = session_titled(user, "Here")
    there = session_titled(user, "There")
    open_session(page, here.pk)
    opener = page.locator("#sidebar-open")
    sidebar = page.locator("#sidebar")
    expect(sidebar).to_be_hidden()
    expect(opener).to_have_attribute("aria-expanded", "false")
    page.screenshot(path=output_dir / "drawer-closed.png")

    opener.click()
    expect(sidebar).to_be_visible()
    expect(opener).to_have_attribute("aria-expanded", "true")
    expect(item(page, here.pk).locator("a")).to_be_focused()
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.screenshot(path=output_dir / f"drawer-open-{scheme}.png")
        problems = axe_problems(page)
        assert problems == [], f"{scheme}:\n{describe(problems)}"

    page.keyboard.press("Escape")
    expect(sidebar).to_be_hidden()
    expect(opener).to_be_focused()

    # The page behind the open drawer is covered: a tap on it (here where Log out is) closes
    # the drawer and does nothing else.
    opener.click()
    expect(sidebar).to_be_visible()
    logout = page.get_by_role("button", name="Log out").bounding_box()
    page.mouse.click(logout["x"] + logout["width"] / 2, logout["y"] + logout["height"] / 2)
    expect(sidebar).to_be_hidden()
    expect(page).to_have_url(re.compile(rf"/sessions/{here.pk}/$"))
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    opener.focus()

    # From the keyboard: Enter opens it, and choosing a session goes there with it closed.
    page.keyboard.press("Enter")
    expect(sidebar).to_be_visible()
    item(page, there.pk).locator("a").click()
    page.wait_for_url(re.compile(rf"/sessions/{there.pk}/$"))
    wait_live(page)
    expect(page.locator("#sidebar")).to_be_hidden()
    expect(item(page, there.pk).locator("a")).to_have_attribute("aria-current", "page")
