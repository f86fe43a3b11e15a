"""MCP servers in tests: the test server of ``tests/mcp_servers/slow_server.py`` over stdio or
streamable HTTP, what it logged, and a turn host that lives for a whole test (its connections
outlive a turn, as a worker process's do)."""

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from django.db import connections

from tests.conftest import run_on_host, wait_for
from tests.processes import alive, free_port, stop_or_fail

ROOT = Path(__file__).resolve().parent.parent
SERVER_NAME = "testsrv"
# Bounds how long a broken test waits for a process to start or exit.
PROCESS_TIMEOUT = 30.0


class ServerLog:
    def __init__(self, path: Path):
        self.path = path
        path.touch()

    def entries(self, event: str | None = None) -> list[dict]:
        lines = self.path.read_text().splitlines()
        found = [json.loads(line) for line in lines if line.strip()]
        return [entry for entry in found if event is None or entry["event"] == event]

    def wait_for(self, event: str) -> dict:
        return wait_for(lambda: self.entries(event), timeout=PROCESS_TIMEOUT)[0]

    def pids(self) -> set[int]:
        return {entry["pid"] for entry in self.entries()}

    def assert_every_server_exited(self) -> None:
        pids = self.pids()
        try:
            wait_for(lambda: not alive(pids), timeout=PROCESS_TIMEOUT)
        except AssertionError:
            raise AssertionError(f"MCP server processes still running: {alive(pids)}") from None


def stdio_server(log: ServerLog, name: str = SERVER_NAME) -> dict:
    """An AGENT_MCP_SERVERS entry that runs the test server over stdio."""
    return {
        "name": name,
        "command": sys.executable,
        "args": ["-m", "tests.mcp_servers.slow_server", str(log.path)],
        "env": {"PYTHONPATH": str(ROOT)},
    }


@contextmanager
def http_server(log: ServerLog):
    """The test server over streamable HTTP on loopback; yields its URL. It must exit at the
    end, or the test fails."""
    port = free_port()
    command = [sys.executable, "-m", "tests.mcp_servers.slow_server", str(log.path)]
    with (log.path.parent / "http-server.err").open("wb") as err:
        process = subprocess.Popen(
            [*command, "--http", str(port)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    try:
        wait_for(lambda: _accepts(port, process), timeout=PROCESS_TIMEOUT)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop_or_fail(process, timeout=PROCESS_TIMEOUT, name="MCP test server")


def _accepts(port: int, process: subprocess.Popen) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"the MCP test server exited with {process.returncode}")
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


class HostThread:
    """A turn host on an event loop of its own thread, for the whole test."""

    def __init__(self):
        self.loop: asyncio.AbstractEventLoop | None = None
        self.host = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> "HostThread":
        self._thread.start()
        self._ready.wait(PROCESS_TIMEOUT)
        if self.host is None:
            raise AssertionError(f"the turn host did not start: {self._error!r}")
        return self

    def _serve(self) -> None:
        from sessions_app.runtime.host import TurnHost

        async def serve() -> None:
            self.loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            async with TurnHost(capacity=10) as host:
                self.host = host
                self._ready.set()
                await self._stop.wait()
                await host.finish()

        try:
            asyncio.run(serve())
        except BaseException as exc:
            self._error = exc
        finally:
            connections.close_all()
            self._ready.set()

    def start_turn(self, turn_id: int):
        """Admit the turn; returns a future of how it ends."""
        return asyncio.run_coroutine_threadsafe(run_on_host(self.host, turn_id), self.loop)

    def run_turn(self, turn_id: int) -> str:
        return self.start_turn(turn_id).result(PROCESS_TIMEOUT)

    def connection(self, server: str):
        connections = self.host.mcp.connections
        return connections and connections._connections.get(server)

    def close(self) -> None:
        if self.loop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
        started = time.monotonic()
        self._thread.join(PROCESS_TIMEOUT)
        assert not self._thread.is_alive(), (
            f"the turn host did not close within {time.monotonic() - started:.0f}s"
        )
        if self._error is not None:
            raise self._error
