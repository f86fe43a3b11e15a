"""Concurrent turns end to end: N users at once, each in a session of their own (prints numbers).

For each backend and each N it starts a paced model server of its own (``stream_server.py``, a
separate process on loopback) and the app's default ``manage.py serve`` on fresh storage, logs
in, creates N sessions, opens one websocket per session (``resume`` from 0), then POSTs one turn
per session all at once. A fixed share of the turns is cancelled a fixed time after its first
text reaches the socket; the others stream to the end. It reports per run:

- first text: POST -> first assistant text on the session's websocket, minus the model server's
  own first-token delay (the app's overhead), p50/p99; turns that never started within
  ``--start-timeout`` are counted, not waited for;
- delta lag: for every token, the model server's send time -> the moment the client first held
  that text (through a delta, a checkpoint message, or an assistant-message event), p50/p99;
- cancel -> ``stopped``: sending ``POST /cancel/`` -> the ``stopped`` status event on the socket;
- integrity: each turn's live text (the first streaming event of its answer, then deltas and
  the text of checkpoint messages), placed by
  offset, against the final stored assistant text (``GET /events/``): characters lost (never
  sent live) and duplicated (sent live more than once, or disagreeing with the stored text); and
  whether the text a page would show (whole events replacing, live text written at its offset)
  ends equal to the stored text;
- memory of the web (daphne) and worker (qcluster and its children) process trees, RSS and PSS
  (``/proc/<pid>/smaps_rollup``), the highest sum seen while the turns ran;
- CPU seconds (user + system, reaped children included) of the whole ``serve`` tree during the
  run per 1000 tokens the clients received;
- database writes per turn: on PostgreSQL the change in ``pg_stat_user_tables``
  (inserted + updated + deleted rows) of the app's tables, django-q2's apart; SQLite has no such
  counter, so there only the rows added are counted.

    .venv/bin/python bench/concurrency.py [--backend sqlite|postgres] [--n 1,10,50,100]

Everything started here is stopped here, every wait is bounded, and a run that times out says
so in its numbers instead of hanging.
"""

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import secrets
import select
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
from stream_server import answer_tokens  # bench/ is the script's folder, first on sys.path
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

ROOT = Path(__file__).resolve().parent.parent
TERMINAL = {"completed", "stopped", "failed"}
PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
# PostgreSQL backends flush their table counters at most once a second and, when idle, up to
# 10 s later (PGSTAT_IDLE_INTERVAL): wait that long before taking the baseline.
PG_STATS_SETTLE = 11.0
APP_TABLE_PREFIXES = ("sessions_app_", "approvals_app_")
SETUP_CONCURRENCY = 10
CLK_TCK = os.sysconf("SC_CLK_TCK")
MB = 1024 * 1024


@dataclass
class Probe:
    """One user: a session, its websocket, its one turn, and what the client saw, when."""

    index: int
    session_id: str
    cancel: bool
    turn_id: int | None = None
    post_status: int | None = None
    posted_at: float | None = None
    first_text_at: float | None = None
    # (received at, "delta" | "event", offset, text), in receipt order.
    pieces: list[tuple[float, str, int, str]] = field(default_factory=list)
    statuses: list[tuple[float, str]] = field(default_factory=list)
    terminal: str | None = None
    terminal_at: float | None = None
    cancel_sent_at: float | None = None
    cancel_status: int | None = None
    cancel_answered_at: float | None = None
    others_streaming_at_cancel: int | None = None
    stopped_seen_at: float | None = None
    gave_up: str | None = None
    socket_closed: str | None = None
    replayed: asyncio.Event = field(default_factory=asyncio.Event)
    stored_text: str | None = None
    # When a worker took the turn (the row's started_at).
    started_at: float | None = None


# Processes


def read_proc(pid: int, name: str) -> str | None:
    try:
        return Path(f"/proc/{pid}/{name}").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def stat_fields(pid: int) -> list[str] | None:
    raw = read_proc(pid, "stat")
    if raw is None:
        return None
    # The command name is in parentheses and may hold spaces: split after its closing one.
    return raw[raw.rindex(")") + 2 :].split()


