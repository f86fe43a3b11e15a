"""An MCP server's headers and environment may hold secrets: a name or value with a control
character is refused where a person types it (the admin) and where the environment declares it
(AGENT_MCP_SERVERS), naming the entry but never the value; and no page, message, stored problem
or log shows a value, even one stored before the rule that an HTTP library quotes in its error.
"""

import json
import logging
import socket

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client
from django.urls import reverse

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app.core import lifecycle, sessions
from sessions_app.mcp import registry
from sessions_app.models import McpServer, McpTransport
from tests.queued_tasks import run_queued_tasks

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

SECRET = "s3cret-token-never-shown"
MASK = registry.SECRET_MASK
ADD_URL = reverse("admin:sessions_app_mcpserver_add")
LIST_URL = reverse("admin:sessions_app_mcpserver_changelist")
DISCOVER = "sessions_app.tasks.discover_mcp_tools"
NOT_ONE_LINE = {
    "CR/LF": f"Bearer {SECRET}\r\nX-Forged: yes",
    "LF": f"Bearer {SECRET}\n",
    "NUL": f"Bearer {SECRET}\x00",
    "ESC": f"Bearer {SECRET}\x1b[2J",
    "bidi override": f"Bearer {SECRET}\u202e",
}


def change_url(server: McpServer) -> str:
    return reverse("admin:sessions_app_mcpserver_change", args=[server.pk])


def http_form(headers: dict | str, **fields) -> dict:
    return {
        "name": "docs",
        "transport": McpTransport.HTTP,
        "enabled": "on",
        "command": "",
        "args": "[]",
        "url": "https://mcp.example.com/mcp",
        "new_env": "",
        "new_headers": headers if isinstance(headers, str) else json.dumps(headers),
        **fields,
    }


@pytest.fixture
def superuser_client(django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="root-password-1")
    client = Client()
    client.force_login(admin)
    return client


