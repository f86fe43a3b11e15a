"""Chaos soak: random users and approvers against several web and worker processes while worker
processes are killed and stopped, then every invariant checked over the whole database.

    .venv/bin/python bench/soak.py --backend sqlite --duration 60
    .venv/bin/python bench/soak.py --backend postgres --duration 600

On fresh storage it starts ``--web`` daphne processes (the first also serves the built-in demo
model) and ``--clusters`` django-q2 clusters of ``--workers`` worker processes each. For
``--duration`` seconds:

- each of ``--users`` users works two sessions at random: sends (``on_busy`` reject, enqueue or
  interrupt; a story, a greeting, the time, a sub-agent, or an email that needs approval),
  cancels, and reloads a session's socket on a random web process;
- an approver approves, rejects or ignores each request (ignored ones expire);
- a chaos task kill -9s or SIGTERMs a worker process that hosts turns (its cluster starts a new
  one), or kill -9s or SIGTERMs a whole cluster and starts it again.

Then chaos stops, the clusters are made whole, and the soak waits (bounded) until every turn has
ended, stops every process (each must exit) and runs ``manage.py check_invariants --idle``.
The soak itself checks what the database alone cannot tell:

- a turn stopped mid-answer keeps the text that was stored when the stop was asked for;
- every approved email was sent once, and no email was sent without approval (the mail backend
  writes files, one message each, with the turn's token in the body);
- a socket's replay is the session's events in seq order with no gap;
- no API answer was a 5xx, and every process stopped in time when asked to.

It prints the operations and faults it made, the invariant report, the problems the processes
logged, and the violations, and exits with 1 if there is any. Housekeeping (reaping turns of
dead workers, expiring approvals, redelivering lost deliveries) is a one-minute schedule in the
clusters; the soak also runs it every ``--housekeeping`` seconds, as an operator's timer would,
so that a one-minute run sees its effects.
"""

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from concurrency import (  # bench/ is the script's folder, first on sys.path
    ROOT,
    Storage,
    free_port,
    log_problems,
)
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

TERMINAL = {"completed", "stopped", "failed"}
PROCESS_EXIT_TIMEOUT = 40.0
SETTLE_TIMEOUT = 120.0
SERVE_TIMEOUT = 90.0
APPROVER = "approver"
PASSWORD_BYTES = 16
MESSAGES = (
    ("story", "tell me a story"),
    ("story", "tell me a story"),
    ("hello", "hello"),
    ("time", "what time is it?"),
    ("delegate", "delegate: say hello"),
    ("email", "send an email to ops@example.com about {token}"),
    ("email", "send an email to ops@example.com about {token}"),
)
TOKEN_PATTERN = re.compile(r"soak-[0-9a-f]{12}")


@dataclass
class Findings:
    """What the soak did and what went wrong."""

    operations: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    # turn id -> the assistant text stored when its stop was asked for
    text_at_stop: dict[int, str] = field(default_factory=dict)
    # email token -> turn id, for every email a user asked for
    email_tokens: dict[str, int] = field(default_factory=dict)

    def violation(self, text: str) -> None:
        self.violations.append(text)


# Processes


