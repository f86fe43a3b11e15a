"""``manage.py serve`` told to stop (SIGTERM or SIGINT to its process group, as a process
manager or a terminal sends them) drains every hosted turn and exits, leaving nothing behind."""

import os
import signal

import pytest

from agentproj.vocabulary import StopReason, TurnStatus
from tests.conftest import PROCESS_EXIT_TIMEOUT, subprocess_env, wait_for
from tests.processes import (
    alive,
    descendants,
    free_port,
    start_serve,
    stop_or_fail,
    wait_until_serving,
)
from tests.runtime.test_worker_host import assert_stopped_once, start_stories, streamed_text

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.mark.parametrize("mode", ["stop", "requeue"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_it_drains_every_hosted_turn_and_exits(llm, user, tmp_path, signum, mode):
    llm.token_delay = 0.05
    port = free_port()
    env = subprocess_env(
        LLM_BASE_URL=llm.base_url,
        AGENT_DRAIN_MODE=mode,
        AGENT_DRAIN_TIMEOUT="0.5",
        AGENTPROJ_ADMIN_PASSWORD="serve-test-password",
    )
    log = tmp_path / "serve.log"
    serve = start_serve(port, env, log)
    try:
        wait_until_serving(serve, f"http://127.0.0.1:{port}/accounts/login/", log, 90)
        turns = start_stories(user, 5)
        wait_for(lambda: all(streamed_text(turn) for turn in turns), timeout=60)
        family = descendants(serve.pid)

        os.killpg(serve.pid, signum)

        assert serve.wait(timeout=PROCESS_EXIT_TIMEOUT) == 0
        assert alive(family) == set()
    finally:
        stop_or_fail(serve, timeout=PROCESS_EXIT_TIMEOUT, name="serve")
    for turn in turns:
        if mode == "stop":
            assert_stopped_once(turn, StopReason.WORKER_DRAIN)
        else:
            turn.refresh_from_db()
            assert turn.status == TurnStatus.QUEUED
            assert not turn.events.filter(kind="interrupt").exists()
