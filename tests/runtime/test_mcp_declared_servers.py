"""AGENT_MCP_SERVERS: its shape is checked when the app starts (a system check names the entry
at fault), and each declared server becomes a read-only row whose secrets stay in the setting."""

import re

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from sessions_app.mcp import registry, tools
from sessions_app.models import McpServer

STDIO = {"name": "time", "command": "python", "args": ["-m", "mcp_server_time"]}


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"command": "x"}, "needs a name"),
        ({"name": "a__b", "command": "x"}, "single underscores"),
        ({"name": "a", "command": "x", "url": "https://x.example"}, "must be"),
        ({"name": "a", "command": "x", "args": "-v"}, "args must be a list of strings"),
        ({"name": "a", "url": "ftp://x.example"}, "url must be an http(s) URL"),
        ({"name": "a", "url": "https://x.example", "headers": {"k": 1}}, "headers must map"),
    ],
)
def test_the_system_check_names_a_wrong_entry(settings, entry, problem):
    settings.AGENT_MCP_SERVERS = [STDIO, entry]

    with pytest.raises(SystemCheckError, match=r"AGENT_MCP_SERVERS\[1\]"):
        call_command("check")
    with pytest.raises(ImproperlyConfigured, match=re.escape(problem)):
        registry.declared_servers()


@pytest.mark.django_db
def test_a_declared_server_keeps_its_secrets_in_the_setting(settings):
    settings.AGENT_MCP_SERVERS = [
        {"name": "remote", "url": "https://mcp.example.com/mcp", "headers": {"X-Key": "secret"}}
    ]

    registry.mcp_server_sync_declared()

    server = McpServer.objects.get(name="remote")
    assert (server.declared, server.headers) == (True, {})
    assert tools.ServerSpec.of(server).headers == (("X-Key", "secret"),)


@pytest.mark.django_db
def test_a_changed_command_forgets_the_cached_tools(settings):
    settings.AGENT_MCP_SERVERS = [STDIO]
    registry.mcp_server_sync_declared()
    registry.mcp_server_record_tools(name="time", tools=[{"name": "get_current_time"}])

    settings.AGENT_MCP_SERVERS = [{**STDIO, "args": ["-m", "mcp_server_time", "--local"]}]
    registry.mcp_server_sync_declared()

    server = McpServer.objects.get(name="time")
    assert server.args == ["-m", "mcp_server_time", "--local"]
    assert (server.tools, server.tools_discovered_at) == ([], None)


@pytest.mark.django_db
def test_a_server_registered_in_the_admin_is_not_taken_over(settings):
    McpServer.objects.create(name="time", transport="stdio", command="mine")
    settings.AGENT_MCP_SERVERS = [STDIO]

    registry.mcp_server_sync_declared()

    server = McpServer.objects.get(name="time")
    assert (server.declared, server.command) == (False, "mine")