class Deployment:
    """The web and worker processes of one run, each in a session of its own."""

    def __init__(self, env: dict[str, str], folder: Path, args):
        self.env = env
        self.folder = folder
        self.args = args
        self.web_ports = [free_port() for _ in range(args.web)]
        self.webs: list[subprocess.Popen] = []
        self.clusters: list[subprocess.Popen | None] = [None] * args.clusters
        self.started = 0
        self.stopped_late: list[str] = []

    def _spawn(self, command: list[str], name: str, env: dict[str, str]) -> subprocess.Popen:
        self.started += 1
        log = self.folder / f"{name}-{self.started}.log"
        with log.open("wb") as out:
            return subprocess.Popen(
                command,
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_webs(self) -> None:
        for port in self.web_ports:
            command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
            command.append("agentproj.asgi:application")
            self.webs.append(self._spawn(command, f"web-{port}", self.env))

    def start_cluster(self, slot: int) -> None:
        env = dict(self.env, Q_WORKERS=str(self.args.workers))
        command = [sys.executable, str(ROOT / "manage.py"), "qcluster"]
        self.clusters[slot] = self._spawn(command, f"cluster-{slot}", env)

    def living_clusters(self) -> list[tuple[int, subprocess.Popen]]:
        return [(i, c) for i, c in enumerate(self.clusters) if c is not None and c.poll() is None]

    def cluster_pids(self) -> set[int]:
        """Every process of every living cluster (the cluster, its sentinel, its workers)."""
        pids: set[int] = set()
        for _, cluster in self.living_clusters():
            pids |= group_members(cluster.pid)
        return pids

    def stop(self, process: subprocess.Popen, name: str) -> None:
        """SIGTERM and wait; a process that outstays the bound is killed and reported."""
        if process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=PROCESS_EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.stopped_late.append(f"{name} did not exit within {PROCESS_EXIT_TIMEOUT:.0f}s")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        left = group_members(process.pid)
        if left:
            self.stopped_late.append(f"{name} left processes running: {sorted(left)}")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for slot, cluster in enumerate(self.clusters):
            if cluster is not None:
                self.stop(cluster, f"cluster {slot}")
        for web in self.webs:
            self.stop(web, "daphne")


def group_members(pgid: int) -> set[int]:
    """Living processes of the process group ``pgid``: each web process and cluster starts a
    session of its own, and every process a cluster forks stays in its group."""
    members = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[2]) == pgid:
                members.add(int(stat.parent.name))
    return members


# Users


class User:
    """One person with a logged-in browser session: the API with its cookie, and sockets."""

    def __init__(self, name: str, password: str, ports: list[int], findings: Findings):
        self.name = name
        self.password = password
        self.ports = ports
        self.findings = findings
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports[0]}", timeout=30.0)
        self.sessions: list[str] = []

    async def login(self) -> None:
        await self.http.get("/accounts/login/")
        answer = await self.http.post(
            "/accounts/login/",
            data={
                "username": self.name,
                "password": self.password,
                "csrfmiddlewaretoken": self.http.cookies["csrftoken"],
            },
            headers={"Referer": f"{self.http.base_url}accounts/login/"},
        )
        if answer.status_code != 302 or "sessionid" not in self.http.cookies:
            raise SystemExit(f"{self.name} could not log in: HTTP {answer.status_code}")
        self.http.headers["X-CSRFToken"] = self.http.cookies["csrftoken"]

    async def call(self, method: str, path: str, expected: set[int], **kwargs) -> httpx.Response:
        """One API call on a random web process; an answer outside ``expected`` is a finding."""
        port = random.choice(self.ports)
        url = f"http://127.0.0.1:{port}{path}"
        headers = {"Referer": f"http://127.0.0.1:{port}/"}
        answer = await self.http.request(method, url, headers=headers, **kwargs)
        if answer.status_code not in expected:
            self.findings.violation(
                f"{method} {path} answered {answer.status_code}: {answer.text[:200]}"
            )
        return answer

    async def close(self) -> None:
        await self.http.aclose()

    def cookie(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.http.cookies.items())


async def user_loop(user: User, deadline: float) -> None:
    for index in range(2):
        answer = await user.call("POST", "/api/sessions/", {201}, json={"title": f"soak {index}"})
        user.sessions.append(answer.json()["id"])
    actions = (send, send, send, cancel, cancel, reload_socket)
    while time.monotonic() < deadline:
        session = random.choice(user.sessions)
        action = random.choice(actions)
        try:
            await action(user, session)
        except Exception as exc:  # an answer that is no answer (or no JSON) is a finding
            user.findings.violation(f"{action.__name__} in session {session}: {exc!r}")
        await asyncio.sleep(random.uniform(0.2, 1.5))


