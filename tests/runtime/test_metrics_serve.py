"""``GET /metrics`` on a real ``serve``: what its web process and its worker processes record adds
up in one scrape, a killed worker's gauges stop counting, and a restart starts from zero. A
machine that runs only workers (``qcluster --metrics-port``) serves its own.

Everything goes through the HTTP API as people use it (a message, Stop, an approver's Approve),
so that every observation is made in ``serve``'s own processes, none in the test's.
"""

import json
import os
import signal
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.authtoken.models import Token

from agentproj.vocabulary import ACTIVE_STATUSES, EventKind, TurnStatus
from sessions_app.core import lifecycle
from sessions_app.models import Turn
from tests.conftest import PROCESS_EXIT_TIMEOUT, subprocess_env, wait_for
from tests.processes import (
    alive,
    descendants,
    free_port,
    start_serve,
    stop_or_fail,
    wait_until_serving,
)
from tests.runtime.test_worker_host import start_stories

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

# Bounds how long a broken test waits for serve and its worker; never a claim about speed.
SERVE_START_TIMEOUT = 90
TURN_TIMEOUT = 60
CAPACITY = 5


class Serve:
    """``manage.py serve`` (one web and one worker process) on this run's databases, with a
    metrics directory of this test's own."""

    def __init__(self, llm, tmp_path: Path):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.metrics_dir = tmp_path / "metrics"
        self.env = subprocess_env(
            LLM_BASE_URL=llm.base_url,
            AGENTPROJ_ADMIN_PASSWORD="metrics-test-password",
            AGENT_TURNS_PER_WORKER=str(CAPACITY),
            PROMETHEUS_MULTIPROC_DIR=str(self.metrics_dir),
            LLM_RETRY_BASE_DELAY="0.05",
        )
        self.tmp_path = tmp_path
        self.runs = 0
        self.process = None

    def start(self) -> None:
        self.runs += 1
        log = self.tmp_path / f"serve-{self.runs}.log"
        self.process = start_serve(self.port, self.env, log, "--workers", "1")
        wait_until_serving(
            self.process, f"{self.base_url}/accounts/login/", log, SERVE_START_TIMEOUT
        )
        # The worker's turn host is up once its gauge counts.
        wait_for(lambda: self.samples().get("agentproj_host_capacity") == CAPACITY, timeout=60)

    def stop(self) -> None:
        family = descendants(self.process.pid)
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=PROCESS_EXIT_TIMEOUT) == 0
        assert alive(family) == set()

    def api(self, method: str, path: str, token: Token, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            self.base_url + path,
            method=method,
            data=json.dumps(body or {}).encode(),
            headers={"Authorization": f"Token {token.key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def samples(self) -> dict:
        return scraped(f"{self.base_url}/metrics")


def scraped(url: str) -> dict:
    """Every sample of a scrape from loopback: name -> value, or name -> {labels: value} for a
    labelled one (labels as a tuple of their values, by label name)."""
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    found: dict = {}
    labelled: dict = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if "le" in sample.labels:
                continue
            if sample.labels:
                labelled[sample.name][tuple(v for _, v in sorted(sample.labels.items()))] = (
                    sample.value
                )
            else:
                found[sample.name] = sample.value
    return {**found, **labelled}


def status_of(turn_id: int) -> str:
    return Turn.objects.values_list("status", flat=True).get(pk=turn_id)


def send(serve: Serve, token: Token, message: str) -> int:
    session = serve.api("POST", "/api/sessions/", token)
    return serve.api("POST", f"/api/sessions/{session['id']}/turns/", token, {"message": message})[
        "id"
    ]


def counted_ends(samples: dict, turns: int) -> dict | None:
    """``samples`` once they count ``turns`` ended turns."""
    ended = samples.get("agentproj_turns_finished_total", {})
    return samples if sum(ended.values()) == turns else None


def turn_hosts(metrics_dir: Path) -> set[int]:
    """The pids whose live gauges in the directory give the turn hosts capacity: the worker
    processes (every process that loaded the metrics has a file, most of them at zero)."""
    return {
        int(path.stem.rsplit("_", 1)[1])
        for path in metrics_dir.glob("gauge_livesum_*.db")
        if any(
            sample.value
            for family in MultiProcessCollector.merge([str(path)], accumulate=False)
            if family.name == "agentproj_host_capacity"
            for sample in family.samples
        )
    }


@pytest.fixture
def serve(llm, tmp_path):
    served = Serve(llm, tmp_path)
    yield served
    if served.process is not None:
        stop_or_fail(served.process, timeout=PROCESS_EXIT_TIMEOUT, name="serve")


def test_one_scrape_counts_what_every_process_of_serve_saw(serve, llm, user, approver):
    llm.token_delay = 0.05
    user_token, approver_token = (
        Token.objects.create(user=user),
        Token.objects.create(user=approver),
    )
    serve.start()

    # The first answer takes two requests: the model server fails the first.
    llm.fail(500)
    answered = send(serve, user_token, "hello")
    wait_for(lambda: status_of(answered) == TurnStatus.COMPLETED, timeout=TURN_TIMEOUT)

    stopped = send(serve, user_token, "tell me a story")
    wait_for(
        lambda: Turn.objects.get(pk=stopped).events.filter(kind=EventKind.ASSISTANT_MESSAGE),
        timeout=TURN_TIMEOUT,
    )
    session_id = Turn.objects.get(pk=stopped).session_id
    serve.api("POST", f"/api/sessions/{session_id}/cancel/", user_token)
    wait_for(lambda: status_of(stopped) == TurnStatus.STOPPED, timeout=TURN_TIMEOUT)

    emailed = send(serve, user_token, "please send an email to x@example.com")
    wait_for(lambda: status_of(emailed) == TurnStatus.WAITING_FOR_APPROVAL, timeout=TURN_TIMEOUT)
    approval = Turn.objects.get(pk=emailed).approval_requests.get()
    serve.api("POST", f"/api/approvals/{approval.pk}/approve/", approver_token)
    wait_for(lambda: status_of(emailed) == TurnStatus.COMPLETED, timeout=TURN_TIMEOUT)

    # A process counts a turn's end just after its commit, which the test may see first.
    seen = wait_for(lambda: counted_ends(serve.samples(), 3), timeout=TURN_TIMEOUT)
    # In the web process: the three messages, the approver's decision.
    assert seen["agentproj_turns_started_total"] == 3
    assert seen["agentproj_approval_wait_seconds_count"] == {("approved",): 1}
    # In the worker process: the turns' ends, the stop, first answers, the tool, the model.
    assert seen["agentproj_turns_finished_total"] == {("completed",): 2, ("stopped",): 1}
    assert seen["agentproj_cancel_seconds_count"] == 1
    # The e-mail's first answer is a tool call: its text comes after the approver's decision.
    assert seen["agentproj_time_to_first_token_seconds_count"] == 2
    assert seen["agentproj_tool_call_seconds_count"] == {("send_email",): 1}
    # Four turn runs (the e-mail's twice: asked, then resumed after the decision).
    assert seen["agentproj_queue_wait_seconds_count"] == 4
    # The failed one and the answers; the stopped story's request was cut short: not counted.
    assert seen["agentproj_llm_request_seconds_count"] == 4
    assert seen["agentproj_llm_errors_total"] == {("server_error",): 1}
    assert seen["agentproj_llm_tokens_total"][("input",)] > 0
    assert seen["agentproj_llm_tokens_total"][("output",)] > 0
    assert seen["agentproj_turns_active"] == {(status,): 0 for status in ACTIVE_STATUSES}
    assert seen["agentproj_host_turns"] == 0
    assert seen["agentproj_host_capacity"] == CAPACITY

    # A worker killed outright: its replacement's host counts, the dead one's no more.
    (worker,) = turn_hosts(serve.metrics_dir)
    os.kill(worker, signal.SIGKILL)
    wait_for(lambda: turn_hosts(serve.metrics_dir) - {worker}, timeout=60)
    assert worker not in turn_hosts(serve.metrics_dir)
    assert serve.samples()["agentproj_host_capacity"] == CAPACITY

    serve.stop()
    serve.start()

    again = serve.samples()
    assert again["agentproj_turns_started_total"] == 0
    for family in (
        "agentproj_turns_finished_total",
        "agentproj_approval_wait_seconds_count",
        "agentproj_tool_call_seconds_count",
        "agentproj_llm_tokens_total",
        "agentproj_llm_errors_total",
    ):
        assert family not in again
    for family in (
        "agentproj_cancel_seconds_count",
        "agentproj_time_to_first_token_seconds_count",
        "agentproj_queue_wait_seconds_count",
        "agentproj_llm_request_seconds_count",
    ):
        assert again[family] == 0
    serve.stop()


def test_a_worker_only_machine_serves_its_own_metrics(llm, user, worker_process, tmp_path):
    port = free_port()
    metrics_dir = tmp_path / "worker-metrics"
    worker_process(
        Q_WORKERS="1",
        AGENT_TURNS_PER_WORKER=str(CAPACITY),
        METRICS_PORT=str(port),
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )

    def answering() -> dict | None:
        try:
            return scraped(f"http://127.0.0.1:{port}/")
        except OSError:
            return None

    wait_for(lambda: (answering() or {}).get("agentproj_host_capacity") == CAPACITY, timeout=90)
    turn = start_stories(user, 1)[0]
    wait_for(lambda: status_of(turn.pk) == TurnStatus.RUNNING, timeout=TURN_TIMEOUT)
    lifecycle.turn_request_cancel(session=turn.session, actor=user)
    wait_for(lambda: status_of(turn.pk) == TurnStatus.STOPPED, timeout=TURN_TIMEOUT)

    seen = wait_for(lambda: counted_ends(scraped(f"http://127.0.0.1:{port}/"), 1), timeout=60)
    assert seen["agentproj_queue_wait_seconds_count"] == 1
    assert seen["agentproj_cancel_seconds_count"] == 1
    # Through a proxy on the machine, a client is not taken for a loopback one.
    proxied = urllib.request.Request(
        f"http://127.0.0.1:{port}/", headers={"X-Forwarded-For": "203.0.113.7"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(proxied, timeout=30)
    assert refused.value.code == 403
    assert set(json.loads(refused.value.read())) == {"code", "detail"}
