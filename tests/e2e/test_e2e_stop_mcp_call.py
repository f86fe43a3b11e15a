"""A user asks for a slow MCP tool and presses Stop mid-call: the server's progress shows on the
call while it runs, then the turn stops at once with one notice, and the server was told."""

import json
import sys

import pytest
from playwright.sync_api import expect

from agentproj.vocabulary import EventKind, TurnStatus
from tests.e2e.browser import chip, interrupt_notices, last_turn, new_session, send
from tests.e2e.conftest import OUTPUT_ROOT
from tests.mcp_helpers import ROOT, ServerLog

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]

SERVER_LOG = OUTPUT_ROOT / "mcp-server" / "server.log"
SLOW_SERVER = {
    "name": "testsrv",
    "command": sys.executable,
    "args": ["-m", "tests.mcp_servers.slow_server", str(SERVER_LOG)],
    "env": {"PYTHONPATH": str(ROOT)},
}


@pytest.fixture
def server_log(shared_serve):
    SERVER_LOG.parent.mkdir(parents=True, exist_ok=True)
    SERVER_LOG.unlink(missing_ok=True)
    log = ServerLog(SERVER_LOG)
    yield log
    # The MCP servers a worker started end with it: stop the serve, not only this test.
    shared_serve.stop()
    log.assert_every_server_exited()


@pytest.mark.serve_env(AGENT_MCP_SERVERS=json.dumps([SLOW_SERVER]))
def test_it_stops_inside_an_mcp_call_with_one_notice(server_log, login, user, output_dir):
    page = login("alice", "alice-password-1")
    session_id = new_session(page, "Stop an MCP call")
    send(page, 'call testsrv__slow {"label": "browser"}')
    turn = last_turn(session_id)

    progress = page.locator(".tool-use .tool-progress")
    expect(progress).to_have_text("Progress 1 of 10: browser: warming up")
    page.screenshot(path=output_dir / "running.png", full_page=True)
    page.locator("#stop").click()

    expect(chip(page, turn.pk)).to_have_attribute("data-status", "stopped")
    expect(interrupt_notices(page, turn.pk)).to_have_count(1)
    expect(page.locator(".notice.error")).to_have_count(0)
    page.screenshot(path=output_dir / "stopped.png", full_page=True)
    turn.refresh_from_db()
    assert turn.status == TurnStatus.STOPPED
    assert turn.events.filter(kind=EventKind.INTERRUPT).count() == 1
    started = server_log.wait_for("started")
    assert str(server_log.wait_for("cancel_notification")["request"]) == started["request"]
