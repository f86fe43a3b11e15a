"""MCP servers as data: the servers declared in ``AGENT_MCP_SERVERS``, and the one module that
writes ``McpServer`` rows.

A declared server gets a row too (``declared``), kept in step with the setting, so that its
discovered tools are cached and shown in the admin like those of a server registered there. Its
``env`` and ``headers`` stay in the environment: the row keeps them empty.
"""

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.utils import timezone

from agentproj.validators import text_problem
from sessions_app.models import MCP_SERVER_NAME_MAX_LENGTH, McpServer, McpTransport, mcp_server_name

logger = logging.getLogger(__name__)

# Fields that say how to reach a server: a change makes its cached tools unknown again.
CONNECTION_FIELDS = ("transport", "command", "args", "env", "url", "headers")
# Shown instead of a header's or an environment variable's value, wherever one would be.
SECRET_MASK = "••••"
# An HTTP header's name is a token (RFC 9110, section 5.6.2).
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


@dataclass(frozen=True)
class DeclaredServer:
    name: str
    transport: str
    command: str = ""
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)


def declared_servers() -> dict[str, DeclaredServer]:
    """``AGENT_MCP_SERVERS`` by name; ``ImproperlyConfigured`` names an entry that is wrong."""
    entries = settings.AGENT_MCP_SERVERS
    if not isinstance(entries, list):
        raise ImproperlyConfigured("AGENT_MCP_SERVERS must be a JSON list of servers.")
    servers: dict[str, DeclaredServer] = {}
    for position, entry in enumerate(entries):
        server = _declared(entry, position)
        if server.name in servers:
            raise ImproperlyConfigured(f"AGENT_MCP_SERVERS names {server.name!r} twice.")
        servers[server.name] = server
    return servers


def _declared(entry: Any, position: int) -> DeclaredServer:
    where = f"AGENT_MCP_SERVERS[{position}]"
    if not isinstance(entry, dict):
        raise ImproperlyConfigured(f"{where} must be an object.")
    name = entry.get("name")
    if not isinstance(name, str) or len(name) > MCP_SERVER_NAME_MAX_LENGTH:
        raise ImproperlyConfigured(
            f"{where} needs a name of at most {MCP_SERVER_NAME_MAX_LENGTH} characters."
        )
    try:
        mcp_server_name(name)
    except ValidationError:
        raise ImproperlyConfigured(
            f"{where}: the name {name!r} may hold letters, digits, hyphens and single "
            "underscores between them."
        ) from None
    stdio_keys, http_keys = {"name", "command", "args", "env"}, {"name", "url", "headers"}
    if "command" in entry and "url" not in entry and set(entry) <= stdio_keys:
        command, args, env = entry["command"], entry.get("args", []), entry.get("env", {})
        if not isinstance(command, str) or not command:
            raise ImproperlyConfigured(f"{where}: command must be a non-empty string.")
        if not _strings(args):
            raise ImproperlyConfigured(f"{where}: args must be a list of strings.")
        if not _string_map(env):
            raise ImproperlyConfigured(f"{where}: env must map names to strings.")
        _check_secrets(where, "env", env)
        return DeclaredServer(
            name=name, transport=McpTransport.STDIO, command=command, args=args, env=env
        )
    if "url" in entry and set(entry) <= http_keys:
        url, headers = entry["url"], entry.get("headers", {})
        try:
            URLValidator(schemes=["http", "https"])(url)
        except ValidationError:
            raise ImproperlyConfigured(f"{where}: url must be an http(s) URL.") from None
        if not _string_map(headers):
            raise ImproperlyConfigured(f"{where}: headers must map names to strings.")
        _check_secrets(where, "headers", headers)
        return DeclaredServer(name=name, transport=McpTransport.HTTP, url=url, headers=headers)
    raise ImproperlyConfigured(
        f'{where} must be {{"name", "command", "args"?, "env"?}} (stdio) or '
        '{"name", "url", "headers"?} (streamable HTTP).'
    )


