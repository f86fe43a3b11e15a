"""Security headers on everything the web process serves — pages, API, static files — through the
real ASGI application: a strict Content-Security-Policy (no inline script or style anywhere, so
none is allowed), a Permissions-Policy, nosniff and frame options. The API docs load nothing from
another site."""

import re
from html.parser import HTMLParser

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from django.test import Client

from agentproj.asgi import application
from tests.turn_states import waiting_turn

pytestmark = pytest.mark.django_db

STATIC_CSS = "/static/agentproj/app.css"


def served(path: str) -> dict:
    """GET over the ASGI application daphne runs: status, headers (a dict of str) and body.
    (Channels' HttpCommunicator expects a body in every message; ASGI makes it optional.)"""

    async def get():
        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": "GET",
            "path": path,
            "query_string": b"",
            "headers": [(b"host", b"127.0.0.1")],
        }
        communicator = ApplicationCommunicator(application, scope)
        await communicator.send_input({"type": "http.request", "body": b""})
        start = await communicator.receive_output(10)
        headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
        body = b""
        while True:
            message = await communicator.receive_output(10)
            body += message.get("body", b"")
            if not message.get("more_body"):
                return {"status": start["status"], "headers": headers, "body": body}

    return async_to_sync(get)()


def csp_directives(header: str) -> dict[str, list[str]]:
    parts = (p.split() for p in header.split(";") if p.strip())
    return {name: values for name, *values in parts}


def assert_protected(headers: dict[str, str]) -> None:
    csp = csp_directives(headers["content-security-policy"])
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["object-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert "unsafe" not in headers["content-security-policy"]
    assert "camera=()" in headers["permissions-policy"]
    assert "microphone=()" in headers["permissions-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("path", ["/accounts/login/", "/api/schema/", "/api/nothing-here/"])
def test_pages_and_api_answers_carry_the_security_headers(path):
    assert_protected(served(path)["headers"])


def test_static_files_carry_the_same_headers():
    response = served(STATIC_CSS)

    assert response["status"] == 200
    assert response["headers"]["content-type"].startswith("text/css")
    assert b"--primary" in response["body"]
    assert_protected(response["headers"])


def test_a_missing_static_file_is_a_404():
    assert served("/static/agentproj/no-such-file.css")["status"] == 404


class Inline(HTMLParser):
    """Collects what a strict CSP refuses: inline scripts, style elements and attributes, event
    handler attributes and javascript: URLs; and every URL the page loads."""

    def __init__(self):
        super().__init__()
        self.refused: list[str] = []
        self.loads: list[str] = []
        self._in_inline_script = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "script":
            if attributes.get("src"):
                self.loads.append(attributes["src"])
            elif attributes.get("type") != "application/json":
                self._in_inline_script = True
        if tag == "style":
            self.refused.append("<style>")
        if tag == "link" and attributes.get("href"):
            self.loads.append(attributes["href"])
        if tag == "img" and attributes.get("src"):
            self.loads.append(attributes["src"])
        for name, value in attrs:
            if name == "style" or name.startswith("on"):
                self.refused.append(f"<{tag} {name}=...>")
            if value and value.strip().lower().startswith("javascript:"):
                self.refused.append(f"<{tag} {name}={value}>")

    def handle_data(self, data):
        if self._in_inline_script and data.strip():
            self.refused.append(f"<script>{data.strip()[:60]}")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_inline_script = False


def parsed(response) -> Inline:
    assert response.status_code == 200, response.status_code
    page = Inline()
    page.feed(response.content.decode())
    return page


def test_no_page_needs_what_the_csp_refuses(user, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "root-pw-1")
    turn, approval = waiting_turn(user)
    owner, staff = Client(), Client()
    owner.force_login(user)
    staff.force_login(admin)
    pages = [
        (Client(), "/accounts/login/"),
        (owner, "/sessions/"),
        (owner, f"/sessions/{turn.session_id}/"),
        (staff, "/admin/"),
        (staff, "/admin/approvals_app/approvalrequest/"),
        (staff, f"/admin/approvals_app/approvalrequest/{approval.pk}/change/"),
        (staff, "/admin/sessions_app/agentsession/"),
        (staff, f"/admin/sessions_app/agentsession/{turn.session_id}/change/"),
        (staff, "/admin/auth/user/add/"),
        (owner, "/api/docs/"),
    ]
    for client, path in pages:
        page = parsed(client.get(path))
        assert page.refused == [], (path, page.refused)
        assert all(url.startswith("/") and not url.startswith("//") for url in page.loads), (
            path,
            page.loads,
        )


def test_the_api_docs_load_swagger_ui_from_this_site(user):
    client = Client()
    client.force_login(user)

    docs = parsed(client.get("/api/docs/"))

    assert any(re.search(r"swagger-ui-bundle\.js$", url) for url in docs.loads), docs.loads
    for url in docs.loads:
        response = client.get(url)
        assert response.status_code == 200, url
        if url.startswith("/api/docs/"):
            body = response.content.decode()
            assert "SwaggerUIBundle(" in body
            assert "/api/schema/" in body
