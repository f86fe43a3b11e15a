"""A process the cluster forks never shares a database connection with its supervisor.

django-q2's supervisor uses the database itself (its scheduler, every 30 s) and forks a new
worker whenever one dies. With PostgreSQL's connection pool, Django's ``close_all`` before the
fork only hands connections back to the pool, so the child inherited the supervisor's open
connections: two processes on one connection interleave their statements and commit each
other's half-done transactions. Only PostgreSQL has a pool; SQLite opens files per process.
"""

import os
import re
import signal
from pathlib import Path

import pytest
from django.db import connection

from tests.conftest import wait_for
from tests.processes import children

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

# The supervisor's scheduler first runs after about 30 s.
SCHEDULER_BOUND = 90.0


def postgres_sockets() -> set[str]:
    """Inodes of this machine's TCP sockets connected to this run's PostgreSQL port."""
    port_hex = f"{int(connection.settings_dict['PORT'] or 5432):04X}"
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[2].endswith(f":{port_hex}"):
                found.add(fields[9])
    return found


def sockets_of(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            match = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(fd))
        except OSError:
            continue
        if match:
            inodes.add(match.group(1))
    return inodes


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="only PostgreSQL connections are pooled"
)
def test_a_reforked_worker_shares_no_database_connection_with_its_supervisor(worker_process):
    cluster = worker_process()
    supervisor = wait_for(
        lambda: next((p for p in children(cluster.pid) if len(children(p)) >= 4), None),
        timeout=60,
        interval=0.2,
    )
    wait_for(
        lambda: sockets_of(supervisor) & postgres_sockets(), timeout=SCHEDULER_BOUND, interval=0.5
    )
    before = children(supervisor)

    victim = max(before)
    os.kill(victim, signal.SIGKILL)
    reforked = wait_for(lambda: children(supervisor) - before, timeout=30, interval=0.2)

    on_postgres = postgres_sockets()
    supervisor_connections = sockets_of(supervisor) & on_postgres
    for child in reforked:
        assert not sockets_of(child) & supervisor_connections, (
            f"process {child} holds the supervisor's database connection"
        )
