"""A worker's turn host, told to stop as SIGTERM tells it, closes what it opened before it says it
closed: its MCP servers (each told by its closed input, and gone), its database threads and its
HTTP client to the model.

The MCP case runs a real ``qcluster`` and signals its worker process alone: the host ends while
the process lives on in django-q2's task loop, so nothing is closed by the process exiting. The
others run a worker's ``ProcessHost`` in this process, as its django-q2 worker does (delivery,
then the drain a signal asks for), to see its threads and its client."""

import json
import os
import re
import signal
import threading

import pytest
from django.conf import settings

from agentproj.vocabulary import TurnStatus
from sessions_app.core import lifecycle, sessions
from sessions_app.models import Turn
from sessions_app.runtime.worker import HOSTED, SKIPPED, ProcessHost
from tests.conftest import wait_for
from tests.mcp_helpers import ServerLog, stdio_server
from tests.processes import alive

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

BOUND = 60.0
HOST_CLOSED = re.compile(r"turn host \S+ closed")
HOST_THREADS = ("turn-host", "turn-db", "turn-watch")


def host_threads() -> set[threading.Thread]:
    """The threads of this process's turn hosts: their loop, database and watch threads."""
    return {thread for thread in threading.enumerate() if thread.name.startswith(HOST_THREADS)}


def start_turn(user) -> Turn:
    session = sessions.session_create(owner=user)
    return lifecycle.turn_start(session=session, message="hello", actor=user)


def completed(turn: Turn) -> bool:
    return Turn.objects.get(pk=turn.pk).status == TurnStatus.COMPLETED


def test_a_worker_process_whose_host_stops_stops_its_mcp_servers(
    llm, user, worker_process, tmp_path
):
    log = ServerLog(tmp_path / "server.log")
    worker_process(Q_WORKERS="1", AGENT_MCP_SERVERS=json.dumps([stdio_server(log)]))
    turn = start_turn(user)
    worker_id = wait_for(lambda: Turn.objects.get(pk=turn.pk).worker_id, timeout=BOUND)
    wait_for(lambda: completed(turn), timeout=BOUND)
    servers = log.pids()
    # The host keeps its connection for its next turns.
    assert servers and alive(servers) == servers

    worker = int(worker_id.split(":")[1])
    os.kill(worker, signal.SIGTERM)
    worker_log = tmp_path / "worker-0.log"
    wait_for(lambda: HOST_CLOSED.search(worker_log.read_text()), timeout=BOUND)

    assert alive({worker}) == {worker}
    assert {entry["pid"] for entry in log.entries("stopped")} == servers
    assert alive(servers) == set()


@pytest.fixture
def process_host():
    """A worker process's turn host, started as its django-q2 worker starts it (off the main
    thread here: this process keeps its own signal handlers). Ends with the drain a SIGTERM
    asks for; yields it, a function that stops it so, and the threads of hosts another test of
    this process may have left."""
    others = host_threads()
    host = ProcessHost(capacity=settings.AGENT_TURNS_PER_WORKER)
    starting = threading.Thread(target=host.start)
    starting.start()
    starting.join(BOUND)

    def stop() -> None:
        host.request_drain()
        host.join()

    yield host, stop, others
    stop()


def hand_over(host: ProcessHost, turn: Turn) -> None:
    """Deliver the turn as django-q2 would. The host may have taken it already, offered it as it
    was queued (``broadcast.offer_to_hosts``): the delivery then finds it running."""
    assert host.deliver(turn.pk) in (HOSTED, SKIPPED)


def test_a_stopped_host_ends_its_threads(llm, user, process_host):
    host, stop, others = process_host
    turn = start_turn(user)
    hand_over(host, turn)
    wait_for(lambda: completed(turn), timeout=BOUND)
    started = host_threads() - others
    assert {"turn-host", "turn-db"} <= {thread.name.split("_")[0] for thread in started}

    stop()

    assert {thread.name for thread in host_threads() - others} == set()


def test_a_stopped_host_closes_its_client_to_the_model(llm, user, process_host):
    host, stop, _ = process_host
    turn = start_turn(user)
    hand_over(host, turn)
    wait_for(lambda: completed(turn), timeout=BOUND)
    assert not host.host.client.is_closed

    stop()

    assert host.host.client.is_closed
