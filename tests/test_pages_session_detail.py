"""/sessions/<id>/ opens the user's own session with what the page script needs."""

import pytest

from sessions_app import services

pytestmark = pytest.mark.django_db


def test_it_answers_404_for_another_users_session(client, user, other_user):
    session = services.session_create(owner=other_user, title="Bob's")
    client.force_login(user)
    assert client.get(f"/sessions/{session.pk}/").status_code == 404


def test_it_renders_the_chat_frame_for_the_owner(client, user):
    session = services.session_create(owner=user, title="Mine")
    turn = services.turn_start(session=session, message="hello", actor=user)
    client.force_login(user)

    response = client.get(f"/sessions/{session.pk}/")

    assert response.status_code == 200
    page = response.content.decode()
    assert f'data-session="{session.pk}"' in page
    assert f'data-active-turn="{turn.pk}"' in page
    assert 'data-turn-status="queued"' in page
    assert 'data-can-decide="0"' in page
    assert 'id="stop"' in page and 'id="send"' in page
    assert "agentproj/chat.js" in page
    assert "csrfmiddlewaretoken" in page


def test_it_offers_approval_buttons_only_to_approvers(client, approver):
    session = services.session_create(owner=approver)
    client.force_login(approver)
    page = client.get(f"/sessions/{session.pk}/").content.decode()
    assert 'data-can-decide="1"' in page
