"""A real MCP server from PyPI (mcp-server-time over stdio), declared in AGENT_MCP_SERVERS for a
real worker process: the demo model calls its tool by name, the answer reaches the model and the
timeline, and the server's process exits with the worker."""

import json
import sys

import pytest

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app.models import McpServer
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

# A worker process takes a few seconds to start; bounds how long a broken test waits.
WORKER_TIMEOUT = 90
TERMINAL = {TurnStatus.COMPLETED, TurnStatus.STOPPED, TurnStatus.FAILED}
TIME_SERVER = {"name": "time", "command": sys.executable, "args": ["-m", "mcp_server_time"]}


def _events(api, session_id, kind: str) -> list[dict]:
    results = api.get(f"/api/sessions/{session_id}/events/").json()["results"]
    return [event for event in results if event["kind"] == kind]


def test_the_model_gets_the_time_in_tokyo_from_mcp_server_time(llm, api, worker_process):
    worker_process(AGENT_MCP_SERVERS=json.dumps([TIME_SERVER]))
    session_id = api.post("/api/sessions/", {}, format="json").json()["id"]

    started = api.post(
        f"/api/sessions/{session_id}/turns/",
        {"message": 'call time__get_current_time {"timezone": "Asia/Tokyo"}'},
        format="json",
    )

    assert started.status_code == 202
    turn_url = f"/api/sessions/{session_id}/turns/{started.json()['id']}/"
    wait_for(lambda: api.get(turn_url).json()["status"] in TERMINAL, timeout=WORKER_TIMEOUT)
    assert api.get(turn_url).json()["status"] == TurnStatus.COMPLETED
    [call] = _events(api, session_id, EventKind.TOOL_CALL)
    assert call["data"]["tool"] == "time__get_current_time"
    assert call["data"]["arguments"] == {"timezone": "Asia/Tokyo"}
    # Annotated read-only: no rule, no approval.
    assert call["data"]["policy"]["outcome"] == "allow"
    [result] = _events(api, session_id, EventKind.TOOL_RESULT)
    assert result["data"]["ok"] is True
    answer = json.loads(result["data"]["result"])
    assert answer["timezone"] == "Asia/Tokyo"
    assert answer["datetime"].endswith("+09:00")
    told = llm.requests[-1].body["messages"][-1]
    assert (told["role"], told["content"]) == ("tool", result["data"]["result"])
    [answer_event] = [
        e for e in _events(api, session_id, EventKind.ASSISTANT_MESSAGE) if e["seq"] > result["seq"]
    ]
    assert "Asia/Tokyo" in answer_event["data"]["text"]

    server = McpServer.objects.get(name="time")
    assert server.declared
    listed = {tool["name"]: tool for tool in server.tools}
    assert listed["get_current_time"]["annotations"]["readOnlyHint"] is True
    assert "timezone" in listed["get_current_time"]["inputSchema"]["properties"]
    assert server.tools_discovered_at is not None
