"""The admin forms that decide what runs: an MCP server's form shows the chosen transport's fields
only (its script hides the other transport's fieldset) and the server still refuses the other
transport's fields; a policy rule's tool is picked from the built-in and discovered MCP tools."""

import pytest

from approvals_app.models import Outcome, PolicyRule
from sessions_app import tasks
from sessions_app.mcp import registry
from sessions_app.models import McpServer, McpTransport
from tests.html_tree import Element, parse
from tests.mcp_helpers import ServerLog, stdio_server

pytestmark = pytest.mark.django_db

MCP_ADD = "/admin/sessions_app/mcpserver/add/"
RULE_ADD = "/admin/approvals_app/policyrule/add/"
SCRIPT = "/static/agentproj/mcp_admin.js"


def mcp_change(server: McpServer) -> str:
    return f"/admin/sessions_app/mcpserver/{server.pk}/change/"


def rule_change(rule: PolicyRule) -> str:
    return f"/admin/approvals_app/policyrule/{rule.pk}/change/"


def page(response) -> Element:
    assert response.status_code == 200
    return parse(response.content.decode())


def transport_fieldsets(tree: Element) -> dict[str, set[str]]:
    """The names of the fields in each transport's fieldset, by the class the script reads."""
    return {
        transport: {
            field.attrs["name"]
            for fieldset in tree.by_class(f"mcp-transport-{transport}")
            for field in fieldset.elements()
            if field.tag in ("input", "textarea", "select")
            # Django's hidden copy of a default ("initial-args") goes with its field.
            and not field.attrs.get("name", "initial-").startswith("initial-")
        }
        for transport in McpTransport.values
    }


def mcp_form(**fields) -> dict:
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


def test_the_mcp_form_puts_each_transport_in_a_fieldset_its_script_toggles(admin_client):
    tree = page(admin_client.get(MCP_ADD))

    assert transport_fieldsets(tree) == {
        McpTransport.STDIO: {"command", "args", "new_env"},
        McpTransport.HTTP: {"url", "new_headers"},
    }
    assert all(fieldset.tag == "fieldset" for fieldset in tree.by_class("mcp-transport-stdio"))
    scripts = [e.attrs for e in tree.elements() if e.tag == "script" and "src" in e.attrs]
    assert {"src": SCRIPT, "type": "module"} in scripts


def test_a_declared_server_shows_its_own_transport_only(admin_client, settings):
    settings.AGENT_MCP_SERVERS = [{"name": "remote", "url": "https://mcp.example.com/mcp"}]
    registry.mcp_server_sync_declared()
    server = McpServer.objects.get(name="remote")

    tree = page(admin_client.get(mcp_change(server)))

    assert tree.by_class("mcp-transport-http")
    assert not tree.by_class("mcp-transport-stdio")
    assert "https://mcp.example.com/mcp" in tree.visible_text


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (
            {"transport": McpTransport.HTTP, "url": "https://mcp.example.com/mcp"},
            "A streamable HTTP server has no command.",
        ),
        ({"url": "https://mcp.example.com/mcp"}, "A stdio server has no URL or headers."),
    ],
    ids=["http-with-a-command", "stdio-with-a-url"],
)
def test_it_refuses_the_other_transports_fields(admin_client, fields, problem):
    response = admin_client.post(MCP_ADD, mcp_form(**fields))

    assert problem in page(response).visible_text
    assert not McpServer.objects.exists()


def test_a_server_moved_to_http_keeps_nothing_of_stdio(admin_client):
    server = McpServer.objects.create(
        name="notes",
        transport=McpTransport.STDIO,
        command="notes-server",
        args=["--fast"],
        env={"TOKEN": "s3cret-value"},
    )
    # What the page sends once the script has hidden (and so disabled) the stdio fields.
    sent = {
        "name": "notes",
        "transport": McpTransport.HTTP,
        "enabled": "on",
        "url": "https://mcp.example.com/mcp",
        "new_headers": '{"Authorization": "Bearer t0ken-value"}',
    }

    assert admin_client.post(mcp_change(server), sent).status_code == 302

    server.refresh_from_db()
    assert (server.transport, server.url) == (McpTransport.HTTP, "https://mcp.example.com/mcp")
    assert (server.command, server.args, server.env) == ("", [], {})
    assert server.headers == {"Authorization": "Bearer t0ken-value"}


def tool_select(tree: Element) -> Element:
    (select,) = [e for e in tree.elements() if e.tag == "select" and e.attrs["name"] == "tool_name"]
    return select


def tool_choices(tree: Element) -> dict[str, list[str]]:
    """The policy rule form's tool select: its option values by option group."""
    return {
        group.attrs["label"]: [option.attrs["value"] for option in group.elements()]
        for group in tool_select(tree).elements()
        if group.tag == "optgroup"
    }


def rule_form(**fields) -> dict:
    return {
        "name": "Mail to the team only",
        "tool_name": "send_email",
        "agent": "",
        "position": "0",
        "field": "",
        "operator": "",
        "value": "",
        "outcome": Outcome.DENY,
        "group": "",
        "quorum": "1",
        "allow_self_approval": "on",
        **fields,
    }


def test_a_rule_picks_its_tool_among_built_in_and_discovered_mcp_tools(admin_client, tmp_path):
    entry = stdio_server(ServerLog(tmp_path / "server.log"), name="test")
    server = McpServer.objects.create(
        name="test",
        transport=McpTransport.STDIO,
        command=entry["command"],
        args=entry["args"],
        env=entry["env"],
    )
    # As a worker runs the server page's "Discover tools now".
    assert tasks.discover_mcp_tools(server.pk) == "test: 5 tools discovered."

    choices = tool_choices(page(admin_client.get(RULE_ADD)))

    assert {"get_time", "send_email"} <= set(choices["Built-in tools"])
    assert "test__wipe" in choices["MCP servers' tools"]
    response = admin_client.post(RULE_ADD, rule_form(tool_name="test__wipe"))
    assert response.status_code == 302
    assert PolicyRule.objects.get().tool_name == "test__wipe"


def test_a_rule_refuses_a_tool_nobody_offers(admin_client):
    response = admin_client.post(RULE_ADD, rule_form(tool_name="launch_rockets"))

    assert "Select a valid choice" in page(response).visible_text
    assert not PolicyRule.objects.exists()


def test_a_rule_keeps_a_tool_no_longer_offered(admin_client):
    rule = PolicyRule.objects.create(
        name="Old server", tool_name="gone__wipe", outcome=Outcome.REQUIRE_APPROVAL
    )

    tree = page(admin_client.get(rule_change(rule)))

    assert tool_choices(tree)["No longer offered"] == ["gone__wipe"]
    (chosen,) = [e for e in tool_select(tree).elements() if "selected" in e.attrs]
    assert chosen.attrs["value"] == "gone__wipe"
    response = admin_client.post(rule_change(rule), rule_form(tool_name="gone__wipe", position="3"))
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.tool_name, rule.position) == ("gone__wipe", 3)
