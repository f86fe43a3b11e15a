"""Pages that refuse or fail answer in the site's own layout, in words, without details: not a
bare "Not Found" or "403 Forbidden", never a trace. The API keeps its JSON errors."""

import pytest
from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.test import RequestFactory

from agentproj import api_errors
from sessions_app.core import sessions
from tests.html_tree import parse

pytestmark = pytest.mark.django_db

TEMPLATE_SYNTAX = ("{#", "#}", "{%", "%}", "{{", "}}")


def page_of(response) -> str:
    """The visible text of an error page drawn in the site's layout (its top bar and link)."""
    html = response.content.decode()
    tree = parse(html)
    assert tree.by_class("topbar"), html
    text = tree.visible_text
    assert "Back to your sessions" in text
    assert [syntax for syntax in TEMPLATE_SYNTAX if syntax in text] == []
    return text


def test_another_users_session_is_a_friendly_not_found(client, user, other_user):
    session = sessions.session_create(owner=other_user, title="Bob's plans")
    client.force_login(user)
    response = client.get(f"/sessions/{session.pk}/")
    assert response.status_code == 404
    text = page_of(response)
    assert "Page not found" in text and "Bob's plans" not in text


def test_an_unknown_address_is_a_friendly_not_found_for_anyone(client):
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert "Page not found" in page_of(response)


def test_the_api_still_answers_json(client, user):
    client.force_login(user)
    response = client.get("/api/sessions/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "Not found."}


@pytest.mark.parametrize(
    ("handler", "status", "words"),
    [
        (
            lambda request: api_errors.permission_denied(request, PermissionDenied()),
            403,
            "Not allowed",
        ),
        (
            lambda request: api_errors.bad_request(request, SuspiciousOperation()),
            400,
            "Bad request",
        ),
        (api_errors.server_error, 500, "Something went wrong"),
    ],
    ids=["403", "400", "500"],
)
def test_refusals_and_failures_are_friendly_pages_without_details(handler, status, words, user):
    request = RequestFactory().get("/sessions/")
    request.user = user
    response = handler(request)
    assert response.status_code == status
    text = page_of(response)
    assert words in text
    assert "Traceback" not in text and "Exception" not in text
