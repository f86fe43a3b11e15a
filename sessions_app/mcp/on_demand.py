"""The MCP SDK, loaded only where it is used: by a process that talks to an MCP server.

The SDK and what it pulls in (pydantic, starlette, anyio...) take about 25 MB of resident memory
in every process that imports it (a qcluster worker after one turn: 123 MB with it, 99 without).
A web process never talks to a server (the admin's "Discover tools now" asks a worker to, through
the ``discover_mcp_tools`` task), and a worker process talks to one only once a server is enabled
(registered in the admin, or declared in ``AGENT_MCP_SERVERS``). So the one module that imports
the SDK, ``sessions_app.mcp.client``, is imported here, inside the two functions that need it,
and nowhere else: the one exception the layer test allows to its rule of module-level imports.
"""

import asyncio

from sessions_app.mcp import registry
from sessions_app.mcp.tools import McpTool, ServerSpec, describe
from sessions_app.models import McpServer


class HostServers:
    """The MCP servers of a turn host: their tools, offered to its turns, and one connection per
    server, shared by its turns and closed with the host (``client.McpConnections``), made the
    first time a turn starts while a server is enabled."""

    def __init__(self, *, db):
        self._db = db
        self.connections = None

    async def tools_for_turn(self) -> dict[str, McpTool]:
        servers = await self._db(registry.mcp_servers_enabled)
        if not servers:
            return {}
        if self.connections is None:
            from sessions_app.mcp.client import McpConnections

            self.connections = McpConnections(db=self._db)
        return await self.connections.tools_of(servers)

    async def close(self) -> None:
        if self.connections is not None:
            await self.connections.close()


def discover_tools(server_id: int) -> str:
    """Connect to the server once, and cache the tools it lists, or why it could not be reached
    (shown in the admin); returns what happened."""
    from sessions_app.mcp.client import discover

    server = McpServer.objects.filter(pk=server_id).first()
    if server is None:
        return f"MCP server {server_id} is gone"
    spec = ServerSpec.of(server)
    try:
        listed = asyncio.run(discover(spec))
    except Exception as exc:
        problem = f"could not be reached: {describe(exc, spec)}"
        registry.mcp_server_record_problem(name=server.name, problem=problem)
        return f"{server.name} {problem}"
    registry.mcp_server_record_tools(name=server.name, tools=listed)
    return f"{server.name}: {len(listed)} tools discovered."