async def send(user: User, session: str) -> None:
    kind, template = random.choice(MESSAGES)
    token = f"soak-{secrets.token_hex(6)}"
    on_busy = random.choice(("reject", "enqueue", "interrupt"))
    answer = await user.call(
        "POST",
        f"/api/sessions/{session}/turns/",
        {202, 409},
        json={"message": template.format(token=token), "on_busy": on_busy},
    )
    user.findings.operations[f"send {on_busy}"] += 1
    if answer.status_code == 202:
        user.findings.operations[f"turn {kind}"] += 1
        if kind == "email":
            user.findings.email_tokens[token] = answer.json()["id"]


async def cancel(user: User, session: str) -> None:
    """Stop the session's turn; first note the text stored so far, which a stop must keep."""
    before = (await user.call("GET", f"/api/sessions/{session}/", {200})).json()
    turn = before.get("active_turn")
    if turn:
        text = await stored_text(user, session, turn)
        if text:
            user.findings.text_at_stop.setdefault(turn, text)
    answer = await user.call("POST", f"/api/sessions/{session}/cancel/", {200, 202, 409}, json={})
    user.findings.operations[
        "cancel" if answer.status_code != 409 else "cancel, nothing active"
    ] += 1


async def stored_text(user: User, session: str, turn: int) -> str:
    """The turn's latest assistant text as stored now (the events API pages by seq)."""
    text, after = "", 0
    while True:
        page = await user.call("GET", f"/api/sessions/{session}/events/?after={after}", {200})
        body = page.json()
        for event in body["results"]:
            after = event["seq"]
            if event["turn"] == turn and event["kind"] == "assistant_message":
                text = event["data"].get("text") or ""
        if not body.get("has_more"):
            return text


async def reload_socket(user: User, session: str) -> None:
    """What a reloaded page does: resume from 0 on some web process and watch for a while. The
    replay must be the session's events in order with no gap."""
    port = random.choice(user.ports)
    seqs: list[int] = []
    try:
        async with connect(
            f"ws://127.0.0.1:{port}/ws/sessions/{session}/",
            origin=f"http://127.0.0.1:{port}",
            additional_headers={"Cookie": user.cookie()},
            max_size=None,
            proxy=None,
            open_timeout=30,
        ) as socket:
            await socket.send(json.dumps({"type": "resume", "after_seq": 0}))
            async with asyncio.timeout(30):
                while True:
                    message = json.loads(await socket.recv())
                    if message["type"] == "event":
                        seqs.append(message["event"]["seq"])
                    elif message["type"] == "replayed":
                        break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(random.uniform(0.5, 3.0)):
                    async for _ in socket:
                        pass
    except (WebSocketException, OSError, TimeoutError) as exc:
        user.findings.violation(f"socket of session {session} on port {port} failed: {exc!r}")
        return
    user.findings.operations["socket reload"] += 1
    if seqs != list(range(1, len(seqs) + 1)):
        user.findings.violation(f"socket replay of session {session} out of order: {seqs}")


async def approver_loop(approver: User, deadline: float, decided: set[int]) -> None:
    while time.monotonic() < deadline:
        await asyncio.sleep(random.uniform(0.5, 1.5))
        try:
            await decide_pending(approver, decided)
        except Exception as exc:  # an answer that is no answer (or no JSON) is a finding
            approver.findings.violation(f"approvals: {exc!r}")


async def decide_pending(approver: User, decided: set[int]) -> None:
    """Approve, reject or ignore (let expire) each request once."""
    # One page of the oldest 200: the soak's approver keeps up, so the queue stays short.
    pending = await approver.call("GET", "/api/approvals/?status=pending&limit=200", {200})
    for approval in pending.json()["results"]:
        if approval["id"] in decided:
            continue
        decided.add(approval["id"])
        choice = random.choice(("approve", "approve", "reject", "ignore"))
        approver.findings.operations[f"approval {choice}"] += 1
        if choice != "ignore":
            await approver.call(
                "POST", f"/api/approvals/{approval['id']}/{choice}/", {200, 409}, json={}
            )


# Chaos


