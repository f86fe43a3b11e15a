"""The admin of MCP servers (superusers only): how a server is reached, its secrets (headers,
env) never shown back, and the tools it listed. The form shows the fields of the chosen transport
only (``static/agentproj/mcp_admin.js``)."""

import json
from functools import partial

from django import forms
from django.contrib import admin
from django.db import transaction
from django.forms.widgets import Script
from django.utils.html import format_html, format_html_join
from django_q.tasks import async_task

from agentproj import json_limits
from agentproj.admin_access import SuperuserOnlyAdmin
from agentproj.forms import BOUNDED_JSON_FIELDS
from sessions_app.mcp import registry
from sessions_app.mcp import tools as mcp_tools
from sessions_app.mcp.registry import SECRET_MASK
from sessions_app.models import McpServer, McpTransport

# The class of each transport's fieldset, by transport; mcp_admin.js shows the chosen one's.
TRANSPORT_FIELDSET_CLASS = {transport: f"mcp-transport-{transport}" for transport in McpTransport}


class SecretsField(forms.CharField):
    """An MCP server's ``headers`` or ``env``: a JSON object of names and values that may be
    secrets, written here and never shown back.

    The box shows the stored names, each with ``SECRET_MASK`` for its value: a name left with the
    mask keeps its stored value, a new value replaces it, a name taken out is removed, ``{}``
    removes them all and an empty box keeps everything. A form shown again after an error shows
    the stored names again, never what was sent, and no error quotes a value.
    """

    def __init__(self, *, kind: str, label: str, help_text: str):
        super().__init__(
            label=label,
            required=False,
            strip=False,
            widget=forms.Textarea(attrs={"rows": 3, "cols": 60, "autocomplete": "off"}),
            help_text=help_text
            + f" Values are never shown back: leave {SECRET_MASK} to keep one, type a new one to"
            " replace it, take a name out to remove it; {} removes them all.",
        )
        self.kind = kind
        self.stored: dict[str, str] = {}

    def keep(self, stored: dict[str, str]) -> None:
        """What the server holds now: shown masked, and kept where the mask is left."""
        self.stored = stored
        self.initial = json.dumps(dict.fromkeys(stored, SECRET_MASK), ensure_ascii=False)

    def bound_data(self, data, initial):
        return initial

    def clean(self, value):
        """The names and values to store; None to keep what is stored."""
        value = super().clean(value)
        if not value.strip():
            return None
        try:
            given = json_limits.loads(value)
        except json_limits.InvalidJson as problem:
            beyond = problem.detail in (json_limits.TOO_DEEP, json_limits.NOT_FINITE)
            raise forms.ValidationError(problem.detail if beyond else "Not valid JSON.") from None
        if not isinstance(given, dict) or not all(isinstance(v, str) for v in given.values()):
            raise forms.ValidationError('A JSON object of strings, like {"NAME": "value"}.')
        for name, given_value in given.items():
            if given_value == SECRET_MASK and name not in self.stored:
                raise forms.ValidationError(
                    f"{name!r} has no stored value to keep: type its value."
                )
        secrets = {
            name: self.stored[name] if given_value == SECRET_MASK else given_value
            for name, given_value in given.items()
        }
        problem = registry.secrets_problem(self.kind, secrets)
        if problem:
            raise forms.ValidationError(problem[0].upper() + problem[1:])
        return secrets


