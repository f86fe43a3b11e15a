"""Tools that exist only for tests, registered through ``settings.AGENT_TOOLS``.

They keep a log of what happened to them (started, saw the stop, finished, cancelled) so that a
test asserts the order of things rather than how long they took. Instead of sleeping a fixed
time they wait for the turn's stop (its row says ``stopping``, as a Stop writes it), bounded so
that a broken runtime cannot hang a test. The agent loop runs in threads of the test process, so
the log is shared with the test.
"""

import asyncio
import threading
from typing import Any, ClassVar

from asgiref.sync import sync_to_async
from django.db import connections

from agentproj.vocabulary import TurnStatus
from sessions_app.models import Turn
from sessions_app.runtime.tools import Tool

WAIT_BOUND = 15.0

LABEL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"label": {"type": "string", "minLength": 1}},
    "required": ["label"],
    "additionalProperties": False,
}


class ToolLog:
    def __init__(self):
        self._lock = threading.Lock()
        self._entries: list[tuple[str, str]] = []

    def add(self, label: str, what: str) -> None:
        with self._lock:
            self._entries.append((label, what))

    def of(self, label: str) -> list[str]:
        with self._lock:
            return [what for entry_label, what in self._entries if entry_label == label]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


tool_log = ToolLog()


class SlowTool(Tool):
    """Non-interruptible: runs until the turn is asked to stop, then finishes its work anyway."""

    name = "slow_tool"
    description = "Test tool: slow work that must not be abandoned half-way."
    parameters: ClassVar[dict[str, Any]] = LABEL_SCHEMA
    interruptible = False

    async def run(self, arguments, context):
        label = arguments["label"]
        tool_log.add(label, "started")
        try:
            try:
                await asyncio.wait_for(_stop_requested(context.turn_id), WAIT_BOUND)
                tool_log.add(label, "saw_stop")
            except TimeoutError:
                tool_log.add(label, "no_stop_seen")
            # The rest of the work, after the stop is known: a runtime that cancelled this tool
            # would interrupt it here.
            for _ in range(5):
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            tool_log.add(label, "cancelled")
            raise
        tool_log.add(label, "finished")
        return f"slow_tool {label} finished"


class SlowInterruptibleTool(Tool):
    """Interruptible: would run for a long time; a stop must cancel it."""

    name = "slow_interruptible_tool"
    description = "Test tool: slow work that may be abandoned."
    parameters: ClassVar[dict[str, Any]] = LABEL_SCHEMA
    interruptible = True

    async def run(self, arguments, context):
        label = arguments["label"]
        tool_log.add(label, "started")
        try:
            await asyncio.sleep(WAIT_BOUND)
        except asyncio.CancelledError:
            tool_log.add(label, "cancelled")
            raise
        tool_log.add(label, "finished")
        return f"slow_interruptible_tool {label} finished"


async def _stop_requested(turn_id: int) -> None:
    while not await sync_to_async(_is_stopping, thread_sensitive=False)(turn_id):
        await asyncio.sleep(0.01)


def _is_stopping(turn_id: int) -> bool:
    try:
        return Turn.objects.filter(pk=turn_id, status=TurnStatus.STOPPING).exists()
    finally:
        connections.close_all()


TEST_TOOL_PATHS = [
    "tests.tools_for_tests.SlowTool",
    "tests.tools_for_tests.SlowInterruptibleTool",
]
