"""Shared fixtures.

Tests run against real things: SQLite files (or PostgreSQL with ``DATABASE_URL``), the real
cross-process channel layer (channels-lite, or Redis with ``REDIS_URL``), a real HTTP LLM endpoint
on loopback, and real worker processes. Tests that touch the channel layer or run the agent loop
use ``pytest.mark.django_db(transaction=True, databases="__all__")``: the loop runs in threads
and processes that must see committed rows.
"""

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from django.conf import settings
from django.db import connections

from sessions_app.core import lifecycle, sessions
from tests.llm_server import LLMServer, ScriptedLLM
from tests.processes import SharedServe, stop_or_fail
from tests.slack_helpers import people_with_addresses, running_fake

ROOT = Path(__file__).resolve().parent.parent
SHARED_SERVE = SharedServe(ROOT / "test-output" / "e2e", start_timeout=90.0, stop_timeout=40.0)


def pytest_runtest_setup(item):
    """A test that serves no page ends the browser tests' shared serve: idle, it would still
    poll its queue and channel layer on the cores the other tests share."""
    if "server" not in item.fixturenames:
        SHARED_SERVE.stop()


@pytest.fixture(scope="session")
def shared_serve(django_db_setup):
    """The browser tests' ``SharedServe``, stopped before the test databases are dropped."""
    yield SHARED_SERVE
    SHARED_SERVE.stop()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config, specs):
    """With several test processes (pytest-xdist) on one Redis, each gets its own task queue and
    channel-layer prefix, set before its settings load: a qcluster started by one must never take
    another's turns (which name rows of another database). The databases need nothing here: each
    process makes its own (``django_db_modify_db_settings``)."""
    for number, spec in enumerate(specs):
        for variable, default in (
            ("Q_CLUSTER_NAME", "agentproj"),
            ("CHANNELS_PREFIX", "agentproj"),
        ):
            spec.env[variable] = f"{os.environ.get(variable, default)}_gw{number}"


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """With ``-n`` (xdist's ``load``), tests are handed out one at a time, the slow ones early
    (``tests.scheduling``). Another ``--dist`` is left to xdist."""
    if config.getvalue("dist") == "load":
        from tests.scheduling import SlowFirstScheduling

        return SlowFirstScheduling(config, log)
    return None


@pytest.fixture(scope="session")
def django_db_modify_db_settings(tmp_path_factory):
    """A fresh database per test run: SQLite files in a temporary folder (shared with the worker
    processes a test starts), or a PostgreSQL database whose name carries this run's pid."""
    run_dir = tmp_path_factory.mktemp("databases")
    for alias, db in settings.DATABASES.items():
        test = db.setdefault("TEST", {})
        if db["ENGINE"].endswith("sqlite3"):
            test["NAME"] = str(run_dir / f"{alias}.sqlite3")
        else:
            test["NAME"] = f"test_{db['NAME']}_{os.getpid()}"


def database_url(alias: str = "default") -> str:
    """A URL for the test database of ``alias`` (valid once the test databases exist)."""
    db = connections[alias].settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    url = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    # The connection options the run was given (CI's asynchronous commit) hold for its
    # processes too.
    options = db.get("OPTIONS", {}).get("options")
    return f"{url}?{urlencode({'options': options}, quote_via=quote)}" if options else url


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a worker or web process that shares this test run's databases."""
    env = dict(os.environ)
    # This test's own: its name (pytest's) and leave to touch the ORM beside Playwright's loop.
    for own in ("PYTEST_CURRENT_TEST", "DJANGO_ALLOW_ASYNC_UNSAFE"):
        env.pop(own, None)
    env["DATABASE_URL"] = database_url("default")
    if "channels" in settings.DATABASES:
        env["CHANNELS_DB_PATH"] = connections["channels"].settings_dict["NAME"]
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def migrated_agent_profiles(django_db_setup, django_db_blocker) -> list[dict]:
    """The agent profiles the migrations create (the default one), as they made them."""
    from sessions_app.models import Agent

    with django_db_blocker.unblock():
        fields = [f.attname for f in Agent._meta.concrete_fields if not f.primary_key]
        return list(Agent.objects.values(*fields))


