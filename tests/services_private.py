"""A private PostgreSQL cluster and a private Redis server on free loopback ports, that tests may
stop, start and restart without touching anyone else's. Starting them (``initdb`` above all) is
most of such a test's set-up, so a module's tests may share them: each test then takes a fresh
database (``PrivatePostgres.new_database``, a copy of a migrated template) and an empty Redis
(``PrivateRedis.flush``), and ``ensure_running`` restarts what an earlier test left stopped.

Each server runs in the foreground as a child of the test (not daemonized by ``pg_ctl``), so
stopping it is a wait on its own process: one that does not exit in time is killed and the test
fails (``tests.processes.stop_or_fail``).

Without the server binaries these tests skip, saying what to install; with REQUIRE_SERVICES=1
(CI) they fail instead.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from glob import glob
from pathlib import Path

import psycopg
import pytest
import redis

from tests.processes import free_port, stop_or_fail

# Bounds how long a broken server start or stop hangs a test.
SERVICE_TIMEOUT = 30.0
DATABASE_NAME = "agentproj"


def require(program: str, *, package: str, extra_dirs: tuple[str, ...] = ()) -> str:
    """The path of ``program``, or skip (fail under REQUIRE_SERVICES=1) saying what to install."""
    found = shutil.which(program)
    for pattern in extra_dirs:
        found = found or next(iter(sorted(glob(os.path.join(pattern, program)))), None)
    if found:
        return found
    message = f"{program} is not installed: these tests start their own server (`{package}`)."
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(message + " REQUIRE_SERVICES=1 makes this a failure.")
    pytest.skip(message)


# Debian keeps the server binaries off PATH.
POSTGRES_DIRS = ("/usr/lib/postgresql/*/bin",)


def _as_postgres() -> dict:
    """PostgreSQL refuses to run as root: as root, run it as the postgres user."""
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


class PrivatePostgres:
    def __init__(self, log_dir: Path):
        self.initdb = require(
            "initdb", package="apt-get install postgresql", extra_dirs=POSTGRES_DIRS
        )
        self.postgres = require(
            "postgres", package="apt-get install postgresql", extra_dirs=POSTGRES_DIRS
        )
        self.port = free_port()
        self.log = log_dir / "postgres.log"
        # Not under pytest's tmp_path: that is private to root, and the server runs as postgres.
        self.data_dir = Path(tempfile.mkdtemp(prefix="agentproj-pg-"))
        self.process: subprocess.Popen | None = None
        self.database = DATABASE_NAME
        self.databases_made = 0

    @property
    def url(self) -> str:
        """The URL of the database in use (``DATABASE_NAME``, or the latest ``new_database``)."""
        return self._url(self.database)

    def create(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.data_dir, "postgres", "postgres")
        subprocess.run(
            [self.initdb, "-D", str(self.data_dir), "-U", "postgres", "-A", "trust", "--no-sync"],
            check=True,
            capture_output=True,
            timeout=SERVICE_TIMEOUT,
            **_as_postgres(),
        )
        self.start()
        with psycopg.connect(self._url("postgres"), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {DATABASE_NAME}")

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    self.postgres,
                    "-D",
                    str(self.data_dir),
                    "-p",
                    str(self.port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "unix_socket_directories=",
                    # A test's database: durability would only cost time.
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **_as_postgres(),
            )
        _wait_until(self._accepts_connections, self.process, "postgres", self.log)

    def ensure_running(self) -> None:
        """Start the server again if it is not running (an earlier test stopped it, and failed
        before starting it again)."""
        if self.process is None or self.process.poll() is not None:
            self.start()

    def new_database(self, template: str = DATABASE_NAME) -> str:
        """Create a database copied from ``template`` (nobody may be connected to it) and use
        it from now on; returns its URL."""
        self.databases_made += 1
        name = f"{DATABASE_NAME}_{self.databases_made}"
        with psycopg.connect(self._url("postgres"), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        self.database = name
        return self.url

    def stop(self) -> None:
        """A fast shutdown (SIGINT), as ``pg_ctl stop -m fast``: sessions are disconnected."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            stop_or_fail(self.process, timeout=SERVICE_TIMEOUT, name="postgres")

    def restart(self, down_for: float) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def query(self, sql: str, *params) -> list[tuple]:
        with psycopg.connect(self.url, autocommit=True) as connection:
            return connection.execute(sql, params).fetchall()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def _url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _accepts_connections(self) -> bool:
        with contextlib.suppress(psycopg.OperationalError):
            psycopg.connect(self._url("postgres"), connect_timeout=2).close()
            return True
        return False


class PrivateRedis:
    def __init__(self, log_dir: Path):
        self.program = require("redis-server", package="apt-get install redis-server")
        self.port = free_port()
        self.log = log_dir / "redis.log"
        self.process: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    self.program,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_until(self._answers, self.process, "redis-server", self.log)

    def stop(self) -> None:
        if self.process is not None:
            stop_or_fail(self.process, timeout=SERVICE_TIMEOUT, name="redis-server")

    def ensure_running(self) -> None:
        """Start the server again if it is not running (see ``PrivatePostgres.ensure_running``)."""
        if self.process is None or self.process.poll() is not None:
            self.start()

    def flush(self) -> None:
        """Forget every key: what an earlier test left (queues, channel groups) is gone."""
        with redis.Redis.from_url(self.url, socket_connect_timeout=2) as client:
            client.flushall()

    def restart(self, down_for: float) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def _answers(self) -> bool:
        with contextlib.suppress(redis.ConnectionError):
            return redis.Redis.from_url(self.url, socket_connect_timeout=2).ping()
        return False


def _wait_until(ready, process: subprocess.Popen, name: str, log: Path) -> None:
    deadline = time.monotonic() + SERVICE_TIMEOUT
    while not ready():
        if process.poll() is not None:
            raise AssertionError(f"{name} exited with {process.returncode}; see {log}")
        if time.monotonic() >= deadline:
            raise AssertionError(f"{name} did not answer within {SERVICE_TIMEOUT}s; see {log}")
        time.sleep(0.1)


@contextlib.contextmanager
def running_postgres(log_dir: Path) -> Iterator[PrivatePostgres]:
    server = PrivatePostgres(log_dir)
    try:
        server.create()
        yield server
    finally:
        server.remove()


@contextlib.contextmanager
def running_redis(log_dir: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(log_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
