"""/sessions/ lists the user's own sessions, newest first, each with its status."""

import pytest

from sessions_app import services
from sessions_app.models import AgentSession

pytestmark = pytest.mark.django_db


def test_it_lists_only_the_users_own_sessions_newest_first(client, user, other_user):
    older = services.session_create(owner=user, title="Older chat")
    newer = services.session_create(owner=user, title="Newer chat")
    services.session_create(owner=other_user, title="Bob's secret")
    client.force_login(user)

    page = client.get("/sessions/").content.decode()

    assert "Bob&#x27;s secret" not in page and "Bob's secret" not in page
    assert page.index("Newer chat") < page.index("Older chat")
    assert f'href="/sessions/{newer.pk}/"' in page
    assert f'href="/sessions/{older.pk}/"' in page


def test_it_shows_each_sessions_status(client, user):
    idle = services.session_create(owner=user, title="Quiet")
    busy = services.session_create(owner=user, title="Busy")
    services.turn_start(session=busy, message="hello", actor=user)
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