def process_tree(root: int) -> dict[int, dict]:
    """Every live process under ``root`` (itself included): parent, start time, role."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = stat_fields(int(entry.name))
            if fields:
                parents[int(entry.name)] = int(fields[1])
    tree: dict[int, dict] = {}
    pending = [(root, "serve")]
    while pending:
        pid, role = pending.pop()
        fields = stat_fields(pid)
        command = (read_proc(pid, "cmdline") or "").replace("\0", " ")
        if fields is None:
            continue
        if role == "serve" and pid != root:
            role = "web" if "daphne" in command else "workers" if "qcluster" in command else role
        tree[pid] = {"role": role, "started": fields[19], "command": command.strip()}
        pending.extend((child, role) for child, parent in parents.items() if parent == pid)
    return tree


def cpu_seconds(tree: dict[int, dict]) -> dict[str, float]:
    """User + system time per role, with the time of children the process has reaped."""
    totals: dict[str, float] = {}
    for pid, info in tree.items():
        fields = stat_fields(pid)
        if fields is None:
            continue
        ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
        totals[info["role"]] = totals.get(info["role"], 0.0) + ticks / CLK_TCK
    return totals


def memory(tree: dict[int, dict]) -> dict[str, dict[str, float]]:
    """RSS and PSS (bytes) per role. RSS counts pages a forked child shares with its parent in
    both; PSS divides shared pages among the processes that share them."""
    sums: dict[str, dict[str, float]] = {}
    for pid, info in tree.items():
        rollup = read_proc(pid, "smaps_rollup")
        if rollup is None:
            continue
        values = {}
        for line in rollup.splitlines():
            name, _, rest = line.partition(":")
            if name in ("Rss", "Pss"):
                values[name.lower()] = int(rest.split()[0]) * 1024
        role = sums.setdefault(info["role"], {"rss": 0.0, "pss": 0.0, "processes": 0})
        role["rss"] += values.get("rss", 0)
        role["pss"] += values.get("pss", 0)
        role["processes"] += 1
    return sums


def still_running(pid: int, started: str) -> bool:
    fields = stat_fields(pid)
    # The same pid with another start time is a new process that is none of ours.
    return fields is not None and fields[19] == started and fields[0] != "Z"


class MemorySampler:
    """Samples the serve tree every ``interval`` seconds; keeps the highest sum per role."""

    def __init__(self, root: int, interval: float = 1.0):
        self.root = root
        self.interval = interval
        self.peak: dict[str, dict[str, float]] = {}
        self.known: dict[int, dict] = {}
        self._task: asyncio.Task | None = None

    def sample(self) -> None:
        tree = process_tree(self.root)
        self.known.update(tree)
        for role, values in memory(tree).items():
            peak = self.peak.setdefault(role, {"rss": 0.0, "pss": 0.0, "processes": 0})
            for key in ("rss", "pss", "processes"):
                peak[key] = max(peak[key], values[key])

    async def _run(self) -> None:
        while True:
            # /proc reads of big processes take milliseconds: keep them off the event loop.
            await asyncio.to_thread(self.sample)
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def start_stream_server(args, log_path: Path) -> tuple[subprocess.Popen, int]:
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [
                *(sys.executable, str(ROOT / "bench" / "stream_server.py")),
                *("--first-token-delay", str(args.first_token_delay)),
                *("--tokens-per-second", str(args.tokens_per_second), "--words", str(args.words)),
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
            text=True,
        )
    ready, _, _ = select.select([server.stdout], [], [], 10.0)
    line = server.stdout.readline() if ready else ""
    if not line.startswith("PORT "):
        stop_process(server, "stream server", timeout=5)
        raise SystemExit(f"the stream server did not start:\n{log_path.read_text()}")
    return server, int(line.split()[1])


def stop_process(process: subprocess.Popen, name: str, *, timeout: float) -> str:
    """SIGTERM, wait, then SIGKILL the process group; says what happened."""
    if process.poll() is not None:
        return f"{name} had exited ({process.returncode})"
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
        return f"{name} exited ({process.returncode}) after SIGTERM"
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        return f"{name} did NOT exit within {timeout:.0f}s of SIGTERM: killed its process group"


def stop_serve(serve: subprocess.Popen, known: dict[int, dict], timeout: float) -> list[str]:
    """Stop serve as an operator would, then make sure none of its processes outlived it."""
    started = time.monotonic()
    notes = [stop_process(serve, "serve", timeout=timeout)]
    notes[0] += f" in {time.monotonic() - started:.1f}s"
    # daphne and qcluster run in sessions of their own: serve's group does not reach them.
    deadline = time.monotonic() + 5.0
    leftovers = {pid: info for pid, info in known.items() if pid != serve.pid}
    while time.monotonic() < deadline:
        leftovers = {p: i for p, i in leftovers.items() if still_running(p, i["started"])}
        if not leftovers:
            break
        time.sleep(0.1)
    for pid, info in leftovers.items():
        notes.append(f"left running after serve exited, killed: {pid} {info['command'][:80]}")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return notes


# Storage


class Storage:
    """Fresh storage for one run and what it costs in writes."""

    def __init__(self, backend: str, folder: Path, args):
        self.backend = backend
        self.folder = folder
        self.name = f"agentproj_bench_{os.getpid()}_{secrets.token_hex(3)}"
        self.redis_url = args.redis_url

    def environment(self) -> dict[str, str]:
        if self.backend == "sqlite":
            return {
                "DATABASE_URL": f"sqlite:///{self.folder / 'db.sqlite3'}",
                "CHANNELS_DB_PATH": str(self.folder / "channels.sqlite3"),
            }
        return {
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{self.name}",
            "REDIS_URL": self.redis_url,
            # Our own names on a shared Redis: nobody else's queue or groups are touched.
            "CHANNELS_PREFIX": self.name,
            "Q_CLUSTER_NAME": self.name,
        }

    def create(self) -> None:
        if self.backend == "postgres":
            import psycopg

            with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        if self.backend != "postgres":
            return
        import psycopg
        import redis

        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        client = redis.Redis.from_url(self.redis_url)
        for pattern in (f"{self.name}*", f"django_q:{self.name}*"):
            for key in client.scan_iter(match=pattern, count=1000):
                client.delete(key)
        client.close()

    async def count_connections(self, peak: dict[str, int]) -> None:
        """Keep the highest number of server connections to the run's database (PostgreSQL)."""
        import psycopg

        dsn = f"host=127.0.0.1 port=5432 user=postgres dbname={self.name}"
        query = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
            while True:
                row = await (await connection.execute(query, (self.name,))).fetchone()
                # Less this sampler's own connection.
                peak["connections"] = max(peak.get("connections", 0), row[0] - 1)
                await asyncio.sleep(0.25)

    def write_counts(self) -> dict[str, int]:
        """Per table: inserted + updated + deleted rows (PostgreSQL) or rows (SQLite)."""
        if self.backend == "postgres":
            import psycopg

            dsn = f"host=127.0.0.1 port=5432 user=postgres dbname={self.name}"
            with psycopg.connect(dsn, autocommit=True) as connection:
                rows = connection.execute(
                    "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables"
                ).fetchall()
            return {name: int(count) for name, count in rows}
        uri = f"file:{self.folder / 'db.sqlite3'}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as connection:
            tables = [
                row[0]
                for row in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%'"
                )
            ]
            return {
                t: connection.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables
            }


