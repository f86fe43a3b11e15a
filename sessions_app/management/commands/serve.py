"""Run the whole app in the foreground: daphne (pages, API, websockets, demo model) and a
django-q2 cluster (the agent workers), until Ctrl-C or SIGTERM."""

import os
import secrets
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

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

    def handle(self, *args, host, port, workers, **options):
        env = dict(os.environ, Q_WORKERS=str(workers))
        loopback = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        if ":" in loopback:
            loopback = f"[{loopback}]"  # an IPv6 address, as URLs and Host headers spell it
        if "LLM_BASE_URL" not in os.environ:
            # The demo model is the one in use: daphne mounts it, the workers call it with the
            # deployment's demo key, at an address the host check lets through.
            if not host_allowed(loopback):
                raise CommandError(
                    f"The workers would reach the demo model at {loopback}, which ALLOWED_HOSTS "
                    "does not allow: add it to ALLOWED_HOSTS, or set LLM_BASE_URL."
                )
            env["LLM_BASE_URL"] = f"http://{loopback}:{port}{DEMO_LLM_PREFIX}"
            env["LLM_API_KEY"] = settings.DEMO_LLM_API_KEY
            env["DEMO_LLM_ENABLED"] = "1"

        for database in settings.DATABASES:
            call_command("migrate", database=database, interactive=False, verbosity=0)
        self._ensure_login()
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        children = {
            "web": subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "daphne",
                    "-b",
                    host,
                    "-p",
                    str(port),
                    "agentproj.asgi:application",
                ],
                env=env,
                start_new_session=True,
            ),
            "worker": subprocess.Popen([*manage, "qcluster"], env=env, start_new_session=True),
        }
        self.stdout.write(
            f"agentproj is running at http://{loopback}:{port}/ "
            f"(model: {env.get('LLM_BASE_URL')}, {workers} workers). Ctrl-C stops it."
        )

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
        self._stop(children)
        if exit_code:
            sys.exit(exit_code)

    def _stop(self, children):
        self.stdout.write("Stopping: letting workers finish or hand back their turns...")
        web, worker = children["web"], children["worker"]
        if web.poll() is None:
            web.send_signal(signal.SIGTERM)
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
