"""The connections to MCP servers that a turn host keeps; the one module that imports the SDK.

A host (one worker process) holds one connection per server, opened the first time one of its
turns needs it and shared by all of them. A connection whose server went away is opened again
on the next use; all are closed with the host, and a stdio server's process exits with its
connection. The SDK's sessions live in anyio task groups, which only the task that entered them
may leave, so a task of its own owns each connection; turns only send requests through it.

A server's tools are offered to the model as ``<server>__<tool>``, from the list cached in the
database (``McpServer.tools``): every connection refreshes it with tools/list when it opens, and
a server never discovered is connected to when a turn starts. Without a policy rule, a tool
annotated read-only runs unasked and any other waits for approval.

A stop cancels a call at once: the SDK's ``ClientSession`` then tells the server
(``notifications/cancelled`` on stdio; on streamable HTTP the 2026-07-28 protocol spells it as
closing the request's stream) and the connection stays open for the next call. A call that
outlives ``AGENT_MCP_CALL_TIMEOUT`` is cancelled the same way and becomes a tool error."""

import asyncio
import json
import time
from collections import defaultdict
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

import httpx2
import mcp_types
from django.conf import settings
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from agentproj import tracing
from sessions_app.mcp import registry
from sessions_app.mcp.tools import McpTool, ServerSpec, describe, logger, tools_of
from sessions_app.models import McpServer, McpTransport
from sessions_app.runtime.tools import ProgressRecorder, ToolError

# tools/list pages read from one server; a server that pages without end cannot hang a turn.
MAX_TOOL_PAGES = 50


# How long closing a connection may take: a stdio server gets 2 s to exit once its input
# closes, then SIGTERM and 2 s more, then SIGKILL (the SDK's own escalation).
CLOSE_TIMEOUT = 10.0


# A server that could not be started is not tried again, to list its tools for a new turn,
# until this many seconds have passed: each turn would otherwise wait for it to fail.
UNREACHABLE_FOR = 30.0


CLIENT_INFO = mcp_types.Implementation(name="agentproj", version=version("agentproj"))


def sdk_client(spec: ServerSpec) -> Client:
    """The SDK's client for the server ``spec`` names."""
    if spec.transport == McpTransport.STDIO:
        target = StdioServerParameters(
            command=spec.command, args=list(spec.args), env=dict(spec.env) or None
        )
    else:
        target = _http_transport(spec.url, dict(spec.headers))
    # No response cache: tools/list is asked for when a connection opens, and must answer what
    # the server offers now.
    return Client(target, cache=None, client_info=CLIENT_INFO)


@asynccontextmanager
async def _http_transport(url: str, headers: dict[str, str]):
    # The SDK's own defaults: a response stream may stay open long, so reads wait 5 minutes
    # (AGENT_MCP_CALL_TIMEOUT bounds a call).
    timeout = httpx2.Timeout(30.0, read=300.0)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as http_client,
        streamable_http_client(url, http_client=http_client) as streams,
    ):
        yield streams


def result_text(result: mcp_types.CallToolResult) -> str:
    """What the model gets of a result: its text, and its structured content unless a text part
    already says the same; at most ``AGENT_MCP_MAX_RESULT_CHARS`` characters."""
    parts = []
    for item in result.content:
        if isinstance(item, mcp_types.TextContent):
            parts.append(item.text)
        elif isinstance(item, mcp_types.EmbeddedResource) and isinstance(
            item.resource, mcp_types.TextResourceContents
        ):
            parts.append(item.resource.text)
        elif isinstance(item, mcp_types.ResourceLink):
            parts.append(f"[resource: {item.uri}]")
        else:
            parts.append(f"[{item.type} content left out]")
    structured = result.structured_content
    if structured is not None and not any(_same_json(part, structured) for part in parts):
        parts.append(json.dumps(structured, ensure_ascii=False))
    text = "\n".join(parts) or "(no output)"
    limit = settings.AGENT_MCP_MAX_RESULT_CHARS
    if len(text) > limit:
        text = f"{text[:limit]}\n[cut: the first {limit} of the result's {len(text)} characters]"
    return text


def _same_json(text: str, value: Any) -> bool:
    """Whether a text part already says what the structured content does: its JSON (as the
    spec asks servers to send along), or the plain value that SDKs wrap as {"result": value}."""
    if value == {"result": text}:
        return True
    try:
        return json.loads(text) == value
    except ValueError:
        return False


