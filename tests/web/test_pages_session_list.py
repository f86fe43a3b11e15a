"""/sessions/ lists the user's own sessions, newest first, each with its status."""

import pytest

from sessions_app.core import lifecycle, sessions
from sessions_app.models import AgentSession
from sessions_app.web import fragments

pytestmark = pytest.mark.django_db


def test_it_lists_only_the_users_own_sessions_newest_first(client, user, other_user):
    older = sessions.session_create(owner=user, title="Older chat")
    newer = sessions.session_create(owner=user, title="Newer chat")
    sessions.session_create(owner=other_user, title="Bob's secret")
    client.force_login(user)

    page = client.get("/sessions/").content.decode()

    assert "Bob&#x27;s secret" not in page and "Bob's secret" not in page
    assert page.index("Newer chat") < page.index("Older chat")
    assert f'href="/sessions/{newer.pk}/"' in page
    assert f'href="/sessions/{older.pk}/"' in page


def test_it_shows_each_sessions_status(client, user):
    idle = sessions.session_create(owner=user, title="Quiet")
    busy = sessions.session_create(owner=user, title="Busy")
    lifecycle.turn_start(session=busy, message="hello", actor=user)
    client.force_login(user)

    page = client.get("/sessions/").content.decode()

    assert f'data-session="{idle.pk}"' in page
    busy_row = page[page.index(f'data-session="{busy.pk}"') :]
    assert 'data-status="running"' in busy_row.split("</li>")[0]
    idle_row = page[page.index(f'data-session="{idle.pk}"') :]
    assert 'data-status="idle"' in idle_row.split("</li>")[0]


def test_it_starts_a_new_session_and_opens_it(client, user):
    client.force_login(user)
    response = client.post("/sessions/", {"title": "  Trip plans "})
    session = AgentSession.objects.get(owner=user)
    assert session.title == "Trip plans"
    assert response.status_code == 302
    assert response["Location"] == f"/sessions/{session.pk}/"


def test_it_finds_sessions_by_a_part_of_their_title_in_any_case(client, user, other_user):
    sessions.session_create(owner=user, title="Trip to Lisbon")
    sessions.session_create(owner=user, title="Tax return")
    sessions.session_create(owner=other_user, title="Lisbon, Bob's")
    client.force_login(user)

    page = client.get("/sessions/", {"q": " lisBON "}).content.decode()

    assert "Trip to Lisbon" in page
    assert "Tax return" not in page and "Bob" not in page
    assert 'value="lisBON"' in page


def test_it_says_when_no_title_matches(client, user):
    sessions.session_create(owner=user, title="Trip to Lisbon")
    client.force_login(user)

    page = client.get("/sessions/", {"q": "Porto"}).content.decode()

    assert "Trip to Lisbon" not in page
    assert "title contains “Porto”." in page


def test_its_rows_are_the_partial_the_list_socket_sends(client, user):
    session = sessions.session_create(owner=user, title="Trip plans")
    lifecycle.turn_start(session=session, message="hello", actor=user)
    client.force_login(user)

    page = client.get("/sessions/").content.decode()
    row = fragments.session_fragments(user, session.pk)["html"]

    # The same row, but for the page's CSRF token, which a socket render cannot know.
    assert 'name="csrfmiddlewaretoken" value=""' in row
    token = page.split('name="csrfmiddlewaretoken" value="', 2)[2].split('"')[0]
    assert row.replace('value=""', f'value="{token}"', 1).strip() in page
    assert f'id="session-{session.pk}"' in row
    assert 'data-status="running">Running<' in row
    assert f'action="/sessions/{session.pk}/rename/"' in row
    assert f'href="/sessions/{session.pk}/delete/"' in row


def test_it_renders_no_row_of_another_users_session(user, other_user):
    theirs = sessions.session_create(owner=other_user, title="Bob's")
    assert fragments.session_fragments(user, theirs.pk) is None


def test_it_renames_a_session_from_its_row_without_javascript(client, user):
    session = sessions.session_create(owner=user, title="Old")
    client.force_login(user)

    response = client.post(
        f"/sessions/{session.pk}/rename/", {"title": " New name ", "next": "/sessions/?q=new"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/sessions/?q=new"
    session.refresh_from_db()
    assert session.title == "New name"


def test_it_shows_why_a_title_was_refused(client, user):
    session = sessions.session_create(owner=user, title="Old")
    client.force_login(user)

    response = client.post(f"/sessions/{session.pk}/rename/", {"title": "x" * 201})

    assert response.status_code == 400
    assert "The title was not accepted" in response.content.decode()
    session.refresh_from_db()
    assert session.title == "Old"


def test_it_goes_back_only_to_pages_of_this_site_after_a_rename(client, user):
    session = sessions.session_create(owner=user, title="Old")
    client.force_login(user)

    response = client.post(
        f"/sessions/{session.pk}/rename/", {"title": "New", "next": "https://evil.example/"}
    )

    assert response["Location"] == "/sessions/"


def test_it_asks_before_deleting_and_deletes_on_confirmation(client, user):
    session = sessions.session_create(owner=user, title="Doomed")
    lifecycle.turn_start(session=session, message="hello", actor=user)
    client.force_login(user)

    confirm = client.get(f"/sessions/{session.pk}/delete/").content.decode()
    assert "Delete “Doomed”?" in confirm
    assert "A turn is still active: it is stopped first" in confirm
    assert AgentSession.objects.filter(pk=session.pk).exists()

    response = client.post(f"/sessions/{session.pk}/delete/")

    assert response.status_code == 302 and response["Location"] == "/sessions/"
    assert not AgentSession.objects.filter(pk=session.pk).exists()


def test_it_neither_renames_nor_deletes_another_users_session(client, user, other_user):
    theirs = sessions.session_create(owner=other_user, title="Bob's")
    client.force_login(user)

    assert client.post(f"/sessions/{theirs.pk}/rename/", {"title": "x"}).status_code == 404
    assert client.get(f"/sessions/{theirs.pk}/delete/").status_code == 404
    assert client.post(f"/sessions/{theirs.pk}/delete/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.title == "Bob's"