async def chaos_loop(deployment: Deployment, findings: Findings, deadline: float, args) -> None:
    faults = ("kill -9 worker", "SIGTERM worker", "kill -9 cluster", "SIGTERM cluster")
    weights = (4, 2, 1, 1)
    while time.monotonic() < deadline:
        await asyncio.sleep(random.uniform(args.chaos_min, args.chaos_max))
        fault = random.choices(faults, weights)[0]
        if fault.endswith("worker"):
            pid = await asyncio.to_thread(hosting_worker_pid, deployment)
            if pid is None:
                findings.faults["no worker hosted a turn"] += 1
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL if fault.startswith("kill") else signal.SIGTERM)
        else:
            living = deployment.living_clusters()
            if not living:
                continue
            slot, cluster = random.choice(living)
            if fault.startswith("kill"):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(cluster.pid, signal.SIGKILL)
                await asyncio.to_thread(cluster.wait)
            else:
                await asyncio.to_thread(deployment.stop, cluster, f"cluster {slot}")
            deployment.start_cluster(slot)
        findings.faults[fault] += 1


def hosting_worker_pid(deployment: Deployment) -> int | None:
    """The process id of a worker that holds a turn's lease now (``host:pid:nonce``), if it is
    one of ours."""
    from sessions_app.models import Turn

    holders = Turn.objects.filter(status__in=("running", "stopping")).exclude(worker_id="")
    pids = {int(worker.split(":")[1]) for worker in holders.values_list("worker_id", flat=True)}
    ours = sorted(pids & deployment.cluster_pids())
    return random.choice(ours) if ours else None


