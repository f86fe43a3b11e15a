"""Cancel latency mid-stream, end to end (prints numbers; not a test).

Starts the real app (``manage.py serve``: daphne with the demo model, a django-q2 cluster) on a
free port, then for each turn: starts a story through the API, waits until its text streams,
POSTs cancel and measures the time from sending the cancel request until the turn row is
``stopped`` (this process polls the database). It also reports the same stop from the row's own
timestamps (``cancel_requested_at`` to ``finished_at``) and how long the cancel request took.

    .venv/bin/python bench/cancel_latency.py [--turns 100] [--token-delay 0.01] [--workers 2]

With no DATABASE_URL it runs the embedded default on throw-away SQLite files. With
DATABASE_URL (an existing, migratable PostgreSQL database) and REDIS_URL it runs against them;
CHANNELS_PREFIX and Q_CLUSTER_NAME default to names of this run so it shares nothing with other
users of the same Redis.
"""

import argparse
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WARMUP_TURNS = 3
POLL_INTERVAL = 0.002
WAIT_BOUND = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def app_environment(folder: Path, token_delay: float) -> dict[str, str]:
    env = dict(os.environ)
    # The demo model mounted in daphne: serve points the workers at it when this is unset.
    env.pop("LLM_BASE_URL", None)
    env["DEMO_LLM_TOKEN_DELAY"] = str(token_delay)
    env["AGENTPROJ_ADMIN_PASSWORD"] = secrets.token_urlsafe(16)
    # One user sends every turn of the run: lift the per-user API rates for it.
    env["API_THROTTLE_RATES"] = "send=100000/min,cancel=100000/min,decide=100000/min"
    env["DJANGO_SETTINGS_MODULE"] = "agentproj.settings"
    env.setdefault("LOG_LEVEL", "WARNING")
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = f"sqlite:///{folder / 'db.sqlite3'}"
        env["CHANNELS_DB_PATH"] = str(folder / "channels.sqlite3")
    if env.get("REDIS_URL"):
        env.setdefault("CHANNELS_PREFIX", f"bench{os.getpid()}")
        env.setdefault("Q_CLUSTER_NAME", f"bench{os.getpid()}")
    return env


def wait_until(predicate, what: str, bound: float = WAIT_BOUND):
    deadline = time.monotonic() + bound
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what} after {bound}s")
        time.sleep(POLL_INTERVAL)


def server_answers(base_url: str) -> bool:
    try:
        httpx.get(f"{base_url}/api/schema/", timeout=1.0)
    except httpx.TransportError:
        return False
    return True


def api_token() -> str:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    user, _ = get_user_model().objects.get_or_create(username="cancel-bench")
    return Token.objects.get_or_create(user=user)[0].key


def streamed_text(turn_id: int) -> bool:
    from agentproj.vocabulary import EventKind
    from sessions_app.models import TimelineEvent

    data = (
        TimelineEvent.objects.filter(turn_id=turn_id, kind=EventKind.ASSISTANT_MESSAGE)
        .values_list("data", flat=True)
        .first()
    )
    return bool(data and data.get("text"))


def turn_status(turn_id: int) -> str:
    from sessions_app.models import Turn

    return Turn.objects.values_list("status", flat=True).get(pk=turn_id)


def one_turn(client: httpx.Client, jitter: float) -> dict:
    from agentproj.vocabulary import EventKind
    from sessions_app.models import Turn

    session = client.post("/api/sessions/", json={}).raise_for_status().json()["id"]
    started = client.post(f"/api/sessions/{session}/turns/", json={"message": "tell me a story"})
    turn_id = started.raise_for_status().json()["id"]
    wait_until(lambda: streamed_text(turn_id), f"text of turn {turn_id}")
    time.sleep(random.uniform(0, jitter))

    sent = time.perf_counter()
    answer = client.post(f"/api/sessions/{session}/cancel/", json={})
    answered = time.perf_counter()
    wait_until(lambda: turn_status(turn_id) == "stopped", f"turn {turn_id} to stop")
    stopped = time.perf_counter()

    turn = Turn.objects.get(pk=turn_id)
    return {
        "observed": stopped - sent,
        "row": (turn.finished_at - turn.cancel_requested_at).total_seconds(),
        "answer": answered - sent,
        "answer_status": answer.status_code,
        "clean": turn.stop_reason == "user_cancel"
        and turn.events.filter(kind=EventKind.INTERRUPT).count() == 1
        and not turn.events.filter(kind=EventKind.ERROR).exists(),
    }


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank: the smallest value with at least ``fraction`` of the values at or below."""
    ordered = sorted(values)
    rank = max(1, int(-(-fraction * len(ordered) // 1)))
    return ordered[rank - 1]


def summary(label: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"  {label:<46} p50 {percentile(ms, 0.50):7.1f}  p95 {percentile(ms, 0.95):7.1f}  "
        f"p99 {percentile(ms, 0.99):7.1f}  max {max(ms):7.1f}  mean {statistics.mean(ms):7.1f} ms"
    )


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=100, help="measured turns (at least 50)")
    parser.add_argument("--token-delay", type=float, default=0.01, help="demo model s/word")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--jitter", type=float, default=0.2, help="random wait (s) after text streams, max"
    )
    args = parser.parse_args()
    if args.turns < 50:
        parser.error("--turns must be at least 50")

    with tempfile.TemporaryDirectory(prefix="cancel-bench-") as folder:
        env = app_environment(Path(folder), args.token_delay)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        log_path = Path(folder) / "serve.log"
        with open(log_path, "wb") as log:
            server = subprocess.Popen(
                [
                    *(sys.executable, str(ROOT / "manage.py"), "serve"),
                    *("--port", str(port), "--workers", str(args.workers)),
                ],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until(lambda: server.poll() is not None or server_answers(base_url), "serve")
            if server.poll() is not None:
                raise SystemExit(f"serve exited:\n{log_path.read_text()}")
            os.environ.update(env)
            import django

            django.setup()
            from django.conf import settings
            from django.db import connection

            headers = {"Authorization": f"Token {api_token()}"}
            with httpx.Client(base_url=base_url, headers=headers, timeout=30.0) as client:
                for _ in range(WARMUP_TURNS):
                    one_turn(client, args.jitter)
                results = [one_turn(client, args.jitter) for _ in range(args.turns)]
        finally:
            stop_server(server)

    layer = settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1]
    broker = "redis" if settings.Q_CLUSTER.get("redis") else "orm"
    print(
        f"cancel latency mid-stream: {args.turns} turns (+{WARMUP_TURNS} warm-up), "
        f"database {connection.vendor}, channel layer {layer}, django-q2 broker {broker}, "
        f"{args.workers} workers, demo model {args.token_delay}s/word, "
        f"backstop poll {settings.AGENT_CANCEL_POLL_INTERVAL}s"
    )
    print(summary("cancel sent -> turn row stopped (observed)", [r["observed"] for r in results]))
    print(summary("cancel_requested_at -> finished_at (row)", [r["row"] for r in results]))
    print(summary("cancel request answered", [r["answer"] for r in results]))
    answers = sorted({r["answer_status"] for r in results})
    clean = sum(r["clean"] for r in results)
    print(
        f"  cancel answers: {answers}; clean stops (user_cancel, one interrupt, no error): "
        f"{clean}/{len(results)}"
    )


if __name__ == "__main__":
    main()
