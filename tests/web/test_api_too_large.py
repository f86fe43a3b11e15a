"""A request body over DATA_UPLOAD_MAX_MEMORY_SIZE is refused as too large (413), never answered
as a server error: by the API as ``{"code": "too_large"}``, by a page form with a plain 413."""

import json

import pytest
from django.conf import settings
from django.test import Client

from tests.turn_states import assert_error, new_session

pytestmark = pytest.mark.django_db


def oversized() -> str:
    return "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)


def post_json(api, path: str, payload: dict):
    return api.generic("POST", path, json.dumps(payload), content_type="application/json")


def test_a_message_over_the_upload_limit_answers_too_large(api, user):
    session = new_session(user)

    response = post_json(api, f"/api/sessions/{session.pk}/turns/", {"message": oversized()})

    assert_error(response, 413, "too_large")
    assert not session.turns.exists()


def test_a_title_over_the_upload_limit_answers_too_large(api, user):
    response = post_json(api, "/api/sessions/", {"title": oversized()})

    assert_error(response, 413, "too_large")
    assert not user.agent_sessions.exists()


def test_a_page_form_over_the_upload_limit_answers_413(user):
    client = Client()
    client.force_login(user)

    response = client.post("/sessions/", {"title": oversized()})

    assert response.status_code == 413
    assert not user.agent_sessions.exists()
