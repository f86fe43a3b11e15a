"""The chat pages are for logged-in users only."""

import pytest

from sessions_app.core import sessions

pytestmark = pytest.mark.django_db


def test_it_sends_an_anonymous_visitor_to_the_login_page(client, user):
    session = sessions.session_create(owner=user)
    for url in ("/sessions/", f"/sessions/{session.pk}/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == f"/accounts/login/?next={url}"


def test_it_does_not_create_a_session_for_an_anonymous_visitor(client, user):
    response = client.post("/sessions/", {"title": "sneaky"})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert not user.agent_sessions.exists()


def test_it_logs_in_through_the_login_page(client, user):
    response = client.post(
        "/accounts/login/",
        {"username": "alice", "password": "alice-password-1", "next": "/sessions/"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/sessions/"
    assert client.get("/sessions/").status_code == 200
