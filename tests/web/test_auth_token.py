"""Authentication: nothing under /api/ answers a stranger; a DRF token or a login works."""

import io

import pytest
from django.core.management import call_command
from django.http import HttpRequest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from agentproj.vocabulary import TurnStatus
from sessions_app.models import AgentSession
from tests.turn_states import assert_error, queued_turn, waiting_turn

pytestmark = pytest.mark.django_db


def every_endpoint(turn, approval):
    session = f"/api/sessions/{turn.session_id}"
    return [
        ("get", "/api/sessions/", None),
        ("post", "/api/sessions/", {"title": "x"}),
        ("get", f"{session}/", None),
        ("post", f"{session}/turns/", {"message": "hi"}),
        ("get", f"{session}/turns/{turn.pk}/", None),
        ("post", f"{session}/cancel/", {}),
        ("get", f"{session}/events/", None),
        ("get", "/api/approvals/", None),
        ("post", f"/api/approvals/{approval.pk}/approve/", {}),
        ("post", f"/api/approvals/{approval.pk}/reject/", {}),
    ]


@pytest.mark.parametrize("credentials", [{}, {"HTTP_AUTHORIZATION": "Token not-a-real-key"}])
def test_it_refuses_every_endpoint_to_a_stranger(credentials, user):
    turn, approval = waiting_turn(user)
    stranger = APIClient()
    stranger.credentials(**credentials)
    for method, url, body in every_endpoint(turn, approval):
        response = getattr(stranger, method)(url, body, format="json")
        assert response.status_code in (401, 403), (url, response.status_code)
        code = assert_error(response, response.status_code)["code"]
        assert code in ("not_authenticated", "authentication_failed"), (url, code)
    turn.refresh_from_db()
    approval.refresh_from_db()
    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL
    assert approval.status == "pending"
    assert AgentSession.objects.count() == 1


def test_it_accepts_a_token_made_by_the_management_command(user):
    out = io.StringIO()
    call_command("drf_create_token", user.username, stdout=out)
    key = Token.objects.get(user=user).key
    assert key in out.getvalue()

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    created = client.post("/api/sessions/", {"title": "by token"}, format="json")
    assert created.status_code == 201
    session = AgentSession.objects.get(pk=created.json()["id"])
    assert session.owner == user

    sent = client.post(f"/api/sessions/{session.pk}/turns/", {"message": "hi"}, format="json")
    assert sent.status_code == 202
    assert client.get("/api/sessions/").json()["results"][0]["active_turn"] == sent.json()["id"]


def test_it_scopes_a_token_to_its_user(user, other_user):
    theirs = queued_turn(other_user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert client.get("/api/sessions/").json()["results"] == []
    assert_error(client.post(f"/api/sessions/{theirs.session_id}/cancel/"), 404, "not_found")
    theirs.refresh_from_db()
    assert theirs.status == TurnStatus.QUEUED


def test_it_accepts_a_session_login(user):
    client = APIClient()
    # django-axes counts login attempts per request, so authenticate() is given one.
    assert client.login(request=HttpRequest(), username="alice", password="alice-password-1")
    response = client.get("/api/sessions/")
    assert response.status_code == 200


def test_it_requires_csrf_for_a_session_login(user):
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(request=HttpRequest(), username="alice", password="alice-password-1")
    response = client.post("/api/sessions/", {"title": "x"}, format="json")
    assert_error(response, 403)
    assert not AgentSession.objects.exists()
