"""Run the whole app in the foreground: daphne (pages, API, websockets, demo model) and a
django-q2 cluster (the agent workers), until Ctrl-C or SIGTERM.

With ``--web-processes N`` the port is served by N daphne processes: ``serve`` opens the one
listening socket and hands it to each of them (daphne's ``--fd``), and the kernel gives each new
connection to whichever process accepts it first. A socket's session may then live in one
process and its turn's events come from another: they meet on the channel layer, as across
machines.
"""

import os
import secrets
import signal
import socket
import subprocess
import sys
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from agentproj import metrics
from agentproj.asgi import DEMO_LLM_PREFIX
from agentproj.origins import host_allowed

ADMIN_USERNAME = "admin"
CHILD_STOP_GRACE = 5.0


class Command(BaseCommand):
    help = "Migrate, make sure a login exists, then run daphne and a django-q2 cluster."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--workers", type=int, default=settings.Q_CLUSTER["workers"])
        parser.add_argument(
            "--web-processes",
            type=int,
            default=settings.WEB_PROCESSES,
            help="daphne processes serving the one port (WEB_PROCESSES).",
        )

    def handle(self, *args, host, port, workers, web_processes, **options):
        if web_processes < 1:
            raise CommandError("--web-processes must be at least 1.")
        loopback = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        if ":" in loopback:
            loopback = f"[{loopback}]"  # an IPv6 address, as URLs and Host headers spell it
        env = dict(os.environ, Q_WORKERS=str(workers), **_model_environment(loopback, port))
        for database in settings.DATABASES:
            call_command("migrate", database=database, interactive=False, verbosity=0)
        self._ensure_login()
        # Samples of an earlier run would count again (and a new process may reuse an old pid).
        metrics.clean_directory()
        children = _start(host, port, env, web_processes=web_processes)
        self.stdout.write(
            f"agentproj is running at http://{loopback}:{port}/ "
            f"(model: {env.get('LLM_BASE_URL')}, {web_processes} web and {workers} worker "
            "processes). Ctrl-C stops it."
        )
        exit_code = self._supervise(children)
        self._stop(children)
        if exit_code:
            sys.exit(exit_code)

    def _supervise(self, children: dict[str, subprocess.Popen]) -> int:
        """Wait for Ctrl-C or SIGTERM, or for a child to exit (then 1: the app is not whole)."""
        stopping = {"signal": None}

        def request_stop(signum, frame):
            stopping["signal"] = signum

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        exit_code = 0
        while stopping["signal"] is None:
            for name, child in children.items():
                if child.poll() is not None:
                    self.stderr.write(f"{name} process exited with {child.returncode}")
                    exit_code = 1
                    stopping["signal"] = signal.SIGTERM
            time.sleep(0.2)
        return exit_code

    def _stop(self, children):
        self.stdout.write("Stopping: letting workers finish or hand back their turns...")
        worker = children["worker"]
        for name, child in children.items():
            if name != "worker" and child.poll() is None:
                child.send_signal(signal.SIGTERM)
        if worker.poll() is None:
            # Ctrl-C to the whole group, as a terminal sends it: django-q2 stops gracefully and
            # its worker processes hear it too and drain their turns.
            os.killpg(worker.pid, signal.SIGINT)
        deadline = time.monotonic() + settings.AGENT_DRAIN_TIMEOUT + CHILD_STOP_GRACE
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        self.stdout.write("Stopped.")

    def _ensure_login(self):
        users = get_user_model()
        if users.objects.filter(is_superuser=True).exists():
            return
        chosen = os.environ.get("AGENTPROJ_ADMIN_PASSWORD", "")
        password = chosen or secrets.token_urlsafe(12)
        users.objects.create_superuser(ADMIN_USERNAME, "admin@agentproj.local", password)
        shown = "the value of AGENTPROJ_ADMIN_PASSWORD" if chosen else password
        self.stdout.write(
            self.style.SUCCESS(
                f"Created the first login. Username: {ADMIN_USERNAME}  Password: {shown}\n"
                "This is shown once; change it in the admin."
            )
        )


def _listening_socket(host: str, port: int) -> socket.socket:
    """The one socket every daphne process accepts on; inheritable, so children can use it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
    except OSError as exc:
        listening.close()
        raise CommandError(f"Cannot listen on {host}:{port}: {exc.strerror}.") from None
    listening.listen(1024)
    listening.set_inheritable(True)
    return listening


def _model_environment(loopback: str, port: int) -> dict[str, str]:
    """Without ``LLM_BASE_URL`` the demo model is the one in use: daphne mounts it, and the
    workers call it with the deployment's demo key, at an address the host check lets through."""
    if "LLM_BASE_URL" in os.environ:
        return {}
    if not host_allowed(loopback):
        raise CommandError(
            f"The workers would reach the demo model at {loopback}, which ALLOWED_HOSTS does not "
            "allow: add it to ALLOWED_HOSTS, or set LLM_BASE_URL."
        )
    return {
        "LLM_BASE_URL": f"http://{loopback}:{port}{DEMO_LLM_PREFIX}",
        "LLM_API_KEY": settings.DEMO_LLM_API_KEY,
        "DEMO_LLM_ENABLED": "1",
    }


def _start(host: str, port: int, env: dict, *, web_processes: int) -> dict[str, subprocess.Popen]:
    """The web processes on one listening socket, then the cluster, each in its own session."""
    listening = _listening_socket(host, port)
    daphne = [sys.executable, "-m", "daphne", "--fd", str(listening.fileno())]
    children = {
        f"web {number}": subprocess.Popen(
            [*daphne, "agentproj.asgi:application"],
            env=env,
            pass_fds=[listening.fileno()],
            start_new_session=True,
        )
        for number in range(1, web_processes + 1)
    }
    # The daphne processes hold the socket now; this one only supervises.
    listening.close()
    manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
    children["worker"] = subprocess.Popen(
        [*manage, "qcluster", "--keep-metrics"], env=env, start_new_session=True
    )
    return children