class Connection:
    """One open session with one server, owned by a task of the host's loop."""

    def __init__(self, spec: ServerSpec):
        self.spec = spec
        self.tools: list[dict[str, Any]] = []
        self.broken = False
        self._client: Client | None = None
        self._closing = asyncio.Event()
        self._owner: asyncio.Task | None = None

    @property
    def usable(self) -> bool:
        return self._client is not None and not self.broken

    async def open(self) -> None:
        """Start the server (or reach it), shake hands and list its tools."""
        opened = asyncio.get_running_loop().create_future()
        self._owner = asyncio.create_task(self._own(opened), name=f"mcp-{self.spec.name}")
        try:
            await asyncio.wait_for(asyncio.shield(opened), settings.AGENT_MCP_CONNECT_TIMEOUT)
        except BaseException:
            # Still opening: nothing to close gracefully. The SDK stops a stdio server's
            # process even when cancelled.
            self._owner.cancel()
            await asyncio.wait({self._owner}, timeout=CLOSE_TIMEOUT)
            raise

    async def _own(self, opened: asyncio.Future) -> None:
        try:
            async with sdk_client(self.spec) as client:
                self.tools = await _list_tools(client)
                self._client = client
                opened.set_result(None)
                await self._closing.wait()
        except Exception as exc:
            if not opened.done():
                opened.set_exception(exc)
            elif not self._closing.is_set():
                logger.warning(
                    "MCP server %s: the connection ended: %s",
                    self.spec.name,
                    describe(exc, self.spec),
                )
        finally:
            self._client = None
            self.broken = True
            if not opened.done():
                opened.cancel()

    async def call(
        self, tool: str, arguments: dict[str, Any], progress_callback
    ) -> mcp_types.CallToolResult:
        client = self._client
        if client is None:
            raise MCPError(code=mcp_types.CONNECTION_CLOSED, message="Connection closed")
        return await client.call_tool(
            tool,
            arguments,
            read_timeout_seconds=settings.AGENT_MCP_CALL_TIMEOUT,
            progress_callback=progress_callback,
        )

    async def close(self) -> None:
        self._closing.set()
        if self._owner is None:
            return
        done, _ = await asyncio.wait({self._owner}, timeout=CLOSE_TIMEOUT)
        if not done:
            logger.warning(
                "MCP server %s: the connection did not close; cancelling it", self.spec.name
            )
            self._owner.cancel()
            await asyncio.wait({self._owner}, timeout=CLOSE_TIMEOUT)


async def _list_tools(client: Client) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = []
    cursor = None
    for _ in range(MAX_TOOL_PAGES):
        page = await client.list_tools(cursor=cursor)
        listed.extend(
            tool.model_dump(
                mode="json",
                by_alias=True,
                exclude_none=True,
                include={"name", "title", "description", "input_schema", "annotations"},
            )
            for tool in page.tools
        )
        cursor = page.next_cursor
        if not cursor:
            break
    return listed


async def discover(spec: ServerSpec) -> list[dict[str, Any]]:
    """Connect once, list the server's tools, and close (the admin's "Discover tools now")."""
    connection = Connection(spec)
    try:
        await connection.open()
        return connection.tools
    finally:
        await connection.close()


class ProgressRelay:
    """A call's progress notifications, recorded in the timeline one at a time, in order.

    The SDK hands each notification to a task of its own, and a server may send many: only the
    latest waiting one is recorded.
    """

    def __init__(self, record: ProgressRecorder):
        self._record = record
        self._latest: dict[str, Any] | None = None
        self._wake = asyncio.Event()
        self._writing: asyncio.Future | None = None
        self._task = asyncio.create_task(self._run())

    async def on_progress(self, progress: float, total: float | None, message: str | None):
        self._latest = {"progress": progress, "total": total, "message": message or ""}
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            latest, self._latest = self._latest, None
            self._writing = asyncio.ensure_future(self._record(latest))
            try:
                await asyncio.shield(self._writing)
            except Exception:
                logger.warning("a tool's progress could not be recorded", exc_info=True)

    async def close(self) -> None:
        """Stop relaying; a write under way lands first, so nothing the turn records after the
        call comes before it."""
        self._task.cancel()
        pending = {task for task in (self._task, self._writing) if task is not None}
        await asyncio.wait(pending)
        if self._writing is not None and not self._writing.cancelled():
            self._writing.exception()