def writes_by_group(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    groups = {"app": 0, "django_q": 0, "other": 0}
    for table, count in after.items():
        change = count - before.get(table, 0)
        if table.startswith(APP_TABLE_PREFIXES):
            groups["app"] += change
        elif table.startswith("django_q"):
            groups["django_q"] += change
        else:
            groups["other"] += change
    return groups


# The client side


class Client:
    def __init__(self, base_url: str, port: int, args):
        self.base_url = base_url
        self.port = port
        self.args = args
        limits = httpx.Limits(max_connections=args.max_n + 20, max_keepalive_connections=50)
        self.http = httpx.AsyncClient(base_url=base_url, timeout=60.0, limits=limits)
        self.probes: list[Probe] = []
        self.sockets: list = []
        self.readers: list[asyncio.Task] = []
        self.cancellers: list[asyncio.Task] = []
        # Set once the run is over: sockets closing after that are ours.
        self.closing = False

    async def login(self, password: str) -> None:
        await self.http.get("/accounts/login/")
        answer = await self.http.post(
            "/accounts/login/",
            data={
                "username": "admin",
                "password": password,
                "csrfmiddlewaretoken": self.http.cookies["csrftoken"],
            },
            headers={"Referer": f"{self.base_url}/accounts/login/"},
        )
        if answer.status_code != 302 or "sessionid" not in self.http.cookies:
            raise SystemExit(f"login failed: HTTP {answer.status_code}")
        # Django rotates the CSRF token at login; DRF's session auth wants it in a header.
        self.http.headers["X-CSRFToken"] = self.http.cookies["csrftoken"]

    async def create_sessions(self, n: int) -> None:
        count = min(n, max(1, round(n * self.args.cancel_share))) if self.args.cancel_share else 0
        cancelled = {int(k * n / count) for k in range(count)} if count else set()
        limit = asyncio.Semaphore(SETUP_CONCURRENCY)

        async def one(index: int) -> Probe:
            async with limit:
                answer = await self.http.post("/api/sessions/", json={"title": f"bench {index}"})
                answer.raise_for_status()
                return Probe(index, answer.json()["id"], cancel=index in cancelled)

        self.probes = list(await asyncio.gather(*(one(i) for i in range(n))))

    async def open_sockets(self) -> None:
        cookie = "; ".join(f"{k}={v}" for k, v in self.http.cookies.items())
        limit = asyncio.Semaphore(SETUP_CONCURRENCY)

        async def one(probe: Probe) -> None:
            async with limit:
                socket = await connect(
                    f"ws://127.0.0.1:{self.port}/ws/sessions/{probe.session_id}/",
                    origin=f"http://127.0.0.1:{self.port}",
                    additional_headers={"Cookie": cookie},
                    compression=None,
                    max_size=None,
                    ping_interval=None,
                    proxy=None,
                    open_timeout=30,
                )
                self.sockets.append(socket)
                self.readers.append(asyncio.create_task(self.read(probe, socket)))
                await socket.send(json.dumps({"type": "resume", "after_seq": 0}))
                await asyncio.wait_for(probe.replayed.wait(), 30)

        await asyncio.gather(*(one(p) for p in self.probes))

    async def read(self, probe: Probe, socket) -> None:
        try:
            async for raw in socket:
                now = time.time()
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "delta":
                    delta = message["delta"]
                    self.text_arrived(probe, now, "delta", delta["offset"], delta["text"])
                elif kind == "checkpoint" and "text" in message:
                    self.text_arrived(probe, now, "checkpoint", message["offset"], message["text"])
                elif kind == "event":
                    self.event_arrived(probe, now, message["event"])
                elif kind == "replayed":
                    probe.replayed.set()
        except WebSocketException as exc:
            reason = repr(exc)
        else:
            reason = f"closed ({socket.close_code})"
        if not self.closing:
            when = f"{time.time() - probe.posted_at:.1f}s after POST" if probe.posted_at else ""
            probe.socket_closed = f"{reason} {when or 'before the POST'}"

    def event_arrived(self, probe: Probe, now: float, event: dict) -> None:
        data = event.get("data") or {}
        if event["kind"] == "assistant_message" and data.get("text"):
            via = "streaming event" if data.get("streaming") else "event"
            self.text_arrived(probe, now, via, 0, data["text"])
        elif event["kind"] == "status":
            status = data.get("status")
            probe.statuses.append((now, status))
            if status == "stopped" and probe.stopped_seen_at is None:
                probe.stopped_seen_at = now
            if status in TERMINAL and probe.terminal is None:
                probe.terminal, probe.terminal_at = status, now

    def text_arrived(self, probe: Probe, now: float, via: str, offset: int, text: str) -> None:
        probe.pieces.append((now, via, offset, text))
        if probe.first_text_at is None:
            probe.first_text_at = now
            if probe.cancel:
                self.cancellers.append(asyncio.create_task(self.cancel_later(probe)))

    async def cancel_later(self, probe: Probe) -> None:
        await asyncio.sleep(max(0.0, probe.first_text_at + self.args.cancel_after - time.time()))
        if probe.terminal is not None:
            return
        probe.others_streaming_at_cancel = sum(
            1 for p in self.probes if p is not probe and p.first_text_at and p.terminal is None
        )
        probe.cancel_sent_at = time.time()
        answer = await self.http.post(f"/api/sessions/{probe.session_id}/cancel/", json={})
        probe.cancel_answered_at = time.time()
        probe.cancel_status = answer.status_code

    async def start_turns(self, text: str = "Tell me about the harbour, please.") -> None:
        async def one(probe: Probe) -> None:
            message = f"bench:{probe.session_id} {text}"
            probe.posted_at = time.time()
            try:
                answer = await self.http.post(
                    f"/api/sessions/{probe.session_id}/turns/", json={"message": message}
                )
            except httpx.HTTPError as exc:
                probe.gave_up = f"POST failed: {exc!r}"
                return
            probe.post_status = answer.status_code
            if answer.status_code == 202:
                probe.turn_id = answer.json()["id"]
            else:
                probe.gave_up = f"POST answered {answer.status_code}"

        await asyncio.gather(*(one(p) for p in self.probes))

    async def wait_for_turns(self, answer_seconds: float) -> None:
        """Until every turn ended or was given up on; bounded per turn."""
        while True:
            now = time.time()
            waiting = [p for p in self.probes if p.terminal is None and p.gave_up is None]
            for probe in waiting:
                if probe.posted_at is None:
                    continue
                if probe.first_text_at is None:
                    if now - probe.posted_at > self.args.start_timeout:
                        probe.gave_up = "never started"
                elif now - probe.first_text_at > answer_seconds + self.args.finish_grace:
                    probe.gave_up = "never finished"
            if not waiting:
                return
            await asyncio.sleep(0.05)

    async def clean_up_turns(self) -> None:
        """Stop what we gave up on, so that serve shuts down promptly and nothing is left."""
        leftovers = [p for p in self.probes if p.terminal is None and p.turn_id is not None]
        for probe in leftovers:
            await self.http.post(f"/api/sessions/{probe.session_id}/cancel/", json={})
        deadline = time.time() + 30
        while time.time() < deadline and any(p.terminal is None for p in leftovers):
            await asyncio.sleep(0.1)

    async def fetch_stored_texts(self) -> None:
        limit = asyncio.Semaphore(SETUP_CONCURRENCY)

        async def one(probe: Probe) -> None:
            async with limit:
                answer = await self.http.get(f"/api/sessions/{probe.session_id}/events/")
            texts = [
                (e.get("data") or {}).get("text", "")
                for e in answer.json()["results"]
                if e["kind"] == "assistant_message" and e["turn"] == probe.turn_id
            ]
            probe.stored_text = "".join(texts)
            async with limit:
                turn = await self.http.get(
                    f"/api/sessions/{probe.session_id}/turns/{probe.turn_id}/"
                )
            if turn.json().get("started_at"):
                probe.started_at = datetime.fromisoformat(turn.json()["started_at"]).timestamp()

        await asyncio.gather(*(one(p) for p in self.probes if p.turn_id is not None))

    async def close(self) -> None:
        self.closing = True
        for task in self.cancellers:
            task.cancel()
        await asyncio.gather(*(s.close() for s in self.sockets), return_exceptions=True)
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, *self.cancellers, return_exceptions=True)
        await self.http.aclose()


