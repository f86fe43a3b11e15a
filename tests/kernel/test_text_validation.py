"""One rule for text a person types, at every entry point: the API, the pages and the admin.

A title, message or reason with NUL, another control character or a Unicode noncharacter is
refused everywhere the same way; plain text (any script, emoji, line breaks) passes everywhere.
"""

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from agentproj.validators import ONE_LINE_MESSAGE
from approvals_app.models import ApprovalStatus
from sessions_app.core import sessions
from sessions_app.models import AgentSession, Turn
from tests.turn_states import assert_error, queued_turn, waiting_turn

pytestmark = pytest.mark.django_db

NOT_PLAIN = ["nul \x00 and \ufffe", "only nul \x00", "noncharacter \uffff", "escape \x1b[31m"]
PLAIN = "Ünïcode title 😀"


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def approver_api(approver):
    client = APIClient()
    client.force_authenticate(approver)
    return client


@pytest.mark.parametrize("title", NOT_PLAIN)
def test_it_refuses_on_the_page_a_title_the_api_refuses(title, api, user):
    page = logged_in(user).post("/sessions/", {"title": title})

    assert page.status_code == 400
    assert "The title was not accepted" in page.content.decode()
    body = assert_error(api.post("/api/sessions/", {"title": title}, format="json"), 400, "invalid")
    assert "title" in body["fields"]
    assert not AgentSession.objects.exists()


def test_it_accepts_the_same_plain_title_on_the_page_and_in_the_api(api, user):
    page = logged_in(user).post("/sessions/", {"title": PLAIN})
    answer = api.post("/api/sessions/", {"title": PLAIN}, format="json")

    assert page.status_code == 302
    assert answer.status_code == 201
    assert list(AgentSession.objects.values_list("title", flat=True)) == [PLAIN, PLAIN]


def test_it_refuses_a_title_in_the_admin_as_well(user, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="root-password-1")
    session = sessions.session_create(owner=user, title="Before")
    url = reverse("admin:sessions_app_agentsession_change", args=[session.pk])

    response = logged_in(admin).post(
        url, {"owner": user.pk, "agent": session.agent_id, "title": "noncharacter \uffff"}
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"title": [ONE_LINE_MESSAGE]}
    session.refresh_from_db()
    assert session.title == "Before"


@pytest.mark.parametrize("message", NOT_PLAIN)
def test_it_refuses_a_message_that_is_not_plain_text(message, api, user):
    session = sessions.session_create(owner=user)

    response = api.post(f"/api/sessions/{session.pk}/turns/", {"message": message}, format="json")

    body = assert_error(response, 400, "invalid")
    assert "message" in body["fields"]
    assert not Turn.objects.exists()


def test_it_keeps_line_breaks_and_tabs_in_a_message(api, user):
    session = sessions.session_create(owner=user)
    message = "first line\n\tindented\r\nlast 😀"

    response = api.post(f"/api/sessions/{session.pk}/turns/", {"message": message}, format="json")

    assert response.status_code == 202
    assert Turn.objects.get().user_message == message


def test_it_refuses_a_cancel_reason_that_is_not_plain_text(api, user):
    turn = queued_turn(user)

    response = api.post(
        f"/api/sessions/{turn.session_id}/cancel/", {"reason": NOT_PLAIN[0]}, format="json"
    )

    assert_error(response, 400, "invalid")
    turn.refresh_from_db()
    assert turn.status == "queued"


@pytest.mark.parametrize("action", ["approve", "reject"])
@pytest.mark.parametrize("reason", [NOT_PLAIN[0], "fine\u202e ,deggub"])
def test_it_refuses_a_decision_reason_in_the_api(action, reason, approver_api, user):
    """Other approvers read the reason in their e-mail: no bidirectional overrides either."""
    _, approval = waiting_turn(user)

    response = approver_api.post(
        f"/api/approvals/{approval.pk}/{action}/", {"reason": reason}, format="json"
    )

    assert_error(response, 400, "invalid")
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING


@pytest.mark.parametrize("action", ["approve", "reject"])
@pytest.mark.parametrize("reason", [NOT_PLAIN[0], "x" * 2001, "fine\u202e ,deggub"])
def test_it_refuses_a_decision_reason_on_the_admin_buttons(action, reason, approver, user):
    _, approval = waiting_turn(user)
    url = reverse(f"admin:approvals_app_approvalrequest_{action}", args=[approval.pk])

    response = logged_in(approver).post(url, {"reason": reason}, follow=True)

    shown = [str(m) for m in response.context["messages"]]
    assert any(m.startswith("The reason was not accepted:") for m in shown), shown
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING
    assert approval.reason == ""


def test_it_refuses_a_reason_when_rejecting_selected_requests(approver, user):
    _, approval = waiting_turn(user)

    response = logged_in(approver).post(
        reverse("admin:approvals_app_approvalrequest_changelist"),
        {
            "action": "reject_selected",
            "_selected_action": [approval.pk],
            "confirm_reject": "yes",
            "reason": NOT_PLAIN[0],
        },
    )

    assert response.status_code == 200
    assert "Unicode noncharacters are not allowed." in response.content.decode()
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING
