"""MCP servers in the admin: superusers only; environment and headers are written but never
shown back; "Discover tools now" asks a worker to cache a server's tools with their schemas and
annotations (web processes never load the MCP SDK); servers declared in AGENT_MCP_SERVERS are
listed read-only."""

import pytest

from sessions_app.mcp import registry
from sessions_app.models import McpServer, McpTransport
from tests.mcp_helpers import ServerLog, stdio_server
from tests.queued_tasks import run_queued_tasks

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

ADD_URL = "/admin/sessions_app/mcpserver/add/"
LIST_URL = "/admin/sessions_app/mcpserver/"
SECRET = "s3cret-value-never-shown"
DISCOVER = "sessions_app.tasks.discover_mcp_tools"


@pytest.fixture
def superuser_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="root-password-1")
    client.force_login(admin)
    return client


def page_messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def change_url(server) -> str:
    return f"/admin/sessions_app/mcpserver/{server.pk}/change/"


def form(**fields) -> dict:
    return {
        "name": "notes",
        "transport": McpTransport.STDIO,
        "enabled": "on",
        "command": "notes-server",
        "args": '["--fast"]',
        "url": "",
        "new_env": "",
        "new_headers": "",
        **fields,
    }


def test_it_stores_the_environment_but_never_shows_it_back(superuser_client):
    response = superuser_client.post(ADD_URL, form(new_env=f'{{"TOKEN": "{SECRET}"}}'))
    assert response.status_code == 302
    server = McpServer.objects.get(name="notes")
    assert server.env == {"TOKEN": SECRET}
    assert server.args == ["--fast"]

    page = superuser_client.get(change_url(server)).content.decode()
    assert SECRET not in page
    assert "environment: TOKEN (values hidden)" in page

    # Left blank, the stored value stays; "{}" clears it.
    superuser_client.post(change_url(server), form(command="notes-server-2"))
    server.refresh_from_db()
    assert (server.command, server.env) == ("notes-server-2", {"TOKEN": SECRET})
    superuser_client.post(change_url(server), form(new_env="{}"))
    server.refresh_from_db()
    assert server.env == {}


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"name": "two__parts"}, "single underscores"),
        ({"command": ""}, "needs the command"),
        ({"transport": McpTransport.HTTP, "command": "", "args": "[]"}, "needs its URL"),
        ({"args": '{"not": "a list"}'}, "A JSON list of strings"),
        ({"new_env": '{"TOKEN": 7}'}, "A JSON object of strings"),
    ],
)
def test_it_refuses_a_server_it_could_not_offer(superuser_client, fields, problem):
    response = superuser_client.post(ADD_URL, form(**fields))

    assert response.status_code == 200
    assert problem in response.content.decode()
    assert not McpServer.objects.exists()


def discover_now(superuser_client, server) -> list[str]:
    """Choose "Discover tools now" for ``server``; returns what the page says."""
    response = superuser_client.post(
        LIST_URL, {"action": "discover_tools", "_selected_action": [server.pk]}, follow=True
    )
    return page_messages(response)


def requested(name: str) -> str:
    return (
        f"{name}: tool discovery requested; a worker connects to the server and lists its "
        "tools (reload this page to see them)."
    )


def test_it_discovers_and_shows_the_tools_now(superuser_client, tmp_path):
    log = ServerLog(tmp_path / "server.log")
    entry = stdio_server(log, name="test")
    server = McpServer.objects.create(
        name="test",
        transport=McpTransport.STDIO,
        command=entry["command"],
        args=entry["args"],
        env=entry["env"],
    )

    assert discover_now(superuser_client, server) == [requested("test")]
    server.refresh_from_db()
    assert server.tools_discovered_at is None

    assert run_queued_tasks(DISCOVER, server.pk) == ["test: 5 tools discovered."]
    server.refresh_from_db()
    listed = {tool["name"]: tool for tool in server.tools}
    assert set(listed) == {"slow", "echo", "wipe", "note", "fail"}
    assert listed["wipe"]["annotations"] == {"readOnlyHint": False, "destructiveHint": True}
    assert "annotations" not in listed["note"]
    assert listed["echo"]["inputSchema"]["required"] == ["text"]
    assert server.tools_discovered_at is not None
    page = superuser_client.get(change_url(server)).content.decode()
    assert "test__wipe" in page
    assert "destructiveHint" in page
    log.assert_every_server_exited()


def test_it_shows_why_a_server_could_not_be_reached(superuser_client):
    server = McpServer.objects.create(
        name="missing", transport=McpTransport.STDIO, command="/nonexistent/mcp-server"
    )

    assert discover_now(superuser_client, server) == [requested("missing")]
    [outcome] = run_queued_tasks(DISCOVER, server.pk)

    assert outcome.startswith("missing could not be reached: ")
    server.refresh_from_db()
    assert server.discovery_problem.startswith("could not be reached")
    assert server.tools_discovered_at is None
    page = superuser_client.get(change_url(server)).content.decode()
    assert "could not be reached" in page


def test_declared_servers_are_listed_read_only(superuser_client, settings):
    settings.AGENT_MCP_SERVERS = [
        {"name": "remote", "url": "https://mcp.example.com/mcp", "headers": {"X-Key": SECRET}}
    ]
    registry.mcp_server_sync_declared()
    server = McpServer.objects.get(name="remote")
    assert (server.declared, server.headers) == (True, {})

    assert "remote" in superuser_client.get(LIST_URL).content.decode()
    page = superuser_client.get(change_url(server))
    assert page.status_code == 200
    assert SECRET not in page.content.decode()
    assert 'name="_save"' not in page.content.decode()
    superuser_client.post(change_url(server), form(name="remote", command="other"))
    server.refresh_from_db()
    assert server.url == "https://mcp.example.com/mcp"

    settings.AGENT_MCP_SERVERS = []
    registry.mcp_server_sync_declared()
    assert not McpServer.objects.filter(name="remote").exists()


def test_only_superusers_see_mcp_servers(client, django_user_model):
    staff = django_user_model.objects.create_user("staff", password="staff-password-1")
    staff.is_staff = True
    staff.save()
    client.force_login(staff)

    assert client.get(LIST_URL).status_code == 403
    assert client.get(ADD_URL).status_code == 403
