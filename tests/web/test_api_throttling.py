"""Per-user API rates (API_THROTTLE_RATES): beyond them, 429 {"code": "throttled"} with Retry-After;
other users, and other actions of the same user, are not held back."""

import pytest
from rest_framework.test import APIClient

from sessions_app.models import Turn
from tests.turn_states import assert_error, new_session, queued_turn, waiting_turn

pytestmark = pytest.mark.django_db


@pytest.fixture
def low_rates(settings):
    settings.API_THROTTLE_RATES = {"send": "2/min", "cancel": "2/min", "decide": "2/min"}


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def send(client, session, message="hello"):
    return client.post(
        f"/api/sessions/{session.pk}/turns/",
        {"message": message, "on_busy": "enqueue"},
        format="json",
    )


def assert_throttled(response):
    assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0


def test_it_has_the_designed_default_rates():
    from django.conf import settings

    assert settings.API_THROTTLE_RATES == {
        "send": "60/min",
        "cancel": "120/min",
        "decide": "120/min",
        "sessions": "30/min",
        "events": "240/min",
        "resume": "30/min",
    }


def test_it_throttles_sending_per_user(low_rates, api, user, other_user):
    session = new_session(user)
    assert send(api, session).status_code == 202
    assert send(api, session).status_code == 202

    assert_throttled(send(api, session))

    assert session.turns.count() == 2
    theirs = new_session(other_user)
    assert send(client_for(other_user), theirs).status_code == 202
    # Another action of the same user has its own count.
    assert api.post(f"/api/sessions/{session.pk}/cancel/", {}, format="json").status_code == 200


def test_it_throttles_cancelling_per_user(low_rates, api, user):
    turns = [queued_turn(user) for _ in range(3)]
    for turn in turns[:2]:
        response = api.post(f"/api/sessions/{turn.session_id}/cancel/", {}, format="json")
        assert response.status_code == 200

    assert_throttled(api.post(f"/api/sessions/{turns[2].session_id}/cancel/", {}, format="json"))

    assert Turn.objects.get(pk=turns[2].pk).status == "queued"


def test_it_throttles_decisions_per_user(low_rates, approver, user):
    approvals = [waiting_turn(user)[1] for _ in range(3)]
    client = client_for(approver)
    assert client.post(f"/api/approvals/{approvals[0].pk}/approve/").status_code == 200
    assert client.post(f"/api/approvals/{approvals[1].pk}/reject/").status_code == 200

    assert_throttled(client.post(f"/api/approvals/{approvals[2].pk}/approve/"))

    approvals[2].refresh_from_db()
    assert approvals[2].status == "pending"
