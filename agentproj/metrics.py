"""Prometheus metrics: the families every process records into, and who may read them.

prometheus-client runs in its multiprocess mode: each process (web or worker) writes its samples
to files of its own in ``settings.METRICS_DIR``, and a scrape adds up the files of every process
on the machine. ``agentproj.settings`` points ``PROMETHEUS_MULTIPROC_DIR`` there before anything
imports prometheus_client, and ``serve`` and ``qcluster`` empty it when they start: a file left
by an earlier run would count again under a reused pid.

Labels stay few-valued (a status, an outcome, a tool, an error code), never a user, session or
turn id. Turns active by status are not kept here: the web view reads them from the database
at scrape time (``sessions_app.web.metrics``).
"""

import hmac
import ipaddress
import json
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.conf import settings
from django.http import HttpRequest
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    make_wsgi_app,
    multiprocess,
)

# A first answer is expected in a second or two; a cancel in milliseconds; a human decides an
# approval in seconds to a day (APPROVAL_TIMEOUT's default).
FIRST_TOKEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60)
CANCEL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
QUEUE_WAIT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
APPROVAL_WAIT_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)
LLM_REQUEST_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
TOOL_CALL_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

TURNS_STARTED = Counter("agentproj_turns_started", "Turns created (sub-agents' included).")
TURNS_FINISHED = Counter(
    "agentproj_turns_finished", "Turns that ended, by final status.", ["status"]
)
QUEUE_WAIT = Histogram(
    "agentproj_queue_wait_seconds",
    "From a turn's queueing (its message, or its resume) until a worker took it.",
    buckets=QUEUE_WAIT_BUCKETS,
)
TIME_TO_FIRST_TOKEN = Histogram(
    "agentproj_time_to_first_token_seconds",
    "From a user's message until the first text of its answer was sent.",
    buckets=FIRST_TOKEN_BUCKETS,
)
CANCEL = Histogram(
    "agentproj_cancel_seconds",
    "From a stop being accepted until the turn was stopped.",
    buckets=CANCEL_BUCKETS,
)
APPROVAL_WAIT = Histogram(
    "agentproj_approval_wait_seconds",
    "From an approval request until it was approved, rejected, expired or cancelled.",
    ["outcome"],
    buckets=APPROVAL_WAIT_BUCKETS,
)
LLM_REQUEST = Histogram(
    "agentproj_llm_request_seconds",
    "One HTTP request to the model, until its answer ended or failed (retries each count).",
    buckets=LLM_REQUEST_BUCKETS,
)
TOOL_CALL = Histogram(
    "agentproj_tool_call_seconds", "One tool call, by tool.", ["tool"], buckets=TOOL_CALL_BUCKETS
)
LLM_TOKENS = Counter(
    "agentproj_llm_tokens", "Tokens the model server reported, input or output.", ["type"]
)
LLM_ERRORS = Counter(
    "agentproj_llm_errors", "Failed requests to the model (retried ones too), by cause.", ["code"]
)
# Live sums: a process that ended (or was killed) stops counting once its files are forgotten.
HOST_TURNS = Gauge(
    "agentproj_host_turns", "Turns the turn hosts run now.", multiprocess_mode="livesum"
)
HOST_CAPACITY = Gauge(
    "agentproj_host_capacity",
    "Turns the turn hosts could run at once.",
    multiprocess_mode="livesum",
)


def clean_directory() -> None:
    """Forget every sample of earlier runs: called by the command that starts a deployment's
    processes on this machine, before they start."""
    for samples in settings.METRICS_DIR.glob("*.db"):
        samples.unlink(missing_ok=True)


def forget_process(pid: int) -> None:
    """A process of this machine ended: its gauges no longer count."""
    multiprocess.mark_process_dead(pid, str(settings.METRICS_DIR))


def machine_registry() -> CollectorRegistry:
    """A registry of every process's samples on this machine, read when it is collected."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(settings.METRICS_DIR))
    return registry


# Headers a reverse proxy adds: behind one on the same machine every client's address is
# loopback, so a request that carries one is not taken for a loopback client.
PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


def may_scrape(remote_addr: str, authorization: str, *, proxied: bool) -> bool:
    """Loopback clients may read the metrics, and others that send the deployment's token."""
    if settings.METRICS_TOKEN:
        expected = f"Bearer {settings.METRICS_TOKEN}"
        if hmac.compare_digest(authorization.encode(), expected.encode()):
            return True
    if proxied:
        return False
    try:
        return ipaddress.ip_address(remote_addr).is_loopback
    except ValueError:
        return False


def request_may_scrape(request: HttpRequest) -> bool:
    return may_scrape(
        request.META.get("REMOTE_ADDR", ""),
        request.headers.get("Authorization", ""),
        proxied=any(name in request.headers for name in PROXY_HEADERS),
    )


# The answer to anyone else, from the web view and from a worker machine's server alike.
REFUSAL = {
    "code": "permission_denied",
    "detail": "Metrics are answered to loopback clients, or with the metrics token.",
}


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        return


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def serve_http(port: int) -> None:
    """Serve this machine's metrics on ``port`` (``METRICS_HOST``) from a thread, with the same
    rule as ``GET /metrics``: for a machine that runs workers and no web process."""
    exposition = make_wsgi_app(machine_registry())

    def app(environ, start_response):
        proxied = any("HTTP_" + name.upper().replace("-", "_") in environ for name in PROXY_HEADERS)
        remote_addr = environ.get("REMOTE_ADDR", "")
        if may_scrape(remote_addr, environ.get("HTTP_AUTHORIZATION", ""), proxied=proxied):
            return exposition(environ, start_response)
        start_response("403 Forbidden", [("Content-Type", "application/json")])
        return [json.dumps(REFUSAL).encode()]

    server = make_server(
        settings.METRICS_HOST,
        port,
        app,
        server_class=_ThreadingWSGIServer,
        handler_class=_QuietHandler,
    )
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