# Analysis


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest rank: the smallest value with at least ``fraction`` of the values at or below."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(-(-fraction * len(ordered) // 1)))
    return ordered[rank - 1]


def ms_pair(values: list[float]) -> str:
    p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
    if p50 is None:
        return "-"
    return f"{p50 * 1000:.0f} / {p99 * 1000:.0f}"


def integrity(probe: Probe) -> dict[str, int]:
    """Live text placed by offset against the stored text, and the text a page ends up showing."""
    stored = probe.stored_text or ""
    covered: dict[int, str] = {}
    duplicated = wrong = 0
    for _, via, offset, text in probe.pieces:
        if via == "event":
            continue
        if via == "streaming event":
            # The text so far, whole, the first time the socket shows the answer: live, and
            # not sent again by deltas (nor counted twice when an event is replayed).
            for i, char in enumerate(text):
                covered.setdefault(i, char)
            continue
        for i, char in enumerate(text):
            position = offset + i
            if position in covered:
                duplicated += 1
            elif position >= len(stored) or stored[position] != char:
                wrong += 1
            covered.setdefault(position, char)
    lost = sum(1 for position in range(len(stored)) if position not in covered)
    # The page: a whole event replaces the text, live text is written at its offset.
    shown = ""
    for _, via, offset, text in probe.pieces:
        if via in ("event", "streaming event"):
            shown = text
        else:
            shown = shown[:offset].ljust(offset, "\0") + text + shown[offset + len(text) :]
    return {
        "lost": lost,
        "duplicated": duplicated,
        "wrong": wrong,
        "page_differs": int(shown != stored),
        "delta_chars": len(covered),
    }


