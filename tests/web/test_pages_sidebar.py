"""The chat page's sessions sidebar, drawn on the server: the user's own sessions, the most
recently active first, the open one marked current, each status in words, New chat and search as
plain forms; and the list socket sends each session's sidebar item as it changes."""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from sessions_app.core import lifecycle, sessions
from sessions_app.web import views
from tests.html_tree import parse
from tests.sockets import list_socket, session_cookie
from tests.turn_states import queued_turn, waiting_turn

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def sidebar_of(client, user, session):
    client.force_login(user)
    response = client.get(f"/sessions/{session.pk}/")
    assert response.status_code == 200
    return parse(response.content.decode()).by_id("sidebar")


def items_of(sidebar) -> list:
    return sidebar.by_class("sidebar-item")


def titles(sidebar) -> list[str]:
    return [item.by_class("sidebar-title")[0].text for item in items_of(sidebar)]


def test_it_lists_the_users_sessions_most_recently_active_first(client, user, other_user):
    first = sessions.session_create(owner=user, title="First made")
    sessions.session_create(owner=user, title="Second made")
    sessions.session_create(owner=user, title="Third made")
    sessions.session_create(owner=other_user, title="Bob's secret")
    # A message makes the oldest session the most recently active one.
    lifecycle.turn_start(session=first, message="hello again", actor=user)

    sidebar = sidebar_of(client, user, first)

    assert titles(sidebar) == ["First made", "Third made", "Second made"]
    assert "Bob" not in sidebar.visible_text


def test_it_marks_the_open_session_as_the_current_page(client, user):
    sessions.session_create(owner=user, title="Elsewhere")
    here = sessions.session_create(owner=user, title="Here")

    sidebar = sidebar_of(client, user, here)

    current = [
        item.attrs["data-session"]
        for item in items_of(sidebar)
        if item.by_class("sidebar-title")[0].parent.attrs.get("aria-current") == "page"
    ]
    assert current == [str(here.pk)]


def test_it_says_in_words_which_session_waits_for_approval_and_which_runs(client, user):
    waiting, _ = waiting_turn(user)
    running = queued_turn(user)
    idle = sessions.session_create(owner=user, title="Quiet")

    sidebar = sidebar_of(client, user, idle)

    words = {
        item.attrs["data-session"]: " ".join(item.visible_text.split())
        for item in items_of(sidebar)
    }
    assert words[str(waiting.session_id)] == "foundation (Waiting for approval)"
    assert words[str(running.session_id)] == "foundation (Running)"
    assert words[str(idle.pk)] == "Quiet (Idle)"


def test_it_starts_a_new_chat_and_searches_with_plain_forms(client, user):
    here = sessions.session_create(owner=user, title="Here")

    sidebar = sidebar_of(client, user, here)

    new_chat = sidebar.by_id("sidebar-new-chat").parent
    assert (new_chat.tag, new_chat.attrs["method"], new_chat.attrs["action"]) == (
        "form",
        "post",
        "/sessions/",
    )
    search = sidebar.by_id("sidebar-search")
    assert search.attrs["name"] == "q" and search.parent.attrs["action"] == "/sessions/"
    response = client.post("/sessions/", {})
    assert response.status_code == 302
    assert titles(sidebar_of(client, user, here))[0] == "New chat"


def chat_page_queries(client, session) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(f"/sessions/{session.pk}/").status_code == 200
    return len(queries)


def test_it_costs_the_same_queries_for_3_and_40_sessions(client, settings, user):
    settings.MAX_ACTIVE_TURNS_PER_USER = 100
    client.force_login(user)
    here = sessions.session_create(owner=user, title="Here")
    queued_turn(user)
    sessions.session_create(owner=user, title="Another")
    few = chat_page_queries(client, here)

    for number in range(37):
        if number % 3:
            sessions.session_create(owner=user, title=f"Session {number}")
        else:
            queued_turn(user)
    many = chat_page_queries(client, here)

    assert many == few
    assert len(titles(sidebar_of(client, user, here))) == 40


def test_it_shows_the_most_recent_sessions_and_links_to_the_rest(client, user):
    here = sessions.session_create(owner=user, title="Here")
    for number in range(views.SIDEBAR_SESSIONS):
        sessions.session_create(owner=user, title=f"Session {number}")

    sidebar = sidebar_of(client, user, here)

    assert len(items_of(sidebar)) == views.SIDEBAR_SESSIONS
    assert "Here" not in titles(sidebar)
    assert [a.attrs["href"] for a in sidebar.by_class("sidebar-all")] == ["/sessions/"]


def test_the_list_socket_sends_the_sidebar_item_of_a_session_whose_turn_starts(user):
    session = sessions.session_create(owner=user, title="Story time")
    cookie = session_cookie(user)

    async def scenario():
        socket = list_socket(cookie)
        try:
            accepted, _ = await socket.connect(timeout=5)
            assert accepted
            await database_sync_to_async(lifecycle.turn_start)(
                session=session, message="hi", actor=user
            )
            return await socket.receive_json_from(timeout=10)
        finally:
            await socket.disconnect()

    message = async_to_sync(scenario)()

    item = parse(message["item"]).by_id(f"sidebar-session-{session.pk}")
    session.refresh_from_db()
    assert item.attrs["data-status"] == "running"
    assert item.attrs["data-activity"] == session.last_activity_at.isoformat()
    assert " ".join(item.visible_text.split()) == "Story time (Running)"
    # The socket does not know the page: the page marks its own session current.
    assert "aria-current" not in message["item"]