@pytest.fixture
def refusing_url():
    """A loopback port that takes connections and never answers: a request with a header HTTP
    refuses fails while it is written, with the value quoted in h11's error."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(8)
        yield "http://{}:{}/mcp".format(*listening.getsockname())


@pytest.mark.parametrize("value", NOT_ONE_LINE.values(), ids=NOT_ONE_LINE.keys())
def test_the_admin_refuses_a_header_value_without_quoting_it(superuser_client, value):
    response = superuser_client.post(ADD_URL, http_form({"X-Key": value}))

    assert response.status_code == 200
    [problem] = response.context["adminform"].form.errors["new_headers"]
    assert problem.startswith("The value of 'X-Key': ")
    assert SECRET not in response.content.decode()
    assert not McpServer.objects.exists()


@pytest.mark.parametrize(
    ("fields", "field", "problem"),
    [
        ({"new_headers": '{"X Key": "v"}'}, "new_headers", "'X Key' is not a header name"),
        ({"new_headers": '{"X-Key\\n": "v"}'}, "new_headers", "'X-Key\\n' is not a header name"),
        ({"new_headers": json.dumps({"X-Key": f" {SECRET}"})}, "new_headers", "starts or ends"),
        (
            {
                "transport": McpTransport.STDIO,
                "command": "notes-server",
                "url": "",
                "new_headers": "",
                "new_env": json.dumps({"TOKEN": f"{SECRET}\r\n"}),
            },
            "new_env",
            "The value of 'TOKEN': ",
        ),
        (
            {
                "transport": McpTransport.STDIO,
                "command": "notes-server",
                "url": "",
                "new_headers": "",
                "new_env": json.dumps({"A=B": SECRET}),
            },
            "new_env",
            "'A=B' is not an environment variable name",
        ),
    ],
)
def test_the_admin_refuses_names_and_values_a_server_cannot_take(
    superuser_client, fields, field, problem
):
    response = superuser_client.post(ADD_URL, http_form({}, **fields))

    assert response.status_code == 200
    [shown] = response.context["adminform"].form.errors[field]
    assert problem in shown
    assert SECRET not in response.content.decode()
    assert not McpServer.objects.exists()


@pytest.mark.parametrize("kind", ["headers", "env"])
def test_the_environment_may_not_declare_a_control_character(settings, kind):
    if kind == "headers":
        entry = {"name": "docs", "url": "https://mcp.example.com/mcp", "headers": {}}
    else:
        entry = {"name": "notes", "command": "notes-server", "env": {}}
    entry[kind]["X-Key"] = f"Bearer {SECRET}\r\nX-Forged: yes"
    settings.AGENT_MCP_SERVERS = [entry]

    with pytest.raises(ImproperlyConfigured) as refused:
        registry.declared_servers()
    with pytest.raises(SystemCheckError) as checked:
        call_command("check")

    for said in (str(refused.value), str(checked.value)):
        assert f"AGENT_MCP_SERVERS[0]: {kind}: the value of 'X-Key'" in said
        assert SECRET not in said


def test_the_admin_never_shows_a_header_value_and_edits_one_by_name(superuser_client):
    response = superuser_client.post(
        ADD_URL, http_form({"Authorization": f"Bearer {SECRET}", "X-Team": "blue"})
    )
    assert response.status_code == 302
    server = McpServer.objects.get(name="docs")

    change_page = superuser_client.get(change_url(server)).content.decode()
    list_page = superuser_client.get(LIST_URL).content.decode()
    for page in (change_page, list_page):
        assert SECRET not in page and "blue" not in page
    assert "headers: Authorization, X-Team (values hidden)" in change_page
    shown = superuser_client.get(change_url(server)).context["adminform"].form["new_headers"]
    assert json.loads(shown.value()) == {"Authorization": MASK, "X-Team": MASK}

    # One header changed, the other kept by its mask.
    superuser_client.post(change_url(server), http_form({"Authorization": MASK, "X-Team": "green"}))
    server.refresh_from_db()
    assert server.headers == {"Authorization": f"Bearer {SECRET}", "X-Team": "green"}

    # A name taken out is removed; a mask with nothing stored behind it is refused.
    superuser_client.post(change_url(server), http_form({"Authorization": MASK}))
    server.refresh_from_db()
    assert server.headers == {"Authorization": f"Bearer {SECRET}"}
    refused = superuser_client.post(change_url(server), http_form({"X-New": MASK}))
    assert refused.context["adminform"].form.errors["new_headers"] == [
        "'X-New' has no stored value to keep: type its value."
    ]
    server.refresh_from_db()
    assert server.headers == {"Authorization": f"Bearer {SECRET}"}


def test_a_form_shown_again_does_not_show_what_was_typed(superuser_client):
    response = superuser_client.post(
        ADD_URL, http_form({"Authorization": f"Bearer {SECRET}"}, url="")
    )

    assert response.status_code == 200
    assert "needs its URL" in response.content.decode()
    assert SECRET not in response.content.decode()


def test_a_value_stored_before_the_rule_is_masked_wherever_the_failure_is_told(
    superuser_client, refusing_url, llm, user, run_turn_in_thread, caplog
):
    server = McpServer.objects.create(
        name="docs",
        transport=McpTransport.HTTP,
        url=refusing_url,
        headers={"Authorization": f"Bearer {SECRET}\n"},
    )

    superuser_client.post(LIST_URL, {"action": "discover_tools", "_selected_action": [server.pk]})
    # What the worker's discovery task reports (kept with the task's result).
    [outcome] = run_queued_tasks(DISCOVER, server.pk)

    assert outcome.startswith("docs could not be reached: Illegal header value")
    assert MASK in outcome and SECRET not in outcome
    server.refresh_from_db()
    assert MASK in server.discovery_problem and SECRET not in server.discovery_problem
    for url in (LIST_URL, change_url(server)):
        assert SECRET not in superuser_client.get(url).content.decode()

    # A turn on a worker's host tries the server too: what it logs and stores is masked.
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(session=session, message="hello", actor=user)
    with caplog.at_level(logging.DEBUG):
        assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED

    # The whole log as written, tracebacks included, libraries' debug traces too.
    assert "MCP server docs could not be started: Illegal header value" in caplog.text
    assert SECRET not in caplog.text
    server.refresh_from_db()
    assert server.discovery_problem.startswith("could not be started: Illegal header value")
    assert SECRET not in server.discovery_problem
    timeline = json.dumps(list(turn.events.values_list("data", flat=True)))
    assert SECRET not in timeline
    assert turn.events.filter(kind=EventKind.ASSISTANT_MESSAGE).exists()