def token_lags(probe: Probe, record: dict | None) -> tuple[list[float], list[float], int]:
    """Per token the server sent: first receipt by the client (any way, and by delta only)."""
    if record is None:
        return [], [], 0
    first_seen: dict[int, float] = {}
    first_by_delta: dict[int, float] = {}
    for received, via, offset, text in probe.pieces:
        for position in range(offset, offset + len(text)):
            first_seen.setdefault(position, received)
            if via == "delta":
                first_by_delta.setdefault(position, received)
    lags, delta_lags, delivered = [], [], 0
    for start, end, sent in record["tokens"]:
        seen = [first_seen.get(p) for p in range(start, end)]
        if None in seen:
            continue
        delivered += 1
        lags.append(max(seen) - sent)
        by_delta = [first_by_delta.get(p) for p in range(start, end)]
        if None not in by_delta:
            delta_lags.append(max(by_delta) - sent)
    return lags, delta_lags, delivered


def analyse(probes: list[Probe], records: dict, args) -> dict:
    by_id: dict[str, list[dict]] = {}
    for record in records["requests"]:
        by_id.setdefault(record["bench_id"], []).append(record)
    # A turn whose text came after we gave up on it counts as never started, not as slow.
    started = [p for p in probes if p.first_text_at is not None and p.gave_up != "never started"]
    first_text = [p.first_text_at - p.posted_at - args.first_token_delay for p in started]
    pickup, first_token_to_client, taken, worker_setup = [], [], [], []
    lags, delta_lags, delivered, model_calls = [], [], 0, 0
    totals = {
        "lost": 0,
        "duplicated": 0,
        "wrong": 0,
        "page_differs": 0,
        "delta_chars": 0,
        "chars": 0,
    }
    sent_not_stored = 0
    page_differs: list[str] = []
    for probe in probes:
        requests = by_id.get(probe.session_id, [])
        model_calls += len(requests)
        record = requests[-1] if requests else None
        if probe.started_at and probe.posted_at:
            taken.append(probe.started_at - probe.posted_at)
        if record and probe.posted_at:
            pickup.append(record["received_at"] - probe.posted_at)
            if probe.started_at:
                worker_setup.append(record["received_at"] - probe.started_at)
            if record["tokens"] and probe.first_text_at:
                first_token_to_client.append(probe.first_text_at - record["tokens"][0][2])
        turn_lags, turn_delta_lags, turn_delivered = token_lags(probe, record)
        lags += turn_lags
        delta_lags += turn_delta_lags
        delivered += turn_delivered
        if probe.turn_id is not None and probe.stored_text is not None:
            checked = integrity(probe)
            for key, value in checked.items():
                totals[key] += value
            if checked["page_differs"]:
                page_differs.append(
                    f"#{probe.index} {probe.terminal or probe.gave_up}, "
                    f"{len(probe.stored_text)} chars stored"
                )
            totals["chars"] += len(probe.stored_text)
            if probe.terminal == "completed" and record:
                sent = "".join(records["answer"][s:e] for s, e, _ in record["tokens"])
                sent_not_stored += int(sent != probe.stored_text)
    cancelled = [p for p in probes if p.cancel_sent_at is not None]
    cancel_stopped = [p.stopped_seen_at - p.cancel_sent_at for p in cancelled if p.stopped_seen_at]
    stream_closed = []
    for probe in cancelled:
        record = (by_id.get(probe.session_id) or [None])[-1]
        if record and record["finished"] == "client_closed":
            stream_closed.append(record["finished_at"] - probe.cancel_sent_at)
    outcomes: dict[str, int] = {}
    for probe in probes:
        outcome = probe.terminal or probe.gave_up or "unknown"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return {
        "first_text": first_text,
        "pickup": pickup,
        "taken": taken,
        "worker_setup": worker_setup,
        "first_token_to_client": first_token_to_client,
        "never_started": sum(1 for p in probes if p.gave_up == "never started"),
        "lags": lags,
        "delta_lags": delta_lags,
        "delivered": delivered,
        "model_calls": model_calls,
        "cancelled": len(cancelled),
        "cancel_stopped": cancel_stopped,
        "cancel_not_stopped": len(cancelled) - len(cancel_stopped),
        "cancel_answer": [p.cancel_answered_at - p.cancel_sent_at for p in cancelled],
        "cancel_codes": sorted({p.cancel_status for p in cancelled}),
        "others_streaming": [p.others_streaming_at_cancel for p in cancelled],
        "stream_closed": stream_closed,
        "integrity": totals,
        "sent_not_stored": sent_not_stored,
        "page_differs": page_differs,
        "outcomes": outcomes,
        "sockets_dropped": [p.socket_closed for p in probes if p.socket_closed],
    }


# One run