class McpConnections:
    """The MCP connections of one turn host, shared by its turns."""

    def __init__(self, *, db):
        self._db = db
        self._connections: dict[str, Connection] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._unreachable_until: dict[ServerSpec, float] = {}
        self._closed = False

    async def tools_of(self, servers: list[McpServer]) -> dict[str, McpTool]:
        """The tools of ``servers`` (those enabled now), to offer a turn."""
        offered: dict[str, McpTool] = {}
        for server in servers:
            spec = ServerSpec.of(server)
            listed = server.tools
            if server.tools_discovered_at is None:
                if self._unreachable_until.get(spec, 0.0) > time.monotonic():
                    continue
                try:
                    listed = (await self.connection(spec)).tools
                except ToolError as exc:
                    logger.warning("MCP server %s offers no tools now: %s", spec.name, exc)
                    continue
            offered.update(tools_of(spec, listed, connections=self))
        return offered

    async def connection(self, spec: ServerSpec) -> Connection:
        """The host's open connection to the server, opened now if there is none or it broke."""
        async with self._locks[spec.name]:
            current = self._connections.get(spec.name)
            if current is not None and current.usable and current.spec == spec:
                return current
            if current is not None:
                del self._connections[spec.name]
                await current.close()
            if self._closed:
                raise ToolError("This worker is shutting down; the MCP server was not started.")
            connection = Connection(spec)
            try:
                await connection.open()
            except Exception as exc:
                self._unreachable_until[spec] = time.monotonic() + UNREACHABLE_FOR
                if isinstance(exc, TimeoutError):
                    problem = f"did not start within {settings.AGENT_MCP_CONNECT_TIMEOUT:g} s"
                else:
                    problem = f"could not be started: {describe(exc, spec)}"
                logger.warning("MCP server %s %s", spec.name, problem)
                await self._record(
                    registry.mcp_server_record_problem, name=spec.name, problem=problem
                )
                raise ToolError(f"The MCP server {spec.name} {problem}.") from None
            if self._closed:
                await connection.close()
                raise ToolError("This worker is shutting down; the MCP server was not started.")
            self._unreachable_until.pop(spec, None)
            self._connections[spec.name] = connection
            await self._record(
                registry.mcp_server_record_tools, name=spec.name, tools=connection.tools
            )
            return connection

    async def call(
        self,
        spec: ServerSpec,
        tool: str,
        arguments: dict[str, Any],
        *,
        record_progress: ProgressRecorder | None = None,
        trace: tracing.Context,
    ) -> str:
        """Call ``tool``; ``trace``: the call's span. The SDK makes its own span of the request
        under the current context and sends that in the request's ``_meta`` (``traceparent``),
        so the call's span is made current for the request."""
        connection = await self.connection(spec)
        relay = ProgressRelay(record_progress) if record_progress is not None else None
        try:
            with tracing.current(trace):
                result = await connection.call(
                    tool, arguments, relay.on_progress if relay is not None else None
                )
        except MCPError as exc:
            raise self._call_error(connection, exc) from None
        except Exception as exc:
            # Not the traceback: its exception texts may quote a header (``describe`` masks it).
            reason = describe(exc, spec)
            logger.warning(
                "MCP server %s: the call of %s failed: %s: %s",
                spec.name,
                tool,
                type(exc).__name__,
                reason,
            )
            connection.broken = True
            raise ToolError(
                f"The call to the MCP server {spec.name} failed ({reason}); "
                "the server is reconnected for the next call."
            ) from None
        finally:
            if relay is not None:
                await relay.close()
        if result.is_error:
            raise ToolError(result_text(result))
        return result_text(result)

    def _call_error(self, connection: Connection, exc: MCPError) -> ToolError:
        name = connection.spec.name
        if exc.code == mcp_types.REQUEST_TIMEOUT:
            return ToolError(
                f"The MCP server {name} did not answer within "
                f"{settings.AGENT_MCP_CALL_TIMEOUT:g} s; the call was cancelled."
            )
        if exc.code == mcp_types.CONNECTION_CLOSED:
            connection.broken = True
            return ToolError(
                f"The MCP server {name} closed the connection (it may have stopped); "
                "it is started again for the next call."
            )
        return ToolError(
            f"The MCP server {name} refused the call: {connection.spec.mask(exc.message)}"
        )

    async def _record(self, func, **kwargs) -> None:
        try:
            await self._db(func, **kwargs)
        except Exception:
            logger.warning("could not record what the MCP server said", exc_info=True)

    async def close(self) -> None:
        """Close every connection (the host is closing); stdio servers' processes exit."""
        self._closed = True
        connections = list(self._connections.values())
        self._connections.clear()
        await asyncio.gather(*(connection.close() for connection in connections))
