"""``manage.py serve`` told to stop (SIGTERM or SIGINT to its process group, as a process
manager or a terminal sends them) drains every hosted turn and exits, leaving nothing behind."""

import os
import signal
import urllib.request
from pathlib import Path

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


def daphne_processes(pids: set[int]) -> set[int]:
    return {pid for pid in pids if b"daphne" in Path(f"/proc/{pid}/cmdline").read_bytes()}


def answers(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status


def test_two_web_processes_serve_one_port_and_sigterm_ends_both(llm, tmp_path):
    port = free_port()
    env = subprocess_env(LLM_BASE_URL=llm.base_url, AGENTPROJ_ADMIN_PASSWORD="serve-test-password")
    log = tmp_path / "serve.log"
    serve = start_serve(port, env, log, "--web-processes", "2")
    login = f"http://127.0.0.1:{port}/accounts/login/"
    try:
        wait_until_serving(serve, login, log, 90)
        family = descendants(serve.pid)
        webs = daphne_processes(family)
        assert len(webs) == 2
        # Each process alone answers on the port while the other is frozen: both serve it.
        for frozen in webs:
            os.kill(frozen, signal.SIGSTOP)
            try:
                assert answers(login) == 200
            finally:
                os.kill(frozen, signal.SIGCONT)

        serve.send_signal(signal.SIGTERM)

        assert serve.wait(timeout=PROCESS_EXIT_TIMEOUT) == 0
        assert alive(family) == set()
    finally:
        stop_or_fail(serve, timeout=PROCESS_EXIT_TIMEOUT, name="serve")