@pytest.fixture(autouse=True)
def agent_profiles_as_migrated(request):
    """Every test that uses the database starts with the agent profiles a migrated database has.
    A transactional test ends by emptying every table, and those rows with them; a deployment
    never loses them."""
    marked = request.node.get_closest_marker("django_db") is not None
    requested = [name for name in ("transactional_db", "db") if name in request.fixturenames]
    if not (marked or requested):
        return
    if requested:
        request.getfixturevalue(requested[0])
    from sessions_app.models import Agent

    # Read once, by the first test that uses the database: before any flush.
    migrated = request.getfixturevalue("migrated_agent_profiles")
    if not Agent.objects.exists():
        Agent.objects.bulk_create(Agent(**values) for values in migrated)


ON_DUTY = "on-duty-approver"


@pytest.fixture(autouse=True)
def an_approver_on_duty(request):
    """Every test that uses the database has someone who may approve tool calls: a request
    nobody could approve is rejected at once (fail closed), and most tests are about requests
    that wait. The approver has no e-mail address and no group, so no notice goes to them and
    a group's rule still needs the group's members. ``nobody_on_duty`` leaves them out."""
    marked = request.node.get_closest_marker("django_db") is not None
    requested = [name for name in ("transactional_db", "db") if name in request.fixturenames]
    if not (marked or requested) or request.node.get_closest_marker("nobody_on_duty"):
        return
    request.getfixturevalue("agent_profiles_as_migrated")
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    person, _ = get_user_model().objects.get_or_create(username=ON_DUTY)
    person.user_permissions.add(Permission.objects.get(codename="decide_approvalrequest"))


@pytest.fixture(autouse=True)
def fresh_rate_counts():
    """API rate counts live in the (local-memory) cache, which outlives a test's database: user
    ids repeat from test to test, so each test starts with no request counted."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def llm(settings):
    """A scripted OpenAI-compatible server on loopback; ``settings.LLM_BASE_URL`` points at it."""
    with LLMServer(ScriptedLLM()) as scripted:
        settings.LLM_BASE_URL = scripted.base_url
        settings.LLM_RETRY_BASE_DELAY = 0.05
        yield scripted


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password="alice-password-1")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("bob", password="bob-password-1")


@pytest.fixture
def approver(django_user_model):
    from django.contrib.auth.models import Permission

    approver = django_user_model.objects.create_user(
        "carol", password="carol-password-1", is_staff=True
    )
    approver.user_permissions.add(Permission.objects.get(codename="decide_approvalrequest"))
    return approver


@pytest.fixture
def make_approver(django_user_model):
    """Makes a user who may decide approval requests (the permission, no group)."""

    def make(username):
        from django.contrib.auth.models import Permission

        person = django_user_model.objects.create_user(username, password=f"{username}-pw-1")
        person.user_permissions.add(Permission.objects.get(codename="decide_approvalrequest"))
        return person

    return make


@pytest.fixture
def api(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user)
    return client


async def run_on_host(host, turn_id: int) -> str:
    """Admit the turn on ``host`` as a worker's delivery does, and wait until it ends or parks
    there; returns how it ended (``worker.SKIPPED``: there was nothing to run)."""
    from sessions_app.runtime.worker import SKIPPED

    hosted = await host.admit(turn_id)
    if hosted is None:
        return SKIPPED
    return await hosted.task


def run_turn_to_end(turn_id: int) -> str:
    """Run one turn on a turn host of its own, as a worker process's host would, until it ends
    or parks; returns how it ended."""
    from django.conf import settings as live_settings

    from sessions_app.runtime.host import TurnHost

    async def hosted() -> str:
        async with TurnHost(capacity=live_settings.AGENT_TURNS_PER_WORKER) as host:
            return await run_on_host(host, turn_id)

    return asyncio.run(hosted())


class TurnThread:
    """Runs one turn in a thread, on a turn host of its own."""

    def __init__(self, turn_id: int):
        self.turn_id = turn_id
        self.result: str | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            self.result = run_turn_to_end(self.turn_id)
        except BaseException as exc:
            self.error = exc
        finally:
            connections.close_all()

    def start(self) -> "TurnThread":
        self.thread.start()
        return self

    def join(self, timeout: float = 30.0) -> str | None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"turn {self.turn_id} still running after {timeout}s"
        if self.error:
            raise self.error
        return self.result


@pytest.fixture
def run_turn_in_thread():
    threads: list[TurnThread] = []

    def start(turn_id: int) -> TurnThread:
        thread = TurnThread(turn_id).start()
        threads.append(thread)
        return thread

    yield start
    for thread in threads:
        thread.thread.join(30)


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02):
    """Poll until ``predicate()`` is truthy; returns its value. Not a timing assertion: the
    timeout only bounds how long a broken test hangs."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


