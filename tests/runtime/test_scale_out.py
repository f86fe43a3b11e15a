"""Two web processes and two worker processes behave as one deployment.

Turns spread over both workers; a cancel accepted by either web process stops a turn on either
worker; a reload on the other web process replays the same timeline; and when one worker's
machine dies (kill -9 of its whole cluster), the other recovers its turns.
"""

import json
import os
import signal
import subprocess
import sys

import httpx
import pytest
from rest_framework.authtoken.models import Token
from websockets.sync.client import connect

from agentproj.vocabulary import EventKind, StopReason, TurnStatus
from sessions_app.core import housekeeping
from sessions_app.models import Turn
from tests.conftest import PROCESS_EXIT_TIMEOUT, ROOT, subprocess_env, wait_for
from tests.processes import descendants, free_port, stop_or_fail, wait_until_serving
from tests.runtime.test_worker_host import assert_stopped_once, status_of, streamed_text
from tests.sockets import session_cookie

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

STORIES = 6
DAPHNE = [sys.executable, "-m", "daphne"]


@pytest.fixture
def web_process(transactional_db, settings, tmp_path):
    """A real daphne process on a free port; returns its base URL."""
    started: list[subprocess.Popen] = []

    def start() -> str:
        port = free_port()
        log = tmp_path / f"web-{port}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*DAPHNE, "-b", "127.0.0.1", "-p", str(port), "agentproj.asgi:application"],
                env=subprocess_env(LLM_BASE_URL=settings.LLM_BASE_URL),
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started.append(process)
        base_url = f"http://127.0.0.1:{port}"
        wait_until_serving(process, f"{base_url}/accounts/login/", log, 60)
        return base_url

    yield start
    for process in started:
        stop_or_fail(process, timeout=PROCESS_EXIT_TIMEOUT, name="daphne")


def api_client(base_url: str, user) -> httpx.Client:
    token, _ = Token.objects.get_or_create(user=user)
    return httpx.Client(
        base_url=base_url, headers={"Authorization": f"Token {token.key}"}, timeout=30
    )


def replayed_timeline(base_url: str, session_id, cookie: bytes) -> list[tuple[int, str]]:
    """What a page (re)loaded on ``base_url`` is sent: every event of the session, by seq."""
    url = base_url.replace("http://", "ws://") + f"/ws/sessions/{session_id}/"
    headers = {"Cookie": cookie.decode(), "Origin": base_url}
    timeline = []
    with connect(url, additional_headers=headers, open_timeout=10) as socket:
        socket.send(json.dumps({"type": "resume", "after_seq": 0}))
        while True:
            message = json.loads(socket.recv(timeout=30))
            if message["type"] == "replayed":
                return timeline
            if message["type"] == "event":
                timeline.append((message["event"]["seq"], message["event"]["kind"]))


def worker_pid(turn: Turn) -> int:
    return int(Turn.objects.get(pk=turn.pk).worker_id.split(":")[1])


def test_two_web_and_two_worker_processes_behave_as_one(
    llm, user, settings, web_process, worker_process
):
    llm.token_delay = 0.05
    settings.AGENT_LEASE_TIMEOUT = 2
    webs = [web_process(), web_process()]
    clusters = [
        worker_process(Q_WORKERS="1", AGENT_TURNS_PER_WORKER="3", AGENT_HEARTBEAT_INTERVAL="0.5"),
        worker_process(Q_WORKERS="1", AGENT_TURNS_PER_WORKER="3", AGENT_HEARTBEAT_INTERVAL="0.5"),
    ]
    clients = [api_client(base_url, user) for base_url in webs]
    turns = []
    for number in range(STORIES):
        client = clients[number % 2]
        session_id = client.post("/api/sessions/", json={}).json()["id"]
        started = client.post(
            f"/api/sessions/{session_id}/turns/", json={"message": "tell me a story"}
        )
        assert started.status_code == 202
        turns.append(Turn.objects.get(pk=started.json()["id"]))
    wait_for(lambda: all(streamed_text(turn) for turn in turns), timeout=60)

    # Turns spread over both workers (each hosts at most three).
    cluster_of = {pid: index for index, c in enumerate(clusters) for pid in descendants(c.pid)}
    hosts = {turn.pk: cluster_of[worker_pid(turn)] for turn in turns}
    assert set(hosts.values()) == {0, 1}

    # A cancel accepted by either web process stops a turn on either worker.
    cancelled: set[int] = set()
    for web_index in (0, 1):
        for cluster_index in (0, 1):
            turn = next(t for t in turns if hosts[t.pk] == cluster_index and t.pk not in cancelled)
            cancelled.add(turn.pk)
            cancel = clients[web_index].post(f"/api/sessions/{turn.session_id}/cancel/", json={})
            assert cancel.status_code == 202
            wait_for(lambda turn=turn: status_of(turn) == TurnStatus.STOPPED, timeout=30)
            assert_stopped_once(turn, StopReason.USER_CANCEL)

    # A reload on the other web process replays the same timeline.
    cookie = session_cookie(user)
    for turn in turns[:2]:
        timelines = [replayed_timeline(base_url, turn.session_id, cookie) for base_url in webs]
        assert timelines[0] == timelines[1]
        assert [seq for seq, _ in timelines[0]] == sorted(
            turn.session.events.values_list("seq", flat=True)
        )

    # One worker's machine dies: the other recovers its turns.
    still_running = [t for t in turns if status_of(t) == TurnStatus.RUNNING]
    doomed = hosts[still_running[0].pk]
    os.killpg(clusters[doomed].pid, signal.SIGKILL)
    clusters[doomed].wait(timeout=PROCESS_EXIT_TIMEOUT)
    orphaned = [t for t in still_running if hosts[t.pk] == doomed]
    assert orphaned
    llm.token_delay = 0.001
    wait_for(
        lambda: (
            housekeeping.turns_reap_expired() >= 0
            and all(status_of(t) == TurnStatus.COMPLETED for t in still_running)
        ),
        timeout=120,
        interval=0.5,
    )
    for turn in orphaned:
        turn.refresh_from_db()
        assert turn.worker_losses == 1
        final = turn.events.filter(kind=EventKind.ASSISTANT_MESSAGE).order_by("seq").last()
        assert final.data["text"].endswith("The end.")
