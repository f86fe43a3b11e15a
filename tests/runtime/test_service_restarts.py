"""The database and the broker restart under a running deployment (``manage.py serve`` against a
private PostgreSQL and a private Redis), while turns stream.

What is right, and asserted: a restart is not a worker loss. The same web and worker processes
carry on (django-q2 may replace its own helper processes), a turn streaming through the restart
completes on its host (its database calls wait for a pooled connection meanwhile), a turn whose
end falls in an outage longer than that wait ends ``failed`` with one ``persistence_error`` once
the database is back (never stuck ``running``), no terminal turn keeps a lease, a stopped turn
has one interrupt event, new turns run, and Stop works, even while Redis is down.

These tests bring their own servers and build the processes' environment from scratch, so they
run the same whatever database the rest of the suite uses (they never touch its databases). The
module's tests share the servers (starting them is most of a test's set-up); each test has a
database of its own, copied from one migrated once, an empty Redis, and its own ``serve``.
"""

import json
import re
import subprocess
import sys
import time
import uuid

import httpx
import pytest
from websockets.sync.client import connect

from tests.conftest import PROCESS_EXIT_TIMEOUT, ROOT, wait_for
from tests.processes import (
    alive,
    children,
    free_port,
    start_serve,
    stop_or_fail,
    wait_until_serving,
)
from tests.services_private import running_postgres, running_redis

ADMIN_PASSWORD = "restart-test-password"
STORY = "tell me a story"
STORIES = 5
# Long enough for a story to stream through a restart; lifted once the restart is over.
SLOW_TOKEN_DELAY = 0.05
FAST_TOKEN_DELAY = 0.001
# How long a database call waits for a pooled connection, in the test of a longer outage.
POOL_TIMEOUT = 2.0


class Deployment:
    """``manage.py serve`` on a free port against the private servers; spoken to as a user
    would, through the API and the websocket, and checked in its database."""

    def __init__(self, postgres, redis, llm, tmp_path, **extra_env: str):
        self.postgres = postgres
        self.redis = redis
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "serve.log"
        self.env = {
            **base_env(postgres, redis, tmp_path),
            "DATABASE_POOL_SIZE": "4",
            "Q_WORKERS": "2",
            "LLM_BASE_URL": llm.base_url,
            "LLM_RETRY_BASE_DELAY": "0.05",
            "AGENT_HEARTBEAT_INTERVAL": "0.5",
            "AGENT_DRAIN_TIMEOUT": "0.5",
            "AGENTPROJ_ADMIN_PASSWORD": ADMIN_PASSWORD,
            **extra_env,
        }
        self.serve = start_serve(self.port, self.env, self.log)
        try:
            wait_until_serving(self.serve, f"{self.base_url}/accounts/login/", self.log, 90)
            token = self._token()
        except BaseException:
            # No test will stop it: stop it here (failing the test if it hangs), then report.
            self.stop()
            raise
        self.api = httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Token {token}"}, timeout=30
        )

    def _token(self) -> str:
        made = run_manage(["drf_create_token", "admin"], self.env)
        return re.search(r"Generated token (\w+)", made).group(1)

    def stop(self) -> None:
        stop_or_fail(self.serve, timeout=PROCESS_EXIT_TIMEOUT, name="serve")

    # As a user: the API.

    def start_turn(self, message: str, session_id: str | None = None) -> tuple[str, int]:
        if session_id is None:
            session_id = self.api.post("/api/sessions/", json={}).json()["id"]
        started = self.api.post(f"/api/sessions/{session_id}/turns/", json={"message": message})
        assert started.status_code == 202, started.text
        return session_id, started.json()["id"]

    def cancel(self, session_id: str) -> httpx.Response:
        return self.api.post(f"/api/sessions/{session_id}/cancel/", json={})

    def login_cookie(self) -> str:
        with httpx.Client(base_url=self.base_url, timeout=30) as browser:
            form = browser.get("/accounts/login/")
            csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
            browser.post(
                "/accounts/login/",
                data={"username": "admin", "password": ADMIN_PASSWORD, "csrfmiddlewaretoken": csrf},
                headers={"Referer": f"{self.base_url}/accounts/login/"},
            )
            return f"sessionid={browser.cookies['sessionid']}"

    def essential_processes(self, turn_ids: list[int]) -> set[int]:
        """The processes that must live through a restart: ``serve``, its web process and its
        cluster, and the worker processes hosting ``turn_ids``. (django-q2 replaces its own
        helpers when they die: its task pusher quits on a broker error, by design.)"""
        workers = self.postgres.query(
            "SELECT worker_id FROM sessions_app_turn WHERE id = ANY(%s) AND worker_id <> ''",
            turn_ids,
        )
        hosting = {int(worker_id.split(":")[1]) for (worker_id,) in workers}
        assert hosting
        return {self.serve.pid} | children(self.serve.pid) | hosting

    # In its database.

    def status(self, turn_id: int) -> str:
        rows = self.postgres.query("SELECT status FROM sessions_app_turn WHERE id = %s", turn_id)
        return rows[0][0]

    def streamed_text(self, turn_id: int) -> str:
        rows = self.postgres.query(
            "SELECT data->>'text' FROM sessions_app_timelineevent"
            " WHERE turn_id = %s AND kind = 'assistant_message' ORDER BY seq",
            turn_id,
        )
        return rows[0][0] if rows else ""

    def events(self, turn_id: int, kind: str) -> list[dict]:
        rows = self.postgres.query(
            "SELECT data FROM sessions_app_timelineevent WHERE turn_id = %s AND kind = %s",
            turn_id,
            kind,
        )
        return [data for (data,) in rows]

    def assert_ended_cleanly(self, turn_id: int, status: str, error_code: str = "") -> None:
        """Terminal, with no lease left, its text kept, and its one ending recorded once."""
        ((final, lease, worker, stop_reason, recorded_code),) = self.postgres.query(
            "SELECT status, lease_token, worker_id, stop_reason, error_code"
            " FROM sessions_app_turn WHERE id = %s",
            turn_id,
        )
        assert (final, recorded_code) == (status, error_code)
        assert (lease, worker) == (None, "")
        interrupts, errors = self.events(turn_id, "interrupt"), self.events(turn_id, "error")
        if status == "stopped":
            assert stop_reason == "user_cancel"
            assert (len(interrupts), errors) == (1, [])
            assert self.streamed_text(turn_id)
        elif status == "failed":
            assert interrupts == []
            assert [error["code"] for error in errors] == [error_code]
            assert self.streamed_text(turn_id)
        else:
            assert (interrupts, errors) == ([], [])
            assert self.streamed_text(turn_id).endswith("The end.")


