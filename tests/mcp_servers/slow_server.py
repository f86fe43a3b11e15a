"""A test MCP server written with the SDK: ``python -m tests.mcp_servers.slow_server LOG
[--http PORT]`` serves over stdio, or over streamable HTTP on 127.0.0.1:PORT.

Its tools:
- ``slow`` (read-only): reports progress, then would work for 10 s; it logs when it starts and
  when it is cancelled, with the request id;
- ``echo`` (read-only): answers its text at once, and logs the ``traceparent`` of its ``_meta``;
- ``wipe`` (destructive) and ``note`` (no annotations): answer at once;
- ``fail``: answers with ``isError``.

LOG gets one JSON object a line, with the server's pid: ``{"event": "serving" | "started" |
"cancelled" | "cancel_notification" | "finished" | ... | "stopped", "request": <id>, ...}``, so
that a test asserts what the server saw, and that every server process it caused has exited
("stopped": it ended by itself, its client having closed the connection, rather than killed).
"""

import argparse
import json
import os
from pathlib import Path

import anyio
import mcp_types as types
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

SLOW_SECONDS = 10.0

server = MCPServer("agentproj-test")
log_path: Path | None = None


def log(event: str, **data) -> None:
    with log_path.open("a") as out:
        out.write(json.dumps({"event": event, "pid": os.getpid(), **data}) + "\n")


@server.tool(annotations=types.ToolAnnotations(read_only_hint=True))
async def slow(label: str, ctx: Context) -> str:
    """Slow read-only work: progress first, then 10 seconds."""
    request = ctx.request_id
    # Over HTTP, the header a server's registration sets on every request.
    token = (ctx.headers or {}).get("x-test-token")
    log("started", request=request, label=label, token=token)
    try:
        await ctx.report_progress(1, 10, f"{label}: warming up")
        await anyio.sleep(SLOW_SECONDS)
    except anyio.get_cancelled_exc_class():
        log("cancelled", request=request, label=label)
        raise
    log("finished", request=request, label=label)
    return f"slow {label} finished"


@server.tool(annotations=types.ToolAnnotations(read_only_hint=True))
def echo(text: str, ctx: Context) -> str:
    """Answers its text."""
    # The trace context the client sent along in the request's _meta.
    meta = ctx.request_context.meta or {}
    log("echo", text=text, traceparent=meta.get("traceparent"))
    return f"echo: {text}"


@server.tool(annotations=types.ToolAnnotations(read_only_hint=False, destructive_hint=True))
def wipe(target: str) -> str:
    """Destructive: wipes the target."""
    log("wipe", target=target)
    return f"wiped {target}"


@server.tool()
def note(text: str) -> str:
    """No annotations: writes a note."""
    log("note", text=text)
    return f"noted {text}"


@server.tool(annotations=types.ToolAnnotations(read_only_hint=True))
def fail(reason: str) -> str:
    """Always fails, with the reason."""
    raise ToolError(f"failed: {reason}")


async def on_cancelled(ctx, params: types.CancelledNotificationParams) -> None:
    log("cancel_notification", request=params.request_id, reason=params.reason)


server._lowlevel_server.add_notification_handler(
    "notifications/cancelled", types.CancelledNotificationParams, on_cancelled
)


def main() -> None:
    global log_path
    parser = argparse.ArgumentParser()
    parser.add_argument("log", type=Path)
    parser.add_argument("--http", type=int, metavar="PORT")
    options = parser.parse_args()
    log_path = options.log
    log("serving", transport="http" if options.http else "stdio")
    if options.http:
        server.run("streamable-http", host="127.0.0.1", port=options.http)
    else:
        server.run("stdio")
    log("stopped")


if __name__ == "__main__":
    main()
