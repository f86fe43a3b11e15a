"""JSON nested a thousand levels deep (about 2 KB) is refused where it comes in: 400
``invalid_json`` from the API, a form error in the admin, an error frame on the socket. Python's
parser recursed into a RecursionError (a 500) on it before."""

import json

import pytest
from asgiref.sync import async_to_sync
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from agentproj.json_limits import MAX_DEPTH
from approvals_app.models import ApprovalStatus
from sessions_app.core import sessions
from sessions_app.models import Agent, AgentSession, McpServer
from tests.sockets import session_cookie, session_socket
from tests.turn_states import assert_error, waiting_turn

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

LEVELS = 1000
DEEP = "[" * LEVELS + "]" * LEVELS
TOO_DEEP = f"nested more than {MAX_DEPTH} levels deep"


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def post_raw(client: APIClient, path: str, body: str):
    return client.generic("POST", path, body, content_type="application/json")


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", password="root-password-1")


def test_the_api_answers_invalid_json_to_a_deep_body(api):
    response = post_raw(api, "/api/sessions/", '{"title": "deep", "extra": ' + DEEP + "}")

    body = assert_error(response, 400, "invalid_json")
    assert TOO_DEEP in body["detail"]
    assert not AgentSession.objects.exists()


@pytest.mark.parametrize(
    ("body", "detail"),
    [("{not json", "not valid JSON"), ('{"title": NaN}', "not finite")],
)
def test_the_api_answers_invalid_json_in_its_own_words(api, body, detail):
    response = post_raw(api, "/api/sessions/", body)

    assert detail in assert_error(response, 400, "invalid_json")["detail"]
    assert not AgentSession.objects.exists()


def test_the_api_answers_invalid_json_to_deep_edited_arguments(approver, user):
    _, approval = waiting_turn(user)
    client = APIClient()
    client.force_authenticate(approver)

    response = post_raw(
        client, f"/api/approvals/{approval.pk}/approve/", '{"arguments": {"to": ' + DEEP + "}}"
    )

    assert TOO_DEEP in assert_error(response, 400, "invalid_json")["detail"]
    approval.refresh_from_db()
    assert (approval.status, approval.edited_arguments) == (ApprovalStatus.PENDING, None)


def test_the_admin_approve_form_refuses_deep_arguments(approver, user):
    _, approval = waiting_turn(user)
    url = reverse("admin:approvals_app_approvalrequest_approve", args=[approval.pk])

    response = logged_in(approver).post(url, {"arguments": '{"to": ' + DEEP + "}", "reason": ""})

    assert response.status_code == 200
    errors = response.context["approve_form"].errors
    assert list(errors) == ["arguments"] and TOO_DEEP in errors["arguments"][0]
    approval.refresh_from_db()
    assert (approval.status, approval.edited_arguments) == (ApprovalStatus.PENDING, None)


@pytest.mark.parametrize(
    "field", ["args", "new_env"], ids=["args (a model JSON field)", "environment"]
)
def test_the_mcp_server_admin_refuses_deep_json(superuser, field):
    fields = {
        "name": "notes",
        "transport": "stdio",
        "enabled": "on",
        "command": "notes-server",
        "args": "[]",
        "url": "",
        "new_env": "",
        "new_headers": "",
        field: DEEP,
    }

    response = logged_in(superuser).post(reverse("admin:sessions_app_mcpserver_add"), fields)

    assert response.status_code == 200
    assert TOO_DEEP in response.content.decode()
    assert not McpServer.objects.exists()


def test_the_agent_admin_refuses_deep_tools(superuser):
    response = logged_in(superuser).post(
        reverse("admin:sessions_app_agent_add"),
        {"name": "deep", "instructions": "", "model": "", "tools": DEEP},
    )

    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["tools"]
    assert not Agent.objects.filter(name="deep").exists()


def test_the_socket_answers_a_deep_frame_with_an_error_and_stays_up(user):
    session = sessions.session_create(owner=user)
    cookie = session_cookie(user)
    # Deep, yet short enough to be read as a frame at all.
    deep_frame = json.dumps({"type": "resume", "after_seq": 0})[:-1] + ', "x": '
    deep_frame += "[" * 400 + "]" * 400 + "}"

    async def scenario():
        socket = session_socket(session.pk, cookie)
        try:
            accepted, _ = await socket.connect(timeout=5)
            assert accepted
            answers = []
            for frame in (deep_frame, '{"x": ' + DEEP + "}"):
                await socket.send_to(text_data=frame)
                answers.append(await socket.receive_json_from(timeout=5))
            await socket.send_json_to({"type": "resume", "after_seq": 0})
            return answers, await socket.receive_json_from(timeout=5)
        finally:
            await socket.disconnect()

    (deep, longer), replayed = async_to_sync(scenario)()

    assert (deep["type"], deep["code"]) == ("error", "invalid_message")
    assert TOO_DEEP in deep["detail"]
    assert (longer["type"], longer["code"]) == ("error", "invalid_message")
    assert replayed == {"type": "replayed", "last_seq": 0}