# Bounds how long a broken shutdown can hang a test: the drain, then a few seconds.
PROCESS_EXIT_TIMEOUT = 30.0
# How long a worker stopped after its test lets the turns it still hosts run on (seconds).
TEARDOWN_DRAIN_TIMEOUT = "1"


@pytest.fixture
def worker_process(transactional_db, settings, tmp_path):
    """A real ``manage.py qcluster`` process against this run's databases.

    Call it (optionally with extra environment) to start one; after the test it gets SIGTERM
    and must exit, with everything it started, or the test fails. The turns it still hosts then
    get ``TEARDOWN_DRAIN_TIMEOUT`` to end before they are handed back (unless the test gives its
    own ``AGENT_DRAIN_TIMEOUT``): the test is over, and a deployment's 20 s would only be waited
    out. The LLM endpoint is whatever ``settings.LLM_BASE_URL`` says when it starts. Its log
    goes to a file in the test's ``tmp_path``: a pipe nobody reads fills up and blocks the
    worker's logging (and with it the cluster's shutdown).
    """
    started: list[subprocess.Popen] = []

    def start(**extra_env: str) -> subprocess.Popen:
        env = subprocess_env(
            **{
                "LLM_BASE_URL": settings.LLM_BASE_URL,
                "Q_WORKERS": "2",
                "AGENT_DRAIN_TIMEOUT": TEARDOWN_DRAIN_TIMEOUT,
                **extra_env,
            }
        )
        with open(tmp_path / f"worker-{len(started)}.log", "wb") as log:
            process = subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), "qcluster"],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        started.append(process)
        return process

    yield start
    for process in started:
        stop_or_fail(process, timeout=PROCESS_EXIT_TIMEOUT, name="qcluster")


ASK_FOR_EMAIL = "please send an email to x@example.com"


@pytest.fixture
def server_log(settings, tmp_path):
    """The MCP test server (tests/mcp_servers/slow_server.py) over stdio, declared for this test;
    yields what it logged, and fails the test if a server process it started is still alive."""
    from tests.mcp_helpers import ServerLog, stdio_server

    log = ServerLog(tmp_path / "server.log")
    settings.AGENT_MCP_SERVERS = [stdio_server(log)]
    yield log
    log.assert_every_server_exited()


@pytest.fixture
def outbox(settings):
    """Emails the agent sends, kept in memory (Django's locmem backend)."""
    from django.core import mail

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    return mail.outbox


@pytest.fixture
def email_waiting_for_approval(llm, user, run_turn_in_thread, outbox):
    """Runs a turn that asks for an email until it parks; returns (turn, its approval request)."""

    from agentproj.vocabulary import TurnStatus

    def start():
        session = sessions.session_create(owner=user)
        turn = lifecycle.turn_start(session=session, message=ASK_FOR_EMAIL, actor=user)
        assert run_turn_in_thread(turn.pk).join() == TurnStatus.WAITING_FOR_APPROVAL
        turn.refresh_from_db()
        return turn, turn.approval_requests.get()

    return start


@pytest.fixture
def slack(settings):
    """The loopback stand-in for Slack's Web API, with the app's Slack settings pointed at it."""
    yield from running_fake(settings)


@pytest.fixture
def people(django_user_model, approver, user, other_user):
    """carol and dave may decide; alice (the requester) may too; bob may not."""
    return people_with_addresses(django_user_model, approver, user, other_user)
