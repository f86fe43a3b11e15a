"""The MCP SDK costs every process that loads it about 25 MB: a web process never loads it (the
admin's "Discover tools now" asks a worker), and a worker's turn host loads it only once an MCP
server is enabled. Each case runs in a process of its own, which loads what it needs and no more.
"""

import json
import subprocess
import sys

import pytest

from agentproj.vocabulary import TurnStatus
from sessions_app.core import lifecycle, sessions
from tests.conftest import ROOT, subprocess_env
from tests.mcp_helpers import PROCESS_TIMEOUT, ServerLog, stdio_server

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

WEB_PROCESS = """
import json, sys, django
django.setup()
import agentproj.asgi, agentproj.urls
print(json.dumps({"mcp_sdk_loaded": "mcp" in sys.modules}))
"""

TURN_HOST = """
import asyncio, json, sys, django
django.setup()
from sessions_app.runtime.host import TurnHost

async def run(turn_id):
    async with TurnHost(capacity=1) as host:
        hosted = await host.admit(turn_id)
        return await hosted.task

outcome = asyncio.run(run(int(sys.argv[1])))
print(json.dumps({"outcome": outcome, "mcp_sdk_loaded": "mcp" in sys.modules}))
"""


def run_python(script: str, *args: str, **env: str) -> dict:
    finished = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=subprocess_env(**env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
    )
    assert finished.returncode == 0, finished.stderr
    return json.loads(finished.stdout.splitlines()[-1])


def test_a_web_process_with_its_admin_never_loads_it():
    assert run_python(WEB_PROCESS) == {"mcp_sdk_loaded": False}


def test_a_turn_host_without_an_mcp_server_never_loads_it(llm, user, settings):
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(session=session, message="hello", actor=user)

    ran = run_python(TURN_HOST, str(turn.pk), LLM_BASE_URL=settings.LLM_BASE_URL)

    assert ran == {"outcome": TurnStatus.COMPLETED, "mcp_sdk_loaded": False}


def test_a_turn_host_loads_it_once_a_server_is_declared(llm, user, settings, tmp_path):
    log = ServerLog(tmp_path / "server.log")
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(session=session, message="hello", actor=user)

    ran = run_python(
        TURN_HOST,
        str(turn.pk),
        LLM_BASE_URL=settings.LLM_BASE_URL,
        AGENT_MCP_SERVERS=json.dumps([stdio_server(log)]),
    )

    assert ran == {"outcome": TurnStatus.COMPLETED, "mcp_sdk_loaded": True}
    # The turn was offered the server's tools, listed over the connection its host opened.
    assert "testsrv__echo" in {tool["function"]["name"] for tool in llm.requests[0].body["tools"]}
    log.assert_every_server_exited()