async def housekeeping_loop(interval: float, until: asyncio.Event, findings: Findings) -> None:
    from sessions_app.tasks import housekeeping

    while not until.is_set():
        try:
            await asyncio.to_thread(housekeeping)
        except Exception as exc:  # a failed run is a finding; the next run still happens
            findings.violation(f"housekeeping failed: {exc!r}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(until.wait(), interval)


# The run


def prepare_database(users: int) -> dict[str, str]:
    """Migrate, and create the users and the approver; returns name -> password."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.core.management import call_command

    for database in settings.DATABASES:
        call_command("migrate", database=database, interactive=False, verbosity=0)
    model = get_user_model()
    passwords = {}
    for name in [*(f"user{i}" for i in range(users)), APPROVER]:
        passwords[name] = secrets.token_urlsafe(PASSWORD_BYTES)
        model.objects.create_user(name, password=passwords[name])
    permission = Permission.objects.get(codename="decide_approvalrequest")
    model.objects.get(username=APPROVER).user_permissions.add(permission)
    return passwords


async def wait_until_serving(ports: list[int], deployment: Deployment) -> None:
    deadline = time.monotonic() + SERVE_TIMEOUT
    async with httpx.AsyncClient(timeout=2.0) as client:
        for port in ports:
            while True:
                if any(web.poll() is not None for web in deployment.webs):
                    raise SystemExit("a web process exited while starting")
                with contextlib.suppress(httpx.TransportError):
                    answer = await client.get(f"http://127.0.0.1:{port}/accounts/login/")
                    if answer.status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise SystemExit(f"nothing answered on port {port} in {SERVE_TIMEOUT:.0f}s")
                await asyncio.sleep(0.2)


def unfinished_turns() -> int:
    from sessions_app.models import Turn

    return Turn.objects.exclude(status__in=TERMINAL).count()


async def settle(deployment: Deployment, findings: Findings) -> None:
    """Chaos is over: make every cluster whole and wait until every turn has ended."""
    for slot, cluster in enumerate(deployment.clusters):
        if cluster is None or cluster.poll() is not None:
            deployment.start_cluster(slot)
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        if await asyncio.to_thread(unfinished_turns) == 0:
            return
        await asyncio.sleep(1.0)
    left = await asyncio.to_thread(unfinished_turns)
    findings.violation(f"{left} turns had not ended {SETTLE_TIMEOUT:.0f}s after chaos stopped")


async def drive(deployment: Deployment, passwords: dict[str, str], findings: Findings, args):
    await wait_until_serving(deployment.web_ports, deployment)
    people = {
        name: User(name, pw, deployment.web_ports, findings) for name, pw in passwords.items()
    }
    for person in people.values():
        await person.login()
    deadline = time.monotonic() + args.duration
    done = asyncio.Event()
    housekeeping = asyncio.create_task(housekeeping_loop(args.housekeeping, done, findings))
    decided: set[int] = set()
    try:
        await asyncio.gather(
            *(user_loop(p, deadline) for name, p in people.items() if name != APPROVER),
            approver_loop(people[APPROVER], deadline, decided),
            chaos_loop(deployment, findings, deadline, args),
        )
        await settle(deployment, findings)
    finally:
        done.set()
        await housekeeping
        for person in people.values():
            await person.close()


def check_emails(folder: Path, findings: Findings) -> None:
    """No email sent without approval, none sent twice, and one for every call whose result
    says it was sent."""
    from agentproj.vocabulary import EventKind
    from approvals_app.models import ApprovalRequest
    from sessions_app.models import TimelineEvent

    sent = Counter()
    for message in (folder / "mail").glob("*.log"):
        sent.update(TOKEN_PATTERN.findall(message.read_text(errors="replace")))
    reported = {
        (turn_id, data["tool_call_id"])
        for turn_id, data in TimelineEvent.objects.filter(
            kind=EventKind.TOOL_RESULT, data__tool="send_email"
        ).values_list("turn_id", "data")
        if data.get("ok")
    }
    approved, delivered = set(), set()
    for turn_id, call_id, arguments in ApprovalRequest.objects.filter(
        status="approved"
    ).values_list("turn_id", "tool_call_id", "arguments"):
        tokens = set(TOKEN_PATTERN.findall(json.dumps(arguments)))
        approved |= tokens
        if (turn_id, call_id) in reported:
            delivered |= tokens
    for token, times in sent.items():
        if token not in approved:
            findings.violation(f"an email was sent without approval ({token})")
        elif times > 1:
            findings.violation(f"an approved email was sent {times} times ({token})")
    for token in delivered - set(sent):
        findings.violation(f"a send_email result says sent, but no email was ({token})")
    findings.operations["emails approved"] = len(approved)
    findings.operations["emails sent"] = sum(sent.values())


def check_texts_kept(findings: Findings) -> None:
    """A stopped turn keeps at least the text that was stored when its stop was asked for."""
    from agentproj.vocabulary import EventKind
    from sessions_app.models import Turn

    for turn_id, before in findings.text_at_stop.items():
        turn = Turn.objects.get(pk=turn_id)
        if turn.status != "stopped":
            continue
        texts = turn.events.filter(kind=EventKind.ASSISTANT_MESSAGE).values_list("data", flat=True)
        if not any((data.get("text") or "").startswith(before) for data in texts):
            findings.violation(
                f"turn {turn_id} was stopped with {len(before)} characters stored, and lost them"
            )
        findings.operations["stopped mid-answer, text checked"] += 1


def run(args) -> int:
    folder = Path(tempfile.mkdtemp(prefix="agentproj-soak-"))
    storage = Storage(args.backend, folder, args)
    storage.create()
    demo_port = free_port()
    env = dict(os.environ)
    for name in ("DATABASE_URL", "REDIS_URL", "CHANNELS_DB_PATH", "CHANNELS_PREFIX"):
        env.pop(name, None)
    env.update(storage.environment())
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "agentproj.settings",
            "DATA_DIR": str(folder),
            "DEMO_LLM_ENABLED": "1",
            "DEMO_LLM_TOKEN_DELAY": str(args.token_delay),
            "LLM_BASE_URL": f"http://127.0.0.1:{demo_port}/demo-llm/v1",
            # Faults are what the soak looks for, not rates (the per-user caps stay on).
            "API_THROTTLE_RATES": ",".join(
                f"{scope}=100000/min"
                for scope in ("send", "cancel", "decide", "sessions", "events", "resume")
            ),
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "EMAIL_FILE_PATH": str(folder / "mail"),
            # Short clocks, so that a minute sees workers reaped and approvals expire.
            "AGENT_LEASE_TIMEOUT": "6",
            "AGENT_HEARTBEAT_INTERVAL": "1.5",
            "AGENT_REDELIVER_AFTER": "10",
            "AGENT_DRAIN_TIMEOUT": "5",
            "APPROVAL_TIMEOUT": str(args.approval_timeout),
            "LOG_LEVEL": "WARNING",
        }
    )
    os.environ.update(env)
    import django

    django.setup()
    from django.conf import settings

    env["LLM_API_KEY"] = settings.DEMO_LLM_API_KEY
    findings = Findings()
    deployment = Deployment(env, folder, args)
    deployment.web_ports[0] = demo_port
    started = time.monotonic()
    try:
        passwords = prepare_database(args.users)
        deployment.start_webs()
        for slot in range(args.clusters):
            deployment.start_cluster(slot)
        asyncio.run(drive(deployment, passwords, findings, args))
    except Exception:
        # The soak itself failed: that is reported with everything else, and the run's
        # database and logs are checked all the same.
        findings.violation(f"the soak stopped early:\n{traceback.format_exc()}")
    deployment.stop_all()
    findings.violations += deployment.stopped_late
    counts = check_invariants(env, findings)
    check_texts_kept(findings)
    check_emails(folder, findings)
    problems = Counter()
    for log in folder.glob("*.log"):
        problems.update(log_problems(log.read_text(errors="replace")))
    from django.db import connections

    connections.close_all()
    if args.keep and findings.violations:
        print(f"kept for a look: {folder}, {storage.environment()}")
    else:
        storage.drop()
        shutil.rmtree(folder, ignore_errors=True)
    print_report(args, findings, counts, problems, time.monotonic() - started)
    return 1 if findings.violations else 0


def check_invariants(env: dict[str, str], findings: Findings) -> dict:
    """``manage.py check_invariants --idle``, as an operator runs it; returns its counts."""
    check = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check_invariants", "--idle", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    try:
        report = json.loads(check.stdout)
    except json.JSONDecodeError:
        findings.violation(f"check_invariants gave no report: {check.stderr[-2000:]}")
        return {}
    findings.violations += [
        f"{v['invariant']}: {v['subject']}: {v['detail']}" for v in report["violations"]
    ]
    return report["counts"]


def print_report(args, findings: Findings, counts: dict, problems: Counter, wall: float) -> None:
    print(
        f"# soak on {args.backend}: {args.duration:.0f}s of chaos, {args.web} web processes, "
        f"{args.clusters} clusters x {args.workers} workers, {args.users} users "
        f"(seed {args.seed}; {wall:.0f}s in all)"
    )
    print("operations: " + ", ".join(f"{k} {v}" for k, v in sorted(findings.operations.items())))
    print("faults: " + ", ".join(f"{k} {v}" for k, v in sorted(findings.faults.items())))
    print("database: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if problems:
        print("logged by the processes (warnings, errors, tracebacks), most frequent first:")
        for message, times in problems.most_common(12):
            print(f"  {times:5d}  {message[:160]}")
    print(f"violations: {len(findings.violations)}")
    for violation in findings.violations:
        print(f"  {violation}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of chaos")
    parser.add_argument("--web", type=int, default=2, help="daphne processes")
    parser.add_argument("--clusters", type=int, default=2, help="django-q2 clusters")
    parser.add_argument("--workers", type=int, default=2, help="worker processes per cluster")
    parser.add_argument("--users", type=int, default=6)
    parser.add_argument("--chaos-min", type=float, default=2.0, help="s between faults, at least")
    parser.add_argument("--chaos-max", type=float, default=6.0, help="s between faults, at most")
    parser.add_argument("--token-delay", type=float, default=0.02, help="demo model, s per word")
    parser.add_argument("--approval-timeout", type=float, default=8.0)
    parser.add_argument("--housekeeping", type=float, default=3.0, help="s between runs")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--keep", action="store_true", help="keep the database and logs of a run with violations"
    )
    args = parser.parse_args()
    args.seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    random.seed(args.seed)
    sys.path.insert(0, str(ROOT))
    sys.exit(run(args))


if __name__ == "__main__":
    main()
