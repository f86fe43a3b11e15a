"""MCP servers' tools as the model is offered them (``<server>__<tool>``), built from the lists
cached in the database, and how to reach each server (``ServerSpec``, whose secrets never show).

Nothing here imports the MCP SDK: a web process checks an approver's edit of an MCP call with
these, and only a worker that runs a turn opens a connection (``sessions_app.mcp.client``)."""

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from agentproj.validators import FORBIDDEN, LINE_BREAKS, NOT_FOR_READERS
from sessions_app.mcp import registry
from sessions_app.models import McpServer
from sessions_app.runtime.tools import Tool

logger = logging.getLogger(__name__)


SEPARATOR = "__"


# The model API's rule for a function's name.
OFFERED_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


# Values shorter than this are not masked: a flag such as "1" is no secret, and masking it would
# garble every number in a reason. A word of a value at least MASKED_WORD_MIN long is masked
# wherever it appears alone (the token after "Bearer"); shorter words only within the value.
MASKED_VALUE_MIN = 4


MASKED_WORD_MIN = 8


# What a reason may not hold where it is logged, stored and shown: text a person reads, one line.
_NOT_SHOWN = re.compile(rf"[{FORBIDDEN}{NOT_FOR_READERS}{LINE_BREAKS}]+")


@dataclass(frozen=True)
class ServerSpec:
    """How to reach one server; a live connection is reused only while its spec is the same.

    ``env`` and ``headers`` may hold secrets: left out of its repr, and masked (``mask``) in any
    text about the server that is logged, stored or shown.
    """

    name: str
    transport: str
    command: str = ""
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    url: str = ""
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @classmethod
    def of(cls, server: McpServer) -> "ServerSpec":
        env, headers = server.env, server.headers
        if server.declared:
            declared = registry.declared_servers().get(server.name)
            if declared is not None:
                env, headers = declared.env, declared.headers
        return cls(
            name=server.name,
            transport=server.transport,
            command=server.command,
            args=tuple(str(arg) for arg in server.args),
            env=tuple(sorted(env.items())),
            url=server.url,
            headers=tuple(sorted(headers.items())),
        )

    def mask(self, text: str) -> str:
        """``text`` with each header and environment value in it masked, as it stands and as a
        library quotes it (h11: ``Illegal header value b'…'``), and with each long word of one
        (a token after "Bearer"), longest first."""
        quoted = set()
        for _, value in (*self.env, *self.headers):
            words = [word for word in value.split() if len(word) >= MASKED_WORD_MIN]
            for secret in (value, value.strip(), *words):
                if len(secret) >= MASKED_VALUE_MIN:
                    quoted |= {secret, repr(secret)[1:-1], repr(secret.encode())[2:-1]}
        for secret in sorted(quoted, key=len, reverse=True):
            text = text.replace(secret, registry.SECRET_MASK)
        return text


def offered_name(server: str, tool: str) -> str:
    return f"{server}{SEPARATOR}{tool}"


class McpTool(Tool):
    """One tool of one server, as the model is offered it."""

    # A stop cancels the call and the server is told; nothing is left running here.
    interruptible = True

    def __init__(self, *, server: ServerSpec, listed: dict[str, Any], connections=None):
        self.server = server
        self.remote_name = listed["name"]
        self.name = offered_name(server.name, self.remote_name)
        self.description = listed.get("description") or (
            f"{self.remote_name}, a tool of the MCP server {server.name}."
        )
        self.parameters = listed.get("inputSchema") or {"type": "object"}
        self.read_only = (listed.get("annotations") or {}).get("readOnlyHint") is True
        self.needs_approval = not self.read_only
        # A sub-agent cannot wait for a person.
        self.for_sub_agents = self.read_only
        self._connections = connections

    def validate(self, arguments: Any) -> None:
        try:
            super().validate(arguments)
        except jsonschema.SchemaError:
            # The server's schema is not one we can check against: the server checks.
            return

    async def run(self, arguments, context):
        return await self._connections.call(
            self.server,
            self.remote_name,
            arguments,
            record_progress=context.record_progress,
            trace=context.trace,
        )


def tools_of(
    server: ServerSpec, listed: list[dict[str, Any]], connections=None
) -> dict[str, McpTool]:
    """The server's listed tools whose offered names fit the model API's rule."""
    offered = {}
    for entry in listed:
        name = offered_name(server.name, entry.get("name", ""))
        if not OFFERED_NAME.match(name):
            logger.warning("MCP tool %r cannot be offered: its name breaks the model's rule", name)
            continue
        offered[name] = McpTool(server=server, listed=entry, connections=connections)
    return offered


def cached_tool(name: str) -> McpTool | None:
    """An MCP tool by its offered name, from the cached lists (for checking an approver's
    edited arguments; it cannot run)."""
    server_name, separator, _ = name.partition(SEPARATOR)
    if not separator:
        return None
    server = McpServer.objects.filter(name=server_name, enabled=True).first()
    if server is None:
        return None
    return tools_of(ServerSpec.of(server), server.tools).get(name)


def cached_tool_names() -> list[str]:
    """The offered names of the tools every registered server last listed, enabled or not: a
    policy rule for a server's tools is best written before the server is enabled."""
    offered = (
        offered_name(server.name, listed.get("name", ""))
        for server in McpServer.objects.only("name", "tools")
        for listed in server.tools
    )
    return sorted(name for name in offered if OFFERED_NAME.match(name))


def describe(exc: BaseException, spec: ServerSpec) -> str:
    """A short reason from what opening a connection or a call raised (often an anyio exception
    group), fit to log, store and show: the server's secrets masked, on one line, no controls."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return _NOT_SHOWN.sub(" ", spec.mask(str(exc))).strip() or type(exc).__name__