def run_manage(arguments: list[str], env: dict[str, str], timeout: float = 60) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *arguments],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return done.stdout


def base_env(postgres, redis, data_dir) -> dict[str, str]:
    """What every process of a deployment on the private servers is given, from scratch."""
    run = uuid.uuid4().hex[:8]
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "PYTHONUNBUFFERED": "1",
        "DATA_DIR": str(data_dir),
        "SECRET_KEY": f"restart-test-{run}",
        "DATABASE_URL": postgres.url,
        "REDIS_URL": redis.url,
        "CHANNELS_PREFIX": f"restart-{run}",
        "Q_CLUSTER_NAME": f"restart-{run}",
    }


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    """The module's private PostgreSQL, its template database migrated once, and Redis."""
    log_dir = tmp_path_factory.mktemp("services")
    with running_postgres(log_dir) as postgres, running_redis(log_dir) as redis:
        # Bounds a hang only: on a loaded machine a migration from nothing takes minutes.
        run_manage(["migrate", "--verbosity", "0"], base_env(postgres, redis, log_dir), timeout=150)
        yield postgres, redis


@pytest.fixture
def deployment(services, llm, tmp_path, request):
    """``serve`` on a fresh copy of the migrated database and an empty Redis; the servers run
    (an earlier test that stopped one and failed before starting it again is forgiven here)."""
    postgres, redis = services
    postgres.ensure_running()
    redis.ensure_running()
    postgres.new_database()
    redis.flush()
    llm.token_delay = SLOW_TOKEN_DELAY
    extra_env = getattr(request, "param", {})
    running = Deployment(postgres, redis, llm, tmp_path, **extra_env)
    try:
        yield running
    finally:
        running.api.close()
        running.stop()


def start_stories(deployment: Deployment, count: int) -> list[tuple[str, int]]:
    turns = [deployment.start_turn(STORY) for _ in range(count)]
    wait_for(lambda: all(deployment.streamed_text(turn) for _, turn in turns), timeout=60)
    return turns


def is_status(message: dict, status: str) -> bool:
    return (
        message["type"] == "event"
        and message["event"]["kind"] == "status"
        and message["event"]["data"]["status"] == status
    )