class McpServerForm(forms.ModelForm):
    """Environment and headers may hold secrets: written here, never shown back."""

    url = forms.URLField(
        required=False,
        max_length=2000,
        assume_scheme="https",
        help_text="Streamable HTTP: the endpoint.",
    )
    new_env = SecretsField(
        kind="env",
        label="Environment",
        help_text="stdio: a JSON object of variables for the server.",
    )
    new_headers = SecretsField(
        kind="headers",
        label="Headers",
        help_text="Streamable HTTP: a JSON object of request headers.",
    )

    class Meta:
        model = McpServer
        fields = ["name", "transport", "enabled", "command", "args", "url"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["new_env"].keep(self.instance.env)
        self.fields["new_headers"].keep(self.instance.headers)

    def clean(self):
        data = super().clean()
        transport, args = data.get("transport"), data.get("args")
        if args is not None and not (
            isinstance(args, list) and all(isinstance(arg, str) for arg in args)
        ):
            self.add_error("args", 'A JSON list of strings, like ["-m", "mcp_server_time"].')
        if transport == McpTransport.STDIO:
            if not data.get("command"):
                self.add_error("command", "A stdio server needs the command that runs it.")
            if data.get("url") or data.get("new_headers"):
                self.add_error("url", "A stdio server has no URL or headers.")
        elif transport == McpTransport.HTTP:
            if not data.get("url"):
                self.add_error("url", "A streamable HTTP server needs its URL.")
            if data.get("command") or args or data.get("new_env"):
                self.add_error("command", "A streamable HTTP server has no command.")
        return data

    def save(self, commit=True):
        server = super().save(commit=False)
        for field, value in (("env", "new_env"), ("headers", "new_headers")):
            secrets = self.cleaned_data.get(value)
            if secrets is not None and secrets != getattr(server, field):
                setattr(server, field, secrets)
                self.changed_data.append(field)
        # A server moved to the other transport keeps nothing of the one it left: no secret
        # stays stored for a connection it no longer makes (a field the page did not send,
        # hidden with its transport, keeps its stored value otherwise).
        left_behind = (
            {"url": "", "headers": {}}
            if server.transport == McpTransport.STDIO
            else {"command": "", "args": [], "env": {}}
        )
        for field, empty in left_behind.items():
            if getattr(server, field) != empty:
                setattr(server, field, empty)
                self.changed_data.append(field)
        if server.pk and set(self.changed_data) & set(registry.CONNECTION_FIELDS):
            registry.mcp_server_forget_tools(server)
        if commit:
            server.save()
        return server


class McpServerAdmin(SuperuserOnlyAdmin):
    """MCP servers, for superusers only: a server runs commands on the workers' machines.

    Those declared in ``AGENT_MCP_SERVERS`` are listed read-only.
    """

    form = McpServerForm
    formfield_overrides = BOUNDED_JSON_FIELDS
    list_display = [
        "name",
        "transport",
        "target",
        "enabled",
        "declared",
        "tool_count",
        "tools_discovered_at",
        "discovery_problem",
    ]
    list_filter = ["transport", "enabled", "declared"]
    actions = ["discover_tools"]
    readonly_fields = [
        "stored_secrets",
        "declared",
        "tools_discovered_at",
        "discovery_problem",
        "discovered_tools",
    ]

    class Media:
        js = [Script("agentproj/mcp_admin.js", type="module")]

    def get_fieldsets(self, request, obj=None):
        editable = obj is None or not obj.declared
        by_transport = {
            McpTransport.STDIO: (
                "stdio",
                ["command", "args", *(["new_env"] if editable else [])],
            ),
            McpTransport.HTTP: (
                "Streamable HTTP",
                ["url", *(["new_headers"] if editable else [])],
            ),
        }
        # A server shown read-only cannot change its transport: the other one's fields are
        # left out here, where no script is needed to hide them.
        shown = by_transport if editable else {obj.transport: by_transport[obj.transport]}
        return [
            (None, {"fields": ["name", "transport", "enabled", "declared"]}),
            *(
                (title, {"fields": fields, "classes": [TRANSPORT_FIELDSET_CLASS[transport]]})
                for transport, (title, fields) in shown.items()
            ),
            ("Secrets", {"fields": ["stored_secrets"]}),
            (
                "Tools (from tools/list)",
                {"fields": ["tools_discovered_at", "discovery_problem", "discovered_tools"]},
            ),
        ]

    @admin.display(description="command or URL")
    def target(self, server):
        if server.transport == McpTransport.STDIO:
            return " ".join([server.command, *server.args])
        return server.url

    @admin.display(description="tools")
    def tool_count(self, server):
        return len(server.tools) if server.tools_discovered_at else "-"

    @admin.display(description="stored")
    def stored_secrets(self, server):
        if server.declared:
            return "In the environment (AGENT_MCP_SERVERS): not stored here."
        names = [
            f"{what}: {', '.join(sorted(values))}"
            for what, values in (("environment", server.env), ("headers", server.headers))
            if values
        ]
        return "; ".join(names) + " (values hidden)" if names else "none"

    @admin.display(description="tools")
    def discovered_tools(self, server):
        if not server.tools:
            return "none discovered yet"
        return format_html(
            "<table><thead><tr><th>offered as</th><th>description</th><th>annotations</th>"
            "<th>input schema</th></tr></thead><tbody>{}</tbody></table>",
            format_html_join(
                "",
                "<tr><td><code>{}</code></td><td>{}</td><td><pre>{}</pre></td>"
                "<td><pre>{}</pre></td></tr>",
                (
                    (
                        mcp_tools.offered_name(server.name, tool.get("name", "")),
                        tool.get("description", ""),
                        json.dumps(tool.get("annotations", {}), indent=2),
                        json.dumps(tool.get("inputSchema", {}), indent=2),
                    )
                    for tool in server.tools
                ),
            ),
        )

    @admin.action(description="Discover tools now")
    def discover_tools(self, request, queryset):
        # A worker connects: the MCP SDK is not loaded by web processes (mcp.on_demand).
        for server in queryset:
            transaction.on_commit(partial(_enqueue_discovery, server.pk))
            self.message_user(
                request,
                f"{server.name}: tool discovery requested; a worker connects to the server and "
                "lists its tools (reload this page to see them).",
            )

    # A server declared in AGENT_MCP_SERVERS is the environment's: shown, never edited here.
    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and not (
            obj is not None and obj.declared
        )

    def has_delete_permission(self, request, obj=None):
        return self.has_change_permission(request, obj)


def _enqueue_discovery(server_id: int) -> None:
    async_task(
        "sessions_app.tasks.discover_mcp_tools",
        server_id,
        group="mcp",
        q_options={"task_name": f"discover-mcp-{server_id}"},
    )