def secrets_problem(kind: str, secrets: dict[str, str]) -> str:
    """Why a server's ``headers`` or ``env`` (``kind``) cannot be used as they are, naming the
    entry but never its value, which may be a secret; "" when they can.

    No name or value holds a line break or another control character (they would forge lines in
    a request or a log, and a library refusing one quotes the value in its error); a header's
    name is a token and its value does not start or end with a space, which HTTP refuses too.
    """
    for name, value in secrets.items():
        # Escaped, never raw: a name is no secret, but is shown wherever the problem is.
        shown = repr(name)
        if kind == "headers":
            if not HEADER_NAME.fullmatch(name):
                return f"{shown} is not a header name (letters, digits and !#$%&'*+-.^_`|~)."
        elif not name or "=" in name or text_problem(name, one_line=True):
            return f"{shown} is not an environment variable name."
        problem = text_problem(value, one_line=True)
        if problem:
            return f"the value of {shown}: {problem}"
        if kind == "headers" and value != value.strip(" \t"):
            return f"the value of {shown} starts or ends with a space."
    return ""


def _check_secrets(where: str, kind: str, secrets: dict[str, str]) -> None:
    problem = secrets_problem(kind, secrets)
    if problem:
        raise ImproperlyConfigured(f"{where}: {kind}: {problem}")


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _string_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(item, str) for item in value.values())


def mcp_server_sync_declared() -> None:
    """Make the declared servers' rows match ``AGENT_MCP_SERVERS``: add, update, remove.

    Every worker's host and every ``migrate`` does this; it writes only what differs, and two
    processes doing it at once end in the same rows.
    """
    declared = declared_servers()
    try:
        with transaction.atomic():
            McpServer.objects.filter(declared=True).exclude(name__in=declared).delete()
            existing = {server.name: server for server in McpServer.objects.all()}
            for spec in declared.values():
                _sync_one(existing.get(spec.name), spec)
    except IntegrityError:
        logger.info("another process synced the declared MCP servers at the same time")


def _sync_one(server: McpServer | None, spec: DeclaredServer) -> None:
    wanted = {
        "transport": spec.transport,
        "command": spec.command,
        "args": spec.args,
        "env": {},
        "url": spec.url,
        "headers": {},
        "enabled": True,
    }
    if server is None:
        McpServer.objects.create(name=spec.name, declared=True, **wanted)
        return
    if not server.declared:
        logger.warning(
            "AGENT_MCP_SERVERS declares %r, which is registered in the admin: the admin's stands",
            spec.name,
        )
        return
    changed = [name for name, value in wanted.items() if getattr(server, name) != value]
    if not changed:
        return
    for name in changed:
        setattr(server, name, wanted[name])
    if set(changed) & set(CONNECTION_FIELDS):
        mcp_server_forget_tools(server)
        changed += ["tools", "tools_discovered_at", "discovery_problem"]
    server.save(update_fields=[*changed, "updated_at"])


def mcp_server_forget_tools(server: McpServer) -> None:
    """Its tools are unknown again (it is reached another way now); the next turn that may use
    it discovers them. Sets the fields; the caller saves."""
    server.tools = []
    server.tools_discovered_at = None
    server.discovery_problem = ""


def mcp_server_record_tools(*, name: str, tools: list[dict[str, Any]]) -> None:
    """What tools/list answered, when a connection to the server opened."""
    McpServer.objects.filter(name=name).update(
        tools=tools,
        tools_discovered_at=timezone.now(),
        discovery_problem="",
        updated_at=timezone.now(),
    )


def mcp_server_record_problem(*, name: str, problem: str) -> None:
    """Why the server could not be reached; shown in the admin."""
    McpServer.objects.filter(name=name).update(
        discovery_problem=problem[:2000], updated_at=timezone.now()
    )


def mcp_servers_enabled() -> list[McpServer]:
    """The MCP servers whose tools turns are offered, with their cached tool lists."""
    return list(McpServer.objects.filter(enabled=True).order_by("name"))
