"""Every answer under /api/ is the API's JSON ``{"code", "detail"}``, whatever part of the stack
answers it; a failed CSRF check says ``csrf_failed``, not that the user lacks a permission. Pages
outside /api/ keep Django's own error pages."""

import pytest
from django.middleware.csrf import _get_failure_view
from django.test import Client, RequestFactory
from django.urls import get_resolver
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.turn_states import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def token_client(user):
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def cookie_client(user):
    """A logged-in browser that did not send the CSRF token (an old page, say)."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "path", ["/api/approvals/-1/approve/", "/api/sessions/not-a-uuid/cancel/", "/api/nothing/"]
)
def test_a_token_post_to_an_unknown_path_answers_a_json_404(token_client, path):
    assert_error(token_client.post(path), 404, "not_found")


def test_a_cookie_post_without_the_csrf_token_answers_csrf_failed(cookie_client, user):
    response = cookie_client.post("/api/sessions/", {"title": "x"}, content_type="application/json")

    body = assert_error(response, 403, "csrf_failed")
    assert "permission" not in body["detail"].lower()
    assert not user.agent_sessions.exists()


def test_a_cookie_post_with_the_csrf_token_is_accepted(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/sessions/")  # the page sets the CSRF cookie
    token = client.cookies["csrftoken"].value

    response = client.post(
        "/api/sessions/", {"title": "x"}, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )

    assert response.status_code == 201


def test_the_csrf_failure_view_answers_json_under_api_and_a_page_elsewhere():
    failure_view = _get_failure_view()
    factory = RequestFactory()

    api = failure_view(factory.post("/api/sessions/"), reason="CSRF cookie not set.")
    page = failure_view(factory.post("/sessions/"), reason="CSRF cookie not set.")

    assert_error(api, 403, "csrf_failed")
    assert page.status_code == 403
    assert page["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    ("http_status", "code"),
    [(400, "bad_request"), (403, "permission_denied"), (404, "not_found"), (500, "server_error")],
)
def test_djangos_error_handlers_answer_json_under_api_and_pages_elsewhere(http_status, code):
    handler = get_resolver().resolve_error_handler(http_status)
    factory = RequestFactory()

    def answer(path):
        request = factory.get(path)
        return handler(request) if http_status == 500 else handler(request, Exception())

    assert_error(answer("/api/sessions/"), http_status, code)
    page = answer("/sessions/")
    assert page.status_code == http_status
    assert page["Content-Type"].startswith("text/html")