def test_postgres_restarted_while_turns_stream(deployment, llm):
    turns = start_stories(deployment, STORIES)
    processes = deployment.essential_processes([turn for _, turn in turns])

    deployment.postgres.restart(down_for=2)

    # The same web and worker processes carry on, and the web process's first answers after
    # the restart are good ones (no connection left over from before it).
    for _ in range(3):
        listed = deployment.api.get("/api/sessions/")
        assert listed.status_code == 200, listed.text
    assert alive(processes) == processes

    # Stop still works, and a new turn runs.
    stopped_session, stopped_turn = turns[0]
    cancel = deployment.cancel(stopped_session)
    assert cancel.status_code == 202, cancel.text
    wait_for(lambda: deployment.status(stopped_turn) == "stopped", timeout=30, interval=0.2)
    llm.token_delay = FAST_TOKEN_DELAY
    _, new_turn = deployment.start_turn(STORY)

    finished = [turn for _, turn in turns[1:]] + [new_turn]
    wait_for(
        lambda: all(deployment.status(turn) == "completed" for turn in finished),
        timeout=60,
        interval=0.2,
    )
    deployment.assert_ended_cleanly(stopped_turn, "stopped")
    for turn in finished:
        deployment.assert_ended_cleanly(turn, "completed")
    assert alive(processes) == processes


def test_redis_restarted_while_turns_stream(deployment, llm):
    turns = start_stories(deployment, 3)
    processes = deployment.essential_processes([turn for _, turn in turns])

    # Stop while Redis is down: the web process records it, the worker finds it on the row.
    deployment.redis.stop()
    stopped_session, stopped_turn = turns[0]
    cancel = deployment.cancel(stopped_session)
    assert cancel.status_code == 202, cancel.text
    assert cancel.json() == {"turn": stopped_turn, "status": "stopping"}
    wait_for(lambda: deployment.status(stopped_turn) == "stopped", timeout=30, interval=0.2)
    deployment.redis.start()

    # A page opened after the restart follows a new turn live, and the turn completes.
    llm.token_delay = FAST_TOKEN_DELAY * 10
    session_id = deployment.api.post("/api/sessions/", json={}).json()["id"]
    live = []
    url = f"ws://127.0.0.1:{deployment.port}/ws/sessions/{session_id}/"
    headers = {"Cookie": deployment.login_cookie(), "Origin": deployment.base_url}
    with connect(url, additional_headers=headers, open_timeout=10) as socket:
        socket.send(json.dumps({"type": "resume", "after_seq": 0}))
        assert json.loads(socket.recv(timeout=10))["type"] == "replayed"
        _, new_turn = deployment.start_turn(STORY, session_id)
        while not any(is_status(message, "completed") for message in live):
            live.append(json.loads(socket.recv(timeout=30)))
    assert any(message["type"] == "delta" for message in live)

    finished = [turn for _, turn in turns[1:]] + [new_turn]
    llm.token_delay = FAST_TOKEN_DELAY
    wait_for(
        lambda: all(deployment.status(turn) == "completed" for turn in finished),
        timeout=60,
        interval=0.2,
    )
    deployment.assert_ended_cleanly(stopped_turn, "stopped")
    for turn in finished:
        deployment.assert_ended_cleanly(turn, "completed")
    assert alive(processes) == processes


@pytest.mark.parametrize(
    "deployment", [{"DATABASE_POOL_TIMEOUT": str(POOL_TIMEOUT)}], indirect=True, ids=["short-wait"]
)
def test_turns_that_end_while_postgres_is_down_end_once_it_is_back(deployment, llm):
    turns = start_stories(deployment, 2)
    processes = deployment.essential_processes([turn for _, turn in turns])
    deployment.postgres.stop()
    # The answers end while the database is down, and the turns' writes give up waiting.
    llm.token_delay = FAST_TOKEN_DELAY
    wait_for(lambda: all(seen.finished_at for seen in llm.requests), timeout=30)
    time.sleep(3 * POOL_TIMEOUT)
    deployment.postgres.start()

    # Each turn records its end once it can: its answer could not be saved, which it says.
    for _, turn in turns:
        wait_for(lambda turn=turn: deployment.status(turn) == "failed", timeout=30, interval=0.2)
        deployment.assert_ended_cleanly(turn, "failed", "persistence_error")
    _, new_turn = deployment.start_turn(STORY)
    wait_for(lambda: deployment.status(new_turn) == "completed", timeout=60, interval=0.2)
    deployment.assert_ended_cleanly(new_turn, "completed")
    assert alive(processes) == processes