def serve_environment(storage: Storage, folder: Path, model_port: int, password: str) -> dict:
    env = dict(os.environ)
    for name in ("DATABASE_URL", "REDIS_URL", "CHANNELS_DB_PATH", "CHANNELS_PREFIX"):
        env.pop(name, None)
    env.update(storage.environment())
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "agentproj.settings",
            "DATA_DIR": str(folder),
            "LLM_BASE_URL": f"http://127.0.0.1:{model_port}/v1",
            "LLM_API_KEY": "bench",
            "LLM_MODEL": "bench",
            "AGENTPROJ_ADMIN_PASSWORD": password,
            # One user sends every turn of the run: per-user rate limits and caps would
            # measure themselves, not the app.
            "API_THROTTLE_RATES": ",".join(
                f"{scope}=100000/min"
                for scope in ("send", "cancel", "decide", "sessions", "events", "resume")
            ),
            "MAX_SOCKETS_PER_USER": "100000",
            "MAX_ACTIVE_TURNS_PER_USER": "100000",
        }
    )
    env.setdefault("LOG_LEVEL", "WARNING")
    return env


async def wait_until_serving(base_url: str, serve: subprocess.Popen, bound: float) -> None:
    deadline = time.monotonic() + bound
    async with httpx.AsyncClient(base_url=base_url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if serve.poll() is not None:
                raise RuntimeError(f"serve exited with {serve.returncode}")
            try:
                if (await client.get("/accounts/login/")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"serve did not answer within {bound:.0f}s")


async def measure(
    args, n: int, storage: Storage, serve, base_url: str, port: int, model_port: int, password: str
) -> dict:
    await wait_until_serving(base_url, serve, args.serve_timeout)
    client = Client(base_url, port, args)
    sampler = MemorySampler(serve.pid)
    result: dict = {}
    try:
        await client.login(password)
        await client.create_sessions(n)
        if storage.backend == "postgres":
            await asyncio.sleep(PG_STATS_SETTLE)
        # Opening and resuming a socket writes nothing, so the baseline can come first and the
        # sockets do not sit idle through the wait.
        result["writes_before"] = await asyncio.to_thread(storage.write_counts)
        await client.open_sockets()
        tree = process_tree(serve.pid)
        cpu_before = cpu_seconds(tree)
        own_before = resource.getrusage(resource.RUSAGE_SELF)
        result["load_before"] = os.getloadavg()
        sampler.start()
        connections: dict[str, int] = {}
        if storage.backend == "postgres":
            counting = asyncio.create_task(storage.count_connections(connections))
        answer_seconds = args.words / args.tokens_per_second + args.first_token_delay
        started = time.time()
        await client.start_turns()
        result["posts_sent_in"] = time.time() - started
        profiling = start_profiles(args, serve.pid, storage.backend, n, answer_seconds)
        await client.wait_for_turns(answer_seconds)
        result["profiles"] = finish_profiles(profiling)
        result["wall"] = time.time() - started
        result["load_after"] = os.getloadavg()
        await sampler.stop()
        sampler.sample()
        if storage.backend == "postgres":
            counting.cancel()
            await asyncio.gather(counting, return_exceptions=True)
            result["db_connections"] = connections.get("connections")
        cpu_after = cpu_seconds(process_tree(serve.pid))
        own_after = resource.getrusage(resource.RUSAGE_SELF)
        result["cpu"] = {
            role: cpu_after.get(role, 0.0) - cpu_before.get(role, 0.0)
            for role in set(cpu_before) | set(cpu_after)
        }
        result["client_cpu"] = (own_after.ru_utime + own_after.ru_stime) - (
            own_before.ru_utime + own_before.ru_stime
        )
        result["memory"] = sampler.peak
        await client.clean_up_turns()
        await client.fetch_stored_texts()
        async with httpx.AsyncClient(timeout=30.0) as plain:
            records = (await plain.get(f"http://127.0.0.1:{model_port}/records")).json()
        records["answer"] = "".join(answer_tokens(args.words))
        result["analysis"] = analyse(client.probes, records, args)
    finally:
        await sampler.stop()
        await client.close()
        result["known_processes"] = sampler.known
    return result


def start_profiles(args, root: int, backend: str, n: int, answer_seconds: float) -> list:
    """With ``--profile DIR``: py-spy samples every web process and every process of the cluster
    while the turns stream (raw folded stacks, one file each), without pausing them."""
    if not args.profile:
        return []
    folder = Path(args.profile)
    folder.mkdir(parents=True, exist_ok=True)
    seconds = max(1, int(min(answer_seconds, args.profile_seconds)))
    started = []
    for pid, info in process_tree(root).items():
        if info["role"] not in ("web", "workers"):
            continue
        out = folder / f"{backend}-n{n}-{info['role']}-{pid}.txt"
        command = [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(seconds),
            "--rate",
            "50",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(out),
        ]
        started.append(
            (subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out)
        )
    return started


def finish_profiles(started: list) -> list[str]:
    files = []
    for process, out in started:
        process.wait(timeout=120)
        if out.exists() and out.stat().st_size:
            files.append(str(out))
    return files


def run_once(args, backend: str, n: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="concurrency-bench-") as name:
        folder = Path(name)
        storage = Storage(backend, folder, args)
        storage.create()
        model, model_port = start_stream_server(args, folder / "stream_server.log")
        password = secrets.token_urlsafe(16)
        env = serve_environment(storage, folder, model_port, password)
        port = free_port()
        command = [sys.executable, str(ROOT / "manage.py"), "serve", "--port", str(port)]
        if args.workers:
            command += ["--workers", str(args.workers)]
        log_path = folder / "serve.log"
        notes: list[str] = []
        with open(log_path, "wb") as log:
            serve = subprocess.Popen(
                command,
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        result: dict = {"backend": backend, "n": n}
        try:
            result.update(
                asyncio.run(
                    measure(
                        args,
                        n,
                        storage,
                        serve,
                        f"http://127.0.0.1:{port}",
                        port,
                        model_port,
                        password,
                    )
                )
            )
        except Exception as exc:  # a failed run is reported; the next one still runs
            result["error"] = repr(exc)
        finally:
            known = result.get("known_processes") or process_tree(serve.pid)
            notes += stop_serve(serve, known, args.stop_timeout)
            notes.append(stop_process(model, "stream server", timeout=5))
            if backend == "postgres" and "writes_before" in result:
                # Every backend flushed its counters when serve's connections closed.
                result["writes"] = writes_by_group(result["writes_before"], storage.write_counts())
            elif "writes_before" in result:
                result["writes"] = writes_by_group(result["writes_before"], storage.write_counts())
            storage.drop()
            log_text = log_path.read_text(errors="replace")
            result["log_problems"] = log_problems(log_text)
            if args.keep_logs:
                kept = Path(args.keep_logs) / f"serve-{backend}-{n}-{time.strftime('%H%M%S')}.log"
                kept.parent.mkdir(parents=True, exist_ok=True)
                kept.write_text(log_text)
                notes.append(f"serve log kept in {kept}")
            result["notes"] = notes
        return result


def log_problems(log_text: str) -> dict[str, int]:
    """Warnings, errors and the exception each traceback ended with, counted by message."""
    problems: dict[str, int] = {}
    in_traceback = False
    for raw in log_text.splitlines():
        if raw.startswith("Traceback"):
            in_traceback = True
            continue
        if in_traceback:
            if raw.startswith((" ", "\t")) or raw.startswith("During handling") or not raw:
                continue
            in_traceback = False
            message = f"exception {raw.strip()}"
        elif " WARNING " in raw or " ERROR " in raw or " CRITICAL " in raw:
            # Drop the timestamp so that repeats of one message count together.
            message = raw.split(" ", 2)[-1].strip()
        else:
            continue
        message = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<uuid>", message)
        message = re.sub(r"\b[0-9a-f]{32}\b", "<id>", message)
        message = re.sub(r"\d+", "N", message)[:200]
        problems[message] = problems.get(message, 0) + 1
    return dict(sorted(problems.items(), key=lambda item: -item[1])[:15])


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Report


def report_details(result: dict) -> None:
    def line(text: str) -> None:
        print(f"  {text}")

    print(f"\n### {result['backend']}, N = {result['n']}")
    if "error" in result:
        line(f"RUN FAILED: {result['error']}")
    a = result.get("analysis")
    if a:
        line(f"outcomes: {a['outcomes']}; wall {result['wall']:.1f}s from the first POST")
        line(f"all POSTs answered {result['posts_sent_in']:.2f}s after the first was sent")
        line(
            f"load average before {fmt_load(result['load_before'])}, "
            f"after {fmt_load(result['load_after'])}"
        )
        line(f"first text overhead ms: {ms_pair(a['first_text'])}")
        line(f"  never started within the bound: {a['never_started']}")
        line(f"  POST -> model request received ms: {ms_pair(a['pickup'])}")
        line(f"    POST -> a worker took the turn (started_at) ms: {ms_pair(a['taken'])}")
        line(f"    taken -> model request received ms: {ms_pair(a['worker_setup'])}")
        line(f"  model's first token -> client ms: {ms_pair(a['first_token_to_client'])}")
        line(f"text lag ms: {ms_pair(a['lags'])} over {len(a['lags'])} tokens")
        line(f"  by delta only: {ms_pair(a['delta_lags'])} over {len(a['delta_lags'])} tokens")
        line(
            f"cancel -> stopped on the socket ms: {ms_pair(a['cancel_stopped'])}; "
            f"{a['cancelled']} cancelled, {a['cancel_not_stopped']} never seen stopped"
        )
        line(f"  cancel answers {a['cancel_codes']} in ms: {ms_pair(a['cancel_answer'])}")
        line(f"  turns streaming meanwhile: {a['others_streaming']}")
        line(f"  cancel -> model stream closed ms: {ms_pair(a['stream_closed'])}")
        t = a["integrity"]
        line(
            f"integrity: {t['chars']} stored chars, {t['delta_chars']} of them sent live; "
            f"lost {t['lost']}, duplicated {t['duplicated']}, not as stored {t['wrong']}"
        )
        line(f"  turns whose page text ends != stored: {t['page_differs']} {a['page_differs']}")
        line(f"  completed turns whose stored text != the model's: {a['sent_not_stored']}")
        line(f"tokens received {a['delivered']}; model requests {a['model_calls']}")
        dropped = a["sockets_dropped"]
        line(f"sockets dropped by the server: {len(dropped)} {dropped[:3]}")
        cpu = ", ".join(f"{k} {v:.2f}" for k, v in sorted(result["cpu"].items()))
        line(f"CPU s: {cpu}; the benchmark client itself {result['client_cpu']:.2f}")
        for role, m in sorted(result["memory"].items()):
            line(
                f"memory peak {role}: RSS {m['rss'] / MB:.0f} MB, PSS {m['pss'] / MB:.0f} MB "
                f"({m['processes']} processes)"
            )
    if result.get("db_connections") is not None:
        line(f"database connections of the app, at most: {result['db_connections']}")
    if "writes" in result:
        w = result["writes"]
        unit = "rows changed (pg_stat)" if result["backend"] == "postgres" else "rows added"
        line(f"database {unit}: app {w['app']}, django_q {w['django_q']}, other {w['other']}")
    for note in result.get("notes", []):
        line(note)
    for problem, count in result.get("log_problems", {}).items():
        line(f"serve log, {count}x: {problem}")


def fmt_load(load) -> str:
    return "/".join(f"{x:.2f}" for x in load)


def table_row(result: dict) -> str:
    a = result.get("analysis")
    n = result["n"]
    backend = result["backend"]
    if not a:
        return f"| {backend} | {n} | failed: {result.get('error', '?')} |" + " |" * 9
    t = a["integrity"]
    memory_ = result["memory"]
    web = memory_.get("web", {"rss": 0, "pss": 0})
    workers = memory_.get("workers", {"rss": 0, "pss": 0})
    cpu_total = sum(result["cpu"].values())
    per_k = f"{cpu_total / a['delivered'] * 1000:.2f}" if a["delivered"] else "-"
    w = result.get("writes")
    if w is None:
        writes = "-"
    elif backend == "postgres":
        writes = f"{w['app'] / n:.0f} (+{w['django_q'] / n:.0f} q)"
    else:
        writes = f"n/a ({w['app'] / n:.0f} rows added)"
    never_started = str(a["never_started"])
    if a["sockets_dropped"]:
        never_started += f" ({len(a['sockets_dropped'])} sockets dropped)"
    cancel = f"{ms_pair(a['cancel_stopped'])} ({len(a['cancel_stopped'])}/{a['cancelled']})"
    return (
        f"| {backend} | {n} | {ms_pair(a['first_text'])} | {never_started} | "
        f"{ms_pair(a['lags'])} | {cancel} | {t['lost']} / {t['duplicated'] + t['wrong']} | "
        f"{t['page_differs']} | {web['rss'] / MB:.0f} / {web['pss'] / MB:.0f} | "
        f"{workers['rss'] / MB:.0f} / {workers['pss'] / MB:.0f} | {per_k} | {writes} | "
        f"{fmt_load(result['load_before'])} |"
    )


TABLE_HEAD = (
    "| backend | N | first text p50 / p99 ms | never started | delta lag p50 / p99 ms | "
    "cancel → stopped p50 / p99 ms (seen) | lost / dup chars | page ≠ stored | "
    "web RSS / PSS MB | workers RSS / PSS MB | CPU s / 1k tokens | DB writes / turn | load |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backend", default="sqlite", help="sqlite, postgres, or both: sqlite,postgres"
    )
    parser.add_argument("--n", default="1,10,50,100", help="concurrent turns, comma-separated")
    parser.add_argument(
        "--cancel-share",
        type=float,
        default=0.1,
        help="share of turns cancelled (at least 1 when > 0)",
    )
    parser.add_argument(
        "--cancel-after", type=float, default=1.0, help="s after a turn's first text"
    )
    parser.add_argument("--tokens-per-second", type=float, default=30.0)
    parser.add_argument("--first-token-delay", type=float, default=0.2)
    parser.add_argument("--words", type=int, default=150, help="tokens per answer")
    parser.add_argument(
        "--workers", type=int, default=None, help="serve --workers (default: serve's)"
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=120.0,
        help="give up on a turn's first text after this (s)",
    )
    parser.add_argument(
        "--finish-grace",
        type=float,
        default=60.0,
        help="s beyond the answer's length to wait for its end",
    )
    parser.add_argument("--serve-timeout", type=float, default=90.0)
    parser.add_argument("--stop-timeout", type=float, default=60.0)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--keep-logs", metavar="DIR", help="keep each run's serve log in DIR")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="sample the web and worker processes with py-spy while the turns stream (raw folded "
        "stacks in DIR; summarise with bench/profile_summary.py)",
    )
    parser.add_argument("--profile-seconds", type=float, default=15.0)
    args = parser.parse_args()
    backends = [b.strip() for b in args.backend.split(",")]
    ns = [int(x) for x in args.n.split(",")]
    args.max_n = max(ns)
    print(f"# concurrency benchmark {time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} cores")
    print(f"uptime: {uptime()}")
    print(
        f"model: first token after {args.first_token_delay}s, {args.tokens_per_second:g} tokens/s, "
        f"{args.words} tokens; cancelled: {args.cancel_share:.0%} of turns (at least one), "
        f"{args.cancel_after}s after their first text; workers: {args.workers or 'serve default'}"
    )
    results = []
    for backend in backends:
        for n in ns:
            result = run_once(args, backend, n)
            report_details(result)
            results.append(result)
            sys.stdout.flush()
    print("\n" + TABLE_HEAD)
    for result in results:
        print(table_row(result))
    print(f"\nuptime at the end: {uptime()}")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    main()
